"""``open_dataset``: the synthetic shapes, or a folder whose format is detected."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from torch.utils.data import Dataset

from .coco import CocoDetection
from .data_yaml import YAML_SUFFIXES, label_folder, read_data_yaml
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


def _pair_folders(path: Path, split: str, second: str) -> "Optional[tuple[Path, Path, bool]]":
    """(images, <second>, split-specific) folders in one of the three layouts, split-specific first."""
    split_dir = _split_child(path, split)
    layouts = []
    if split_dir is not None:
        layouts.append((split_dir / "images", split_dir / second, True))
    img_split, other_split = _split_child(path / "images", split), _split_child(path / second, split)
    if img_split is not None and other_split is not None:
        layouts.append((img_split, other_split, True))
    layouts.append((path / "images", path / second, False))
    for images, other, specific in layouts:
        if images.is_dir() and other.is_dir():
            return images, other, specific
    return None


@dataclass
class _Source:
    """How to open one split: the reader, its arguments, and whether the data is the
    split's own (False: the same data serves every split)."""
    reader: Callable[..., Dataset]
    args: tuple
    kwargs: dict
    split_specific: bool

    def open(self) -> Dataset:
        return self.reader(*self.args, **self.kwargs)


def _coco_file_source(path: Path, task: str, split: str, kwargs: dict) -> _Source:
    """Rule 1: one COCO annotation file (it serves every split)."""
    if task == "seg":
        kwargs.setdefault("masks", True)
    images_dir = kwargs.pop("images_dir", None)
    if images_dir is None:
        images_dir = _coco_images_dir(path.parent.parent if path.parent.name == "annotations"
                                      else path.parent, path, split)
    if images_dir is None:
        raise ValueError(f"open_dataset: cannot find the images folder for {path}; pass images_dir=")
    return _Source(CocoDetection, (images_dir, path), kwargs, split_specific=False)


def _data_yaml_source(path: Path, task: str, split: str, kwargs: dict) -> _Source:
    """An Ultralytics data.yaml: YOLO labels (det) or masks (seg) beside each split's images;
    a split the file does not name reads the training images."""
    spec = read_data_yaml(path)
    images = spec.images(split)
    specific = images is not None
    images = images if specific else spec.images("train")
    if spec.names is not None:
        kwargs.setdefault("classes", spec.names)
    reader, kind = (YoloDetection, "labels") if task == "det" else (MaskFolder, "masks")
    return _Source(reader, (images, label_folder(images, kind)), kwargs, specific)


def _voc_source(voc: Path, task: str, split: str, kwargs: dict) -> _Source:
    """Rule 2: a VOC folder; the image set named for the split when there is one."""
    sub, reader = ("Main", VOCDetection) if task == "det" else ("Segmentation", VOCSegmentation)
    has_set = (voc / "ImageSets" / sub / f"{split}.txt").is_file()
    if task == "seg" and not (voc / "SegmentationClass").is_dir():
        raise ValueError(f"open_dataset: VOC folder {voc} has no SegmentationClass/ for task 'seg'")
    return _Source(reader, (voc,), {"image_set": split if has_set else None, **kwargs}, has_set)


def _coco_folder_source(ann_dir: Path, jsons: list, task: str, split: str, kwargs: dict) -> _Source:
    """Rule 3: ``annotations/*.json``, the one matching the split (or the only one)."""
    if task == "seg":
        kwargs.setdefault("masks", True)
    matching = [j for j in jsons if _matches_split(j.stem, split)]
    specific = bool(matching)
    if not matching and len(jsons) == 1:
        matching = jsons
    if not matching:
        raise ValueError(f"open_dataset: no annotation json for split {split!r} in {ann_dir} "
                         f"(found {[j.name for j in jsons]})")
    json_path = matching[0]
    images_dir = kwargs.pop("images_dir", None) or _coco_images_dir(ann_dir.parent, json_path, split)
    if images_dir is None:
        raise ValueError(f"open_dataset: cannot find the images folder for {json_path}; pass images_dir=")
    return _Source(CocoDetection, (images_dir, json_path), kwargs, specific)


