"""The datasets of a run: the splits a :class:`TrainConfig` names, their transforms
(letterbox to the training size; flip / scale / crop augmentation for training), a held-out
validation part when asked for, and the class names."""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch.utils.data import Dataset, Subset

from .config import TrainConfig

DEFAULT_AUGMENTATION = {"fliplr": 0.5, "scale": 0.25}  # image folders; the shapes get none


class CachedDataset(Dataset):
    """Generate every sample once and keep it (synthetic shapes: fixed, cheap to hold);
    ``transforms`` (random augmentation) are applied to the kept sample at every access."""

    def __init__(self, dataset: Dataset, transforms: Optional[Callable] = None):
        self.dataset = dataset
        self.transforms = transforms
        self.cache: dict[int, Any] = {}
        for name in ("num_classes", "num_seg_classes", "CLASSES", "classes"):
            if hasattr(dataset, name):
                setattr(self, name, getattr(dataset, name))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        if index not in self.cache:
            self.cache[index] = self.dataset[index]
        image, target = self.cache[index]
        return (image, target) if self.transforms is None else self.transforms(image, target)


def is_shapes(config: TrainConfig) -> bool:
    return str(config.data).lower() == "shapes"


def augmentation(config: TrainConfig) -> list:
    """The random training transforms: zoom by [1 - scale, 1 + scale] then crop / pad back
    to the training size, and a left-right flip with probability fliplr."""
    from tritonvision.data import RandomCrop, RandomHorizontalFlip, RandomScale
    from tritonvision.data.transforms import LETTERBOX_FILL

    default = {} if is_shapes(config) else DEFAULT_AUGMENTATION
    scale = config.scale if config.scale is not None else default.get("scale", 0.0)
    fliplr = config.fliplr if config.fliplr is not None else default.get("fliplr", 0.0)
    steps: list = []
    if scale > 0:
        steps += [RandomScale(1 - scale, 1 + scale),
                  RandomCrop(config.image_size, fill=LETTERBOX_FILL)]
    if fliplr > 0:
        steps.append(RandomHorizontalFlip(fliplr))
    return steps


def holdout_indices(count: int, fraction: float, seed: int) -> "tuple[list[int], list[int]]":
    """(train, val) indices: a seeded random ``fraction`` of ``range(count)`` is val."""
    num_val = round(count * fraction)
    if num_val < 1 or num_val >= count:
        raise ValueError(f"--val-split {fraction} of {count} images leaves "
                         f"{num_val} for validation and {count - num_val} for training; "
                         f"both need at least one")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[num_val:]), sorted(order[:num_val])


def open_split(config: TrainConfig, split: str, augment: bool = False) -> Dataset:
    """One split of the run's data: cached shapes, or a dataset read by ``open_dataset`` and
    letterboxed to the training size; with ``config.val_split`` the "train" and "val"
    splits are the two seeded parts of the data's training split."""
    from tritonvision.data import Compose, Letterbox, open_dataset

    steps = augmentation(config) if augment else []
    if is_shapes(config):
        count = config.num_train if split == "train" else config.num_val
        extra = {} if config.min_object_size is None else {"min_size": config.min_object_size}
        shapes = open_dataset("shapes", config.task, split, num_images=count,
                              image_size=config.image_size, seed=config.seed, **extra)
        return CachedDataset(shapes, Compose(steps) if steps else None)
    transforms = Compose([Letterbox(config.image_size), *steps])
    if config.val_split is None or split not in ("train", "val"):
        return open_dataset(config.data, config.task, split, transforms=transforms)
    whole = open_dataset(config.data, config.task, "train", transforms=transforms)
    train_part, val_part = holdout_indices(len(whole), config.val_split, config.seed)
    return Subset(whole, train_part if split == "train" else val_part)


def check_validation_source(config: TrainConfig) -> None:
    """Refuse to validate on the training images unless a hold-out was asked for."""
    from tritonvision.data import split_is_shared

    if is_shapes(config):
        if config.val_split is not None:
            raise ValueError("--val-split applies to image folders; the synthetic shapes have "
                             "their own validation split (size: --num-val)")
        return
    shared = split_is_shared(config.data, config.task, "val")
    if shared and config.val_split is None:
        raise ValueError(f"{config.data} has no validation split of its own (one annotation file, "
                         f"or no train/val folders): training and validation would use the same "
                         f"images. Pass --val-split 0.2 to hold out 20% of them for validation")
    if not shared and config.val_split is not None:
        raise ValueError(f"{config.data} has a validation split of its own; --val-split applies "
                         f"only to data without one")


def _attribute(dataset: Dataset, *names: str):
    """The first of ``names`` that ``dataset`` (or the dataset a Subset wraps) has."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    for name in names:
        value = getattr(dataset, name, None)
        if value is not None:
            return value
    return None


def dataset_classes(dataset: Dataset, task: str, override: Optional[int]) -> int:
    """Number of model outputs: object classes (det) or classes + background (seg)."""
    if override:
        return int(override)
    base = _attribute(dataset, "num_classes")
    if base is None:
        names = _attribute(dataset, "classes", "CLASSES")
        base = len(names) if names else None
    if base is None:
        raise ValueError("cannot tell the number of classes of this dataset; pass --num-classes")
    if task == "seg":
        return int(_attribute(dataset, "num_seg_classes") or base + 1)
    return int(base)


def class_names(dataset: Dataset, task: str, num_classes: int) -> list[str]:
    """Names of the object classes (no background), ``class<i>`` where the data has none."""
    count = num_classes - 1 if task == "seg" else num_classes
    names = list(_attribute(dataset, "classes", "CLASSES", "categories") or [])[:count]
    return names + [f"class{i}" for i in range(len(names), count)]


def collate_fn(task: str):
    from tritonvision.data import collate_detection, collate_segmentation
    return collate_segmentation if task == "seg" else collate_detection
