"""Batch samples for detection (list of targets) and segmentation (stacked masks)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def _stack_images(batch: Sequence, fn: str) -> Tensor:
    if len(batch) == 0:
        raise ValueError(f"{fn}: got an empty batch")
    images = [sample[0] for sample in batch]
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) != 1:
        raise ValueError(f"{fn}: images in a batch must share one shape, got {sorted(shapes)}; "
                         f"add Resize or RandomCrop to the dataset's transforms")
    return torch.stack(images)


def collate_detection(batch: Sequence) -> "tuple[Tensor, list[dict]]":
    """``[(image, target), ...] -> (images Tensor[B, 3, H, W], targets list[dict])``.

    Images must share one size; targets are passed through unchanged (each keeps its own
    number of boxes).
    """
    return _stack_images(batch, "collate_detection"), [sample[1] for sample in batch]


def collate_segmentation(batch: Sequence) -> "tuple[Tensor, Tensor]":
    """``[(image, target), ...] -> (images Tensor[B, 3, H, W], masks int64 Tensor[B, H, W])``."""
    images = _stack_images(batch, "collate_segmentation")
    masks = []
    for i, (_, target) in enumerate(batch):
        if "mask" not in target:
            raise ValueError(f"collate_segmentation: sample {i} of the batch has no 'mask' "
                             f"(a detection-only dataset cannot be used for segmentation)")
        masks.append(target["mask"].long())
    return images, torch.stack(masks)