def _pair_source(path: Path, task: str, split: str, kwargs: dict) -> _Source:
    """Rule 4: images/ beside labels/ (det, YOLO) or masks/ (seg)."""
    wanted, other = ("labels", "masks") if task == "det" else ("masks", "labels")
    pair = _pair_folders(path, split, wanted)
    if pair is not None:
        reader = YoloDetection if task == "det" else MaskFolder
        return _Source(reader, pair[:2], kwargs, pair[2])
    if _pair_folders(path, split, other) is not None:
        raise ValueError(f"open_dataset: {path} holds images/ + {other}/ but task {task!r} needs "
                         + ("boxes (YOLO labels/, VOC Annotations/ or COCO json)" if task == "det"
                            else "masks (masks/ or VOC SegmentationClass/)"))
    raise ValueError(f"open_dataset: cannot tell the dataset format of {path}: expected VOC "
                     f"(JPEGImages/), COCO (annotations/*.json), YOLO (images/ + labels/), "
                     f"images/ + masks/ or an Ultralytics data.yaml, optionally under a {split!r} folder")


def _source(spec: str, task: str, split: str, kwargs: dict) -> _Source:
    """The first rule of :func:`open_dataset` that matches ``spec`` (a path)."""
    if task not in TASKS:
        raise ValueError(f"open_dataset: task must be 'seg' or 'det', got {task!r}")
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"open_dataset: {spec!r} is neither 'shapes' nor an existing path")
    if path.is_file():
        if path.suffix.lower() in YAML_SUFFIXES:
            return _data_yaml_source(path, task, split, kwargs)
        if path.suffix.lower() != ".json":
            raise ValueError(f"open_dataset: {path} is a file but neither a COCO .json nor an "
                             f"Ultralytics data.yaml; pass one of those or a dataset folder "
                             f"(VOC, COCO, YOLO or images/ + masks/) instead")
        return _coco_file_source(path, task, split, kwargs)
    voc = _voc_root(path)
    if voc is not None:
        return _voc_source(voc, task, split, kwargs)
    ann_dir = path / "annotations"
    jsons = sorted(ann_dir.glob("*.json")) if ann_dir.is_dir() else []
    if jsons:
        return _coco_folder_source(ann_dir, jsons, task, split, kwargs)
    return _pair_source(path, task, split, kwargs)


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
       ``masks=True``, semantic masks from the ``segmentation`` polygons/RLE); images from
       ``images_dir=`` or, first that exists, the sibling-of-parent folder named like the
       json stem without ``instances_`` (``annotations/instances_val2017.json`` ->
       ``val2017/``), ``images/<stem>``, ``<split>/``, ``images/<split>``, ``images/``,
       beside the ``annotations`` folder. The one file serves every split.
       A ``.yaml`` / ``.yml`` file: an Ultralytics ``data.yaml`` (see
       :mod:`tritonvision.data.data_yaml`): det -> :class:`YoloDetection`, seg ->
       :class:`MaskFolder`, class names from ``names``; a split it does not name reads
       the ``train`` images.
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

    :func:`split_is_shared` tells whether a split falls back to data that serves every
    split. Remaining kwargs go to the reader (``transforms``, ``classes``, ...). Raises
    FileNotFoundError for a missing path, ValueError for an unknown task or a folder that
    matches no rule (or only a rule for the other task).
    """
    if str(spec).lower() == "shapes":
        if task not in TASKS:
            raise ValueError(f"open_dataset: task must be 'seg' or 'det', got {task!r}")
        num_images = kwargs.pop("num_images", SHAPES_DEFAULT_SIZE.get(split, 200))
        return ShapesDataset(num_images, split=split, **kwargs)
    return _source(spec, task, split, dict(kwargs)).open()


def split_is_shared(spec: str, task: str, split: str) -> bool:
    """True when ``split`` of ``spec`` has no data of its own and :func:`open_dataset` gives
    the data that serves every split (one COCO json, a folder without split folders, a
    data.yaml without that key); False for the synthetic shapes."""
    if str(spec).lower() == "shapes":
        return False
    return not _source(spec, task, split, {}).split_specific
