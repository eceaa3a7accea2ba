"""COCO-format detection reader: an images folder plus an instances JSON file."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .coco_masks import segmentation_mask
from .images import PathLike, load_image

VOID = 255


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: malformed JSON at column {e.colno}: {e.msg}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'images', 'annotations' and "
                         f"'categories', got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: missing or non-list '{key}' (a COCO instances file has "
                             f"lists 'images', 'annotations' and 'categories')")
    return data


def _where(path: Path, i: int, ann) -> str:
    """'file: annotations[i] (id N)', naming an annotation in errors."""
    has_id = isinstance(ann, dict) and "id" in ann
    return f"{path}: annotations[{i}]" + (f" (id {ann['id']})" if has_id else "")


def _check_segmentation(seg, where: str) -> None:
    if isinstance(seg, dict):
        counts, size = seg.get("counts"), seg.get("size")
        if not (isinstance(counts, (str, list)) and _number_list(size, 2)):
            raise ValueError(f"{where} has an RLE 'segmentation' without 'counts' (list or "
                             f"string) and 'size' [height, width]")
        return
    if not isinstance(seg, list) or not seg:
        raise ValueError(f"{where} needs a 'segmentation' (polygons or RLE) when masks=True, "
                         f"got {seg!r}"[:300])
    for poly in seg:
        if not (isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0
                and _number_list(poly, len(poly))):
            raise ValueError(f"{where}: each polygon must be a flat list [x0, y0, x1, y1, ...] "
                             f"of at least 3 points, got {str(poly)[:80]}")


def _number_list(value, n: int) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in value))


class CocoDetection(Dataset):
    """COCO instances JSON + images folder, as detection (optionally also segmentation) samples.

    Args:
        images_dir: folder holding the files named by ``images[*].file_name``.
        annotation_json: the instances JSON (``images``, ``annotations``, ``categories``).
        transforms: optional ``transforms(image, target) -> (image, target)``.
        skip_crowd: drop ``iscrowd = 1`` annotations (default keeps them, flagged).
        masks: also give a semantic ``mask`` built from each annotation's ``segmentation``
            (polygons rasterised as pycocotools' ``annToMask``, bit for bit; RLE decoded,
            see :mod:`tritonvision.masks`). Objects are
            painted largest first so smaller ones stay visible on top, with ``1 + label``;
            crowd regions not covered by an object become 255 (void). Every annotation
            must then have a ``segmentation``.

    Boxes: COCO ``bbox`` [x, y, w, h] -> xyxy pixels, clipped to the image; annotations with
    w <= 0 or h <= 0 after clipping are dropped. Labels: category ids sorted ascending and
    numbered 0..C-1 (``category_ids[label]`` is the COCO id, ``categories[label]`` its
    name). Target: ``boxes``, ``labels``, ``iscrowd`` int64 [K], ``image_id`` (the COCO
    image id); ``mask`` only with ``masks=True``. Every image in the JSON is a sample,
    including ones without annotations, in the JSON's order.
    """

    def __init__(self, images_dir: PathLike, annotation_json: PathLike,
                 transforms: Optional[Callable] = None, skip_crowd: bool = False,
                 masks: bool = False):
        self.images_dir = Path(images_dir)
        self.annotation_json = Path(annotation_json)
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"CocoDetection: images folder not found: {self.images_dir}")
        path = self.annotation_json
        data = _load_json(path)
        self.transforms = transforms
        self.skip_crowd = bool(skip_crowd)
        self.masks = bool(masks)

        cats = []
        for i, c in enumerate(data["categories"]):
            if not isinstance(c, dict) or not isinstance(c.get("id"), int):
                raise ValueError(f"{path}: categories[{i}] needs an integer 'id'")
            cats.append((c["id"], str(c.get("name", c["id"]))))
        ids = [c[0] for c in cats]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{path}: duplicate category ids in 'categories'")
        cats.sort()
        self.category_ids = [c[0] for c in cats]
        self.categories = [c[1] for c in cats]
        self.category_id_to_label = {cid: i for i, cid in enumerate(self.category_ids)}
        self.num_classes = len(self.categories)
        self.num_seg_classes = self.num_classes + 1

        self.images = []
        index_of = {}
        for i, im in enumerate(data["images"]):
            if not isinstance(im, dict) or not isinstance(im.get("id"), int) \
                    or not isinstance(im.get("file_name"), str):
                raise ValueError(f"{path}: images[{i}] needs an integer 'id' and a 'file_name'")
            if im["id"] in index_of:
                raise ValueError(f"{path}: images[{i}] repeats image id {im['id']}")
            index_of[im["id"]] = len(self.images)
            self.images.append({"id": im["id"], "file_name": im["file_name"]})
        self._annotations = [[] for _ in self.images]
        for i, ann in enumerate(data["annotations"]):
            where = _where(path, i, ann)
            if not isinstance(ann, dict):
                raise ValueError(f"{where} is not an object")
            if ann.get("image_id") not in index_of:
                raise ValueError(f"{where} has image_id {ann.get('image_id')!r}, not an id in 'images'")
            if ann.get("category_id") not in self.category_id_to_label:
                raise ValueError(f"{where} has category_id {ann.get('category_id')!r}, not an id in 'categories'")
            if not _number_list(ann.get("bbox"), 4):
                raise ValueError(f"{where} needs 'bbox' = [x, y, width, height] of 4 finite numbers, "
                                 f"got {ann.get('bbox')!r}")
            crowd = int(bool(ann.get("iscrowd", 0)))
            if crowd and self.skip_crowd:
                continue
            seg = ann.get("segmentation")
            if self.masks:
                _check_segmentation(seg, where)
            x, y, w, h = (float(v) for v in ann["bbox"])
            self._annotations[index_of[ann["image_id"]]].append(
                (x, y, x + w, y + h, self.category_id_to_label[ann["category_id"]], crowd,
                 seg if self.masks else None, i, ann.get("id")))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        info = self.images[index]
        image = load_image(self.images_dir / info["file_name"])
        h, w = image.shape[-2:]
        anns = self._annotations[index]
        boxes = torch.tensor([a[:4] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        target = {
            "boxes": boxes[keep],
            "labels": torch.tensor([a[4] for a in anns], dtype=torch.int64)[keep],
            "iscrowd": torch.tensor([a[5] for a in anns], dtype=torch.int64)[keep],
            "image_id": int(info["id"]),
        }
        if self.masks:
            target["mask"] = self._semantic_mask(anns, h, w)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def _semantic_mask(self, anns, h: int, w: int) -> torch.Tensor:
        objects, crowd = [], np.zeros((h, w), dtype=bool)
        for a in anns:
            try:
                m = segmentation_mask(a[6], h, w)
            except ValueError as e:
                where = _where(self.annotation_json, a[7], {"id": a[8]} if a[8] is not None else None)
                raise ValueError(f"{where}: {e}") from None
            if a[5]:
                crowd |= m
            else:
                objects.append((int(m.sum()), a[4], m))
        mask = np.zeros((h, w), dtype=np.int64)
        mask[crowd] = VOID
        # largest first, so a small object in front of a large one stays visible
        for _, label, m in sorted(objects, key=lambda o: -o[0]):
            mask[m] = label + 1
        return torch.from_numpy(mask)

    def __repr__(self) -> str:
        return (f"CocoDetection({str(self.images_dir)!r}, {str(self.annotation_json)!r}: "
                f"{len(self)} images, {self.num_classes} categories)")
