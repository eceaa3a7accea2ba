"""Ultralytics ``data.yaml`` files: where each split's images are, and the class names.

::

    path: ../datasets/shapes     # dataset root (relative: to this file's folder; default: it)
    train: images/train          # image folders, relative to the root
    val: images/val
    names: [circle, square]      # or a block of "0: circle" lines; nc is optional

Labels sit where Ultralytics looks for them: the images folder's path with its last
``images`` component replaced by ``labels`` (YOLO txt, detection) or ``masks``
(class-index PNGs, segmentation): ``images/train`` -> ``labels/train``,
``train/images`` -> ``train/labels``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import simple_yaml

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class DataYaml:
    """A parsed ``data.yaml``: ``splits`` maps split names to image folders."""
    path: Path
    splits: dict
    names: Optional[list]

    def images(self, split: str) -> Optional[Path]:
        """The image folder of ``split``, or None when the file names none."""
        return self.splits.get(split)


def _names(value, nc, path: Path) -> Optional[list]:
    """``names`` as a list ordered by class index (a list, or a mapping 0..N-1 -> name)."""
    if value is None:
        names = None
    elif isinstance(value, list):
        names = [str(v) for v in value]
    elif isinstance(value, dict):
        if sorted(value) != list(range(len(value))):
            raise ValueError(f"{path}: 'names' keys must be the class indices 0..{len(value) - 1}, "
                             f"got {sorted(value, key=str)}")
        names = [str(value[i]) for i in range(len(value))]
    else:
        raise ValueError(f"{path}: 'names' must be a list or a mapping of class index to name, "
                         f"got {value!r}")
    if nc is not None and names is not None and nc != len(names):
        raise ValueError(f"{path}: nc is {nc} but 'names' lists {len(names)} classes")
    return names


def _split_folder(value, root: Path, key: str, path: Path) -> Path:
    if not isinstance(value, str):
        raise ValueError(f"{path}: '{key}' must be one image folder (lists and .txt image "
                         f"lists are not supported), got {value!r}")
    folder = root / value
    if not folder.is_dir():
        raise FileNotFoundError(f"{path}: '{key}' folder {folder} does not exist")
    return folder


def read_data_yaml(path: str | Path) -> DataYaml:
    """Parse an Ultralytics ``data.yaml``; errors name the file and what is wrong."""
    path = Path(path)
    fields = simple_yaml.parse(path.read_text(encoding="utf-8"), str(path))
    root = path.parent / (fields.get("path") or ".")
    if "train" not in fields:
        raise ValueError(f"{path}: no 'train:' entry (the training images folder)")
    splits = {key: _split_folder(fields[key], root, key, path)
              for key in ("train", "val", "test") if fields.get(key) is not None}
    return DataYaml(path, splits, _names(fields.get("names"), fields.get("nc"), path))


def label_folder(images: Path, kind: str) -> Path:
    """The ``labels`` (or ``masks``) folder beside an images folder, Ultralytics' rule."""
    parts = list(images.parts)
    if "images" not in parts:
        raise ValueError(f"cannot tell where the {kind} of {images} are: Ultralytics keeps them "
                         f"in the folder named like the images folder with 'images' replaced by "
                         f"'{kind}' (images/train -> {kind}/train)")
    index = len(parts) - 1 - parts[::-1].index("images")
    parts[index] = kind
    return Path(*parts)
