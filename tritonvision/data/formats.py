"""``open_dataset``: the synthetic shapes, or a folder whose format is detected."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from torch.utils.data import Dataset

from .coco import CocoDetection
from .mask_folder import MaskFolder
from .shapes import ShapesDataset
from .voc import VOCDetection, VOCSegmentation
from .yolo import YoloDetection

TASKS = ("seg", "det")
SPLIT_ALIASES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
SHAPES_DEFAULT_SIZE = {"train": 2000, "val": 200, "test": 200}


def _split_names(split: str) -> "tuple[str, ...]":
    return SPLIT_ALIASES.get(split, (split,))


def _matches_split(name: str, split: str) -> bool:
    """'val', 'valid', 'val2017', 'instances_val2017' all match split 'val'."""
    name = name.lower()
    name = name[len("instances_"):] if name.startswith("instances_") else name
    return any(re.fullmatch(rf"{re.escape(alias)}\d*", name) for alias in _split_names(split))


def _split_child(folder: Path, split: str) -> Optional[Path]:
    if not folder.is_dir():
        return None
    for child in sorted(folder.iterdir()):
        if child.is_dir() and _matches_split(child.name, split):
            return child
    return None


def _voc_root(path: Path) -> Optional[Path]:
    if (path / "JPEGImages").is_dir():
        return path
    for parent in (path, path / "VOCdevkit"):
        if parent.is_dir():
            years = sorted(p for p in parent.iterdir() if p.is_dir() and (p / "JPEGImages").is_dir())
            if years:
                return years[-1]
    return None


def _coco_images_dir(root: Path, json_path: Path, split: str) -> Optional[Path]:
    stem = json_path.stem[len("instances_"):] if json_path.stem.startswith("instances_") else json_path.stem
    for candidate in (root / stem, root / "images" / stem, _split_child(root, split),
                      _split_child(root / "images", split), root / "images"):
        if candidate is not None and candidate.is_dir():
            return candidate
    return None


def _pair_folders(path: Path, split: str, second: str) -> "Optional[tuple[Path, Path]]":
    """(images, <second>) folders in one of the three layouts, split-specific first."""
    split_dir = _split_child(path, split)
    layouts = []
    if split_dir is not None:
        layouts.append((split_dir / "images", split_dir / second))
    img_split, other_split = _split_child(path / "images", split), _split_child(path / second, split)
    if img_split is not None and other_split is not None:
        layouts.append((img_split, other_split))
    layouts.append((path / "images", path / second))
    for images, other in layouts:
        if images.is_dir() and other.is_dir():
            return images, other
    return None


def open_dataset(spec: str, task: str, split: str = "train", **kwargs) -> Dataset:
    """A dataset of samples ``(image, target)`` for ``task`` "seg" or "det".

    ``spec == "shapes"``: :class:`ShapesDataset` with ``split=split`` (train/val/test are
    disjoint random streams of the same seed). kwargs: ``num_images`` (default 2000 for
    train, 200 otherwise), ``image_size`` (64), ``seed`` (0), ``max_objects``, ``min_size``,
    ``max_size``, ``transforms``. It serves both tasks.

    Otherwise ``spec`` is a path, and the first rule that matches decides (``<split>``
    matches a folder named for the split: train/training, val/valid/validation,
    test/testing, optionally followed by digits, e.g. ``val2017``):

    1. a ``.json`` file: COCO instances (:class:`CocoDetection`; for seg with
       ``masks=True``, semantic masks from the ``segmentation`` polygons/RLE); images from ``images_dir=`` or, first that
       exists, the sibling-of-parent folder named like the json stem without
       ``instances_`` (``annotations/instances_val2017.json`` -> ``val2017/``),
       ``images/<stem>``, ``<split>/``, ``images/<split>``, ``images/``, beside the
       ``annotations`` folder.
    2. a folder holding ``JPEGImages/`` (or ``VOC*/JPEGImages`` or
       ``VOCdevkit/VOC*/JPEGImages``, the last year sorted): VOC. det ->
       :class:`VOCDetection`, seg -> :class:`VOCSegmentation`; the image set is
       ``ImageSets/{Main,Segmentation}/<split>.txt`` when that file exists, else every
       annotation/mask.
    3. a folder with ``annotations/*.json``: COCO (as in 1) with the json whose name matches the
       split (``instances_train2017.json``, ``train.json``), or the only json there.
    4. det: YOLO (:class:`YoloDetection`) from ``<split>/images`` + ``<split>/labels``,
       else ``images/<split>`` + ``labels/<split>``, else ``images`` + ``labels``.
       seg: :class:`MaskFolder` from the same layouts with ``masks`` for ``labels``.
       The last, split-less layout serves every split (the same images for train and val).

    Remaining kwargs go to the reader (``transforms``, ``classes``, ...). Raises
    FileNotFoundError for a missing path, ValueError for an unknown task or a folder that
    matches no rule (or only a rule for the other task).
    """
    if task not in TASKS:
        raise ValueError(f"open_dataset: task must be 'seg' or 'det', got {task!r}")
    if str(spec).lower() == "shapes":
        num_images = kwargs.pop("num_images", SHAPES_DEFAULT_SIZE.get(split, 200))
        return ShapesDataset(num_images, split=split, **kwargs)

    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"open_dataset: {spec!r} is neither 'shapes' nor an existing path")

    if path.is_file():
        if path.suffix.lower() != ".json":
            raise ValueError(f"open_dataset: {path} is a file but not a COCO .json; pass a "
                             f"dataset folder (VOC, COCO, YOLO or images/ + masks/) instead")
        if task == "seg":
            kwargs.setdefault("masks", True)
        images_dir = kwargs.pop("images_dir", None)
        if images_dir is None:
            images_dir = _coco_images_dir(path.parent.parent if path.parent.name == "annotations"
                                          else path.parent, path, split)
        if images_dir is None:
            raise ValueError(f"open_dataset: cannot find the images folder for {path}; pass images_dir=")
        return CocoDetection(images_dir, path, **kwargs)

    voc = _voc_root(path)
    if voc is not None:
        sub, cls = ("Main", VOCDetection) if task == "det" else ("Segmentation", VOCSegmentation)
        image_set = split if (voc / "ImageSets" / sub / f"{split}.txt").is_file() else None
        if task == "seg" and not (voc / "SegmentationClass").is_dir():
            raise ValueError(f"open_dataset: VOC folder {voc} has no SegmentationClass/ for task 'seg'")
        return cls(voc, image_set=image_set, **kwargs)

    ann_dir = path / "annotations"
    jsons = sorted(ann_dir.glob("*.json")) if ann_dir.is_dir() else []
    if jsons:
        if task == "seg":
            kwargs.setdefault("masks", True)
        matching = [j for j in jsons if _matches_split(j.stem, split)]
        if not matching and len(jsons) == 1:
            matching = jsons
        if not matching:
            raise ValueError(f"open_dataset: no annotation json for split {split!r} in {ann_dir} "
                             f"(found {[j.name for j in jsons]})")
        json_path = matching[0]
        images_dir = kwargs.pop("images_dir", None) or _coco_images_dir(path, json_path, split)
        if images_dir is None:
            raise ValueError(f"open_dataset: cannot find the images folder for {json_path}; pass images_dir=")
        return CocoDetection(images_dir, json_path, **kwargs)

    if task == "det":
        pair = _pair_folders(path, split, "labels")
        if pair is not None:
            return YoloDetection(*pair, **kwargs)
        if _pair_folders(path, split, "masks") is not None:
            raise ValueError(f"open_dataset: {path} holds images/ + masks/ (segmentation) but task "
                             f"'det' needs boxes (YOLO labels/, VOC Annotations/ or COCO json)")
    else:
        pair = _pair_folders(path, split, "masks")
        if pair is not None:
            return MaskFolder(*pair, **kwargs)
        if _pair_folders(path, split, "labels") is not None:
            raise ValueError(f"open_dataset: {path} holds images/ + labels/ (YOLO detection) but "
                             f"task 'seg' needs masks (masks/ or VOC SegmentationClass/)")
    raise ValueError(f"open_dataset: cannot tell the dataset format of {path}: expected VOC "
                     f"(JPEGImages/), COCO (annotations/*.json), YOLO (images/ + labels/) or "
                     f"images/ + masks/, optionally under a {split!r} folder")
