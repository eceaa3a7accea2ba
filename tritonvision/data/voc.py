"""PASCAL VOC readers: detection (Annotations/*.xml) and segmentation (SegmentationClass)."""
from __future__ import annotations

import xml.parsers.expat
from pathlib import Path
from typing import Callable, Optional, Sequence
from xml.etree import ElementTree as ET

import numpy as np
import torch
from torch.utils.data import Dataset

from .images import PathLike, check_mask, find_image, load_image, load_index_mask

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
VOC_VOID = 255


def voc_palette(n: int = 256) -> np.ndarray:
    """The standard VOC colour map: [n, 3] uint8, colour of class index i (255 = void)."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


class _Element(ET.Element):
    """An ElementTree element that remembers the line its start tag is on."""

    sourceline = 0


def parse_xml(path: Path) -> ET.Element:
    """Parse an XML file into ElementTree elements that carry ``sourceline``."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    parser = xml.parsers.expat.ParserCreate()
    stack: list = []
    root: list = []

    def start(tag, attrs):
        el = _Element(tag, attrs)
        el.sourceline = parser.CurrentLineNumber
        el.text = ""
        if stack:
            stack[-1].append(el)
        else:
            root.append(el)
        stack.append(el)

    def end(tag):
        stack.pop()

    def chars(data):
        if stack:
            stack[-1].text += data

    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler = chars
    try:
        with open(path, "rb") as f:
            parser.ParseFile(f)
    except xml.parsers.expat.ExpatError as e:
        raise ValueError(f"{path}:{e.lineno}: malformed XML ({xml.parsers.expat.errors.messages[e.code]}, "
                         f"column {e.offset})") from e
    return root[0]


def _text(el: ET.Element, tag: str, path: Path) -> str:
    child = el.find(tag)
    if child is None or not child.text.strip():
        raise ValueError(f"{path}:{el.sourceline}: <{el.tag}> has no <{tag}>")
    return child.text.strip()


