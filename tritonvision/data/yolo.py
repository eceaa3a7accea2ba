"""YOLO txt detection reader: one ``<stem>.txt`` of ``cls cx cy w h`` lines per image."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch.utils.data import Dataset

from .images import PathLike, list_images, load_image

_TOLERANCE = 1e-3  # normalised coordinates a hair outside [0, 1] are rounding, not errors


def parse_yolo_labels(path: Path) -> "list[tuple[int, float, float, float, float]]":
    """Lines ``class cx cy w h`` (normalised to [0, 1]); blank lines and # comments skipped."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            fields = text.split()
            if len(fields) != 5:
                raise ValueError(f"{path}:{lineno}: expected 5 fields 'class cx cy w h', got "
                                 f"{len(fields)}: {text!r}")
            try:
                cls = int(fields[0])
                cx, cy, w, h = (float(v) for v in fields[1:])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: expected an integer class and 4 numbers "
                                 f"'class cx cy w h', got {text!r}") from None
            if cls < 0:
                raise ValueError(f"{path}:{lineno}: class index must be >= 0, got {cls}")
            values = (cx, cy, w, h)
            if not all(math.isfinite(v) and -_TOLERANCE <= v <= 1 + _TOLERANCE for v in values):
                raise ValueError(f"{path}:{lineno}: cx cy w h must be normalised to [0, 1] "
                                 f"(divide pixels by the image width/height), got {text!r}")
            if w < 0 or h < 0:
                raise ValueError(f"{path}:{lineno}: box width and height must be >= 0, got {text!r}")
            rows.append((cls, cx, cy, w, h, lineno))
    return rows


def _read_names(labels_dir: Path) -> "Optional[list[str]]":
    for candidate in (labels_dir / "classes.txt", labels_dir.parent / "classes.txt",
                      labels_dir.parent.parent / "classes.txt"):
        if candidate.is_file():
            return [line.strip() for line in candidate.read_text().splitlines() if line.strip()]
    return None


class YoloDetection(Dataset):
    """YOLO-format detection: ``images_dir/<stem>.<ext>`` + ``labels_dir/<stem>.txt``.

    Args:
        images_dir: folder of images (.jpg/.png/...); every image is a sample, sorted by name.
        labels_dir: folder of label files; a missing ``<stem>.txt`` means no objects (the
            YOLO convention for background images).
        classes: class names in label order. Default: read from a ``classes.txt`` (one name
            per line) in labels_dir, its parent or grandparent; failing that, classes are
            ``"0".."N-1"`` with N = 1 + the largest class index in the files.
        transforms: optional ``transforms(image, target) -> (image, target)``.

    Each line ``cls cx cy w h`` becomes the xyxy pixel box ``((cx - w/2) W, (cy - h/2) H,
    (cx + w/2) W, (cy + h/2) H)`` clipped to the image. Label files are parsed up front: a
    malformed line, or a class index >= len(classes), fails at construction with the file
    and line. Target: ``boxes``, ``labels``, ``image_id`` (the index); no ``mask``.
    """

    def __init__(self, images_dir: PathLike, labels_dir: PathLike,
                 classes: Optional[Sequence[str]] = None, transforms: Optional[Callable] = None):
        self.images_dir, self.labels_dir = Path(images_dir), Path(labels_dir)
        if not self.labels_dir.is_dir():
            raise FileNotFoundError(f"YoloDetection: labels folder not found: {self.labels_dir}")
        self.files = list_images(self.images_dir)
        self.transforms = transforms
        names = list(classes) if classes is not None else _read_names(self.labels_dir)
        self._labels = []
        largest = -1
        for img in self.files:
            path = self.labels_dir / f"{img.stem}.txt"
            rows = parse_yolo_labels(path) if path.is_file() else []
            for cls, *_, lineno in rows:
                if names is not None and cls >= len(names):
                    raise ValueError(f"{path}:{lineno}: class {cls} is out of range for the "
                                     f"{len(names)} classes {names[:5]}{'...' if len(names) > 5 else ''}")
                largest = max(largest, cls)
            self._labels.append([r[:5] for r in rows])
        self.classes = tuple(names) if names is not None else tuple(str(i) for i in range(largest + 1))
        self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        image = load_image(self.files[index])
        h, w = image.shape[-2:]
        rows = torch.tensor([r[1:] for r in self._labels[index]], dtype=torch.float64).reshape(-1, 4)
        cx, cy, bw, bh = rows.unbind(1)
        boxes = torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h,
                             (cx + bw / 2) * w, (cy + bh / 2) * h], dim=1)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        target = {
            "boxes": boxes.float(),
            "labels": torch.tensor([r[0] for r in self._labels[index]], dtype=torch.int64),
            "image_id": int(index) % max(len(self), 1),
        }
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def __repr__(self) -> str:
        return (f"YoloDetection({str(self.images_dir)!r}, {str(self.labels_dir)!r}: "
                f"{len(self)} images, {self.num_classes} classes)")