def _number(el: ET.Element, tag: str, path: Path) -> float:
    text = _text(el, tag, path)
    try:
        value = float(text)
    except ValueError:
        line = el.find(tag).sourceline
        raise ValueError(f"{path}:{line}: <{tag}> must be a number, got {text!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"{path}:{el.find(tag).sourceline}: <{tag}> must be finite, got {text!r}")
    return value


def parse_voc_xml(path: Path) -> dict:
    """One VOC annotation -> {"filename", "objects": [(name, x1, y1, x2, y2, difficult, line)]}.

    VOC coordinates are 1-based inclusive pixel indices; they become pixel-edge xyxy as
    ``(xmin - 1, ymin - 1, xmax, ymax)``.
    """
    root = parse_xml(path)
    if root.tag != "annotation":
        raise ValueError(f"{path}:{root.sourceline}: root element is <{root.tag}>, expected <annotation>")
    filename = root.find("filename")
    objects = []
    for obj in root.findall("object"):
        name = _text(obj, "name", path)
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{path}:{obj.sourceline}: <object> '{name}' has no <bndbox>")
        xmin, ymin, xmax, ymax = (_number(box, t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
        if xmax < xmin or ymax < ymin:
            raise ValueError(f"{path}:{box.sourceline}: <bndbox> of '{name}' has xmax < xmin or "
                             f"ymax < ymin ({xmin}, {ymin}, {xmax}, {ymax})")
        diff = obj.find("difficult")
        difficult = diff is not None and diff.text.strip() not in ("", "0")
        objects.append((name, xmin - 1, ymin - 1, xmax, ymax, difficult, obj.sourceline))
    return {"filename": filename.text.strip() if filename is not None and filename.text.strip() else None,
            "objects": objects}


def _read_image_set(root: Path, sub: str, image_set: str) -> "list[str]":
    path = root / "ImageSets" / sub / f"{image_set}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"image set file not found: {path}")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


class VOCDetection(Dataset):
    """PASCAL VOC detection: ``root/JPEGImages`` + ``root/Annotations/<id>.xml``.

    Args:
        root: a VOC year folder (the one holding JPEGImages and Annotations).
        image_set: None for every XML in Annotations (sorted), or a name such as "train" /
            "val" / "trainval" read from ``root/ImageSets/Main/<image_set>.txt``.
        classes: class names in label order; default the 20 VOC classes. An object whose
            name is not in ``classes`` is an error naming the file and line.
        keep_difficult: keep objects marked ``<difficult>1`` (flagged in ``difficult``);
            VOC evaluation needs them, training usually drops them.
        transforms: optional ``transforms(image, target) -> (image, target)``.

    All XML files are parsed up front, so a malformed file fails at construction. Target:
    ``boxes`` (pixel-edge xyxy: ``(xmin - 1, ymin - 1, xmax, ymax)``), ``labels``,
    ``difficult`` bool [K], ``image_id`` (the index); no ``mask``. ``ids[i]`` is the stem.
    """

    def __init__(self, root: PathLike, image_set: Optional[str] = None,
                 classes: Sequence[str] = VOC_CLASSES, keep_difficult: bool = True,
                 transforms: Optional[Callable] = None):
        self.root = Path(root)
        ann_dir, self.image_dir = self.root / "Annotations", self.root / "JPEGImages"
        for d in (ann_dir, self.image_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"VOCDetection: folder not found: {d} (root must hold "
                                        f"JPEGImages/ and Annotations/)")
        self.classes = tuple(classes)
        self.num_classes = len(self.classes)
        label_of = {name: i for i, name in enumerate(self.classes)}
        self.keep_difficult = bool(keep_difficult)
        self.transforms = transforms
        if image_set is None:
            self.ids = sorted(p.stem for p in ann_dir.glob("*.xml"))
        else:
            self.ids = _read_image_set(self.root, "Main", image_set)
        self._records = []
        for stem in self.ids:
            path = ann_dir / f"{stem}.xml"
            record = parse_voc_xml(path)
            objects = []
            for name, x1, y1, x2, y2, difficult, line in record["objects"]:
                if name not in label_of:
                    raise ValueError(f"{path}:{line}: object name {name!r} is not one of the "
                                     f"{len(self.classes)} classes (pass classes=[...] for a "
                                     f"custom label set)")
                if difficult and not self.keep_difficult:
                    continue
                objects.append((x1, y1, x2, y2, label_of[name], difficult))
            self._records.append((record["filename"], objects))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        filename, objects = self._records[index]
        path = self.image_dir / filename if filename else None
        if path is None or not path.is_file():
            path = find_image(self.image_dir, self.ids[index])
        image = load_image(path)
        h, w = image.shape[-2:]
        boxes = torch.tensor([o[:4] for o in objects], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        target = {
            "boxes": boxes,
            "labels": torch.tensor([o[4] for o in objects], dtype=torch.int64),
            "difficult": torch.tensor([o[5] for o in objects], dtype=torch.bool),
            "image_id": int(index) % max(len(self), 1),
        }
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"VOCDetection({str(self.root)!r}: {len(self)} images, {self.num_classes} classes)"


class VOCSegmentation(Dataset):
    """PASCAL VOC segmentation: ``root/JPEGImages`` + ``root/SegmentationClass/<id>.png``.

    Args:
        root: a VOC year folder.
        image_set: None for every PNG in SegmentationClass (sorted), or a name read from
            ``root/ImageSets/Segmentation/<image_set>.txt``.
        classes: object class names; mask value ``v`` in 1..len(classes) is class ``v - 1``.
        transforms: optional ``transforms(image, target) -> (image, target)``.

    Masks are palette (mode P) PNGs whose indices are the classes (0 = background, 255 =
    void, kept as 255); RGB masks in the VOC colour map are converted. Target: ``mask``
    int64 [H, W], ``image_id`` (the index); no boxes/labels. A mask of another size than its
    image, or a value that is neither a class nor 255, is an error naming the file.
    """

    def __init__(self, root: PathLike, image_set: Optional[str] = None,
                 classes: Sequence[str] = VOC_CLASSES, transforms: Optional[Callable] = None):
        self.root = Path(root)
        self.mask_dir, self.image_dir = self.root / "SegmentationClass", self.root / "JPEGImages"
        for d in (self.mask_dir, self.image_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"VOCSegmentation: folder not found: {d} (root must hold "
                                        f"JPEGImages/ and SegmentationClass/)")
        self.classes = tuple(classes)
        self.num_classes = len(self.classes)
        self.num_seg_classes = self.num_classes + 1
        self.transforms = transforms
        if image_set is None:
            self.ids = sorted(p.stem for p in self.mask_dir.glob("*.png"))
        else:
            self.ids = _read_image_set(self.root, "Segmentation", image_set)
        self._palette = voc_palette()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        stem = self.ids[index]
        image = load_image(find_image(self.image_dir, stem))
        mask_path = self.mask_dir / f"{stem}.png"
        if not mask_path.is_file():
            raise FileNotFoundError(f"VOCSegmentation: mask not found: {mask_path}")
        mask = load_index_mask(mask_path, palette=self._palette)
        check_mask(mask, image, mask_path, self.num_seg_classes, VOC_VOID)
        target = {"mask": mask, "image_id": int(index) % max(len(self), 1)}
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"VOCSegmentation({str(self.root)!r}: {len(self)} images, {self.num_seg_classes} mask classes)"
