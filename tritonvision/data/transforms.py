"""Transforms applied to an image, its mask and its boxes together.

Every transform is ``__call__(image, target) -> (image, target)`` on the sample format of
``tritonvision.data``: image float32 [3, H, W]; target with optional ``boxes`` [K, 4] xyxy
pixels (pixel-edge coordinates: a pixel at column c covers [c, c + 1]), ``mask`` [H, W]
and per-object tensors (``labels``, ``difficult``, ``iscrowd``) that are filtered along
with the boxes when boxes are dropped. The input target is not modified (a new dict is
returned). Masks are resampled by nearest neighbour, never blended.

Random transforms take ``generator`` (a ``torch.Generator``) or ``seed`` (an int that
seeds a private generator); with neither they draw from torch's global RNG, which
``torch.utils.data.DataLoader`` seeds differently in each worker. (A transform built with
``seed`` is copied into every DataLoader worker with the same state, so the workers repeat
one another's draws: use ``seed`` for reproducible single-process runs only.)
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

PER_OBJECT_KEYS = ("labels", "difficult", "iscrowd", "area", "scores")
MASK_PAD_VALUE = 255  # padded mask pixels are "ignore" (void), like VOC's boundaries

Size = Union[int, Sequence[int]]


def _pair(size: Size, name: str) -> "tuple[int, int]":
    if isinstance(size, int):
        h = w = size
    else:
        if len(size) != 2:
            raise ValueError(f"{name}: size must be an int or (height, width), got {size!r}")
        h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"{name}: size must be positive, got {size!r}")
    return h, w


def _make_generator(generator: Optional[torch.Generator], seed: Optional[int]) -> Optional[torch.Generator]:
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both")
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    return generator


def _uniform(generator: Optional[torch.Generator]) -> float:
    return float(torch.rand((), generator=generator))


def _randint(high: int, generator: Optional[torch.Generator]) -> int:
    """Uniform integer in [0, high] inclusive."""
    return int(torch.randint(0, high + 1, (), generator=generator))


def _keep_objects(target: dict, keep: Tensor) -> None:
    n = target["boxes"].shape[0]
    target["boxes"] = target["boxes"][keep]
    for key in PER_OBJECT_KEYS:
        value = target.get(key)
        if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == n:
            target[key] = value[keep]


def _nearest_indices(out_size: int, in_size: int) -> Tensor:
    """Source index of each output pixel centre (the 'nearest-exact' rule):
    floor((c + 0.5) * in / out), in exact integer arithmetic."""
    c = torch.arange(out_size, dtype=torch.int64)
    return ((2 * c + 1) * in_size // (2 * out_size)).clamp_(0, in_size - 1)


def resize_sample(image: Tensor, target: dict, size: "tuple[int, int]") -> "tuple[Tensor, dict]":
    """Resize to ``size = (height, width)``: image bilinear (antialiased when shrinking),
    mask nearest, boxes scaled by the exact ratios."""
    h, w = image.shape[-2:]
    out_h, out_w = size
    target = dict(target)
    if (out_h, out_w) == (h, w):
        return image, target
    image = F.interpolate(image[None], size=(out_h, out_w), mode="bilinear", align_corners=False,
                          antialias=out_h < h or out_w < w)[0].clamp_(0.0, 1.0)
    if "mask" in target:
        rows, cols = _nearest_indices(out_h, h), _nearest_indices(out_w, w)
        target["mask"] = target["mask"][rows[:, None], cols[None, :]]
    if "boxes" in target:
        scale = torch.tensor([out_w / w, out_h / h, out_w / w, out_h / h], dtype=target["boxes"].dtype)
        target["boxes"] = target["boxes"] * scale
    return image, target


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, image: Tensor, target: dict) -> "tuple[Tensor, dict]":
        for t in self.transforms:
            image, target = t(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``: image, mask and boxes (x -> W - x)."""

    def __init__(self, p: float = 0.5, generator: Optional[torch.Generator] = None,
                 seed: Optional[int] = None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.generator = _make_generator(generator, seed)

    def __call__(self, image: Tensor, target: dict) -> "tuple[Tensor, dict]":
        target = dict(target)
        if _uniform(self.generator) >= self.p:
            return image, target
        w = image.shape[-1]
        image = image.flip(-1)
        if "mask" in target:
            target["mask"] = target["mask"].flip(-1)
        if "boxes" in target:
            b = target["boxes"]
            target["boxes"] = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], dim=1)
        return image, target

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Resize:
    """Resize to ``size`` (int for square, or (height, width)); see :func:`resize_sample`."""

    def __init__(self, size: Size):
        self.size = _pair(size, "Resize")

    def __call__(self, image: Tensor, target: dict) -> "tuple[Tensor, dict]":
        return resize_sample(image, target, self.size)

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


LETTERBOX_FILL = 114 / 255  # Ultralytics' grey


def letterbox_geometry(height: int, width: int, size: "tuple[int, int]") -> "tuple[int, int, int, int]":
    """How :class:`Letterbox` fits a ``height x width`` image into ``size = (H, W)``:
    ``(new_height, new_width, top, left)``: the image is resized, aspect ratio kept, to the
    largest ``new_height x new_width`` that fits and placed at ``(top, left)``, the rest
    padded. A point ``(x, y)`` of the original maps to
    ``(x * new_width / width + left, y * new_height / height + top)``."""
    out_h, out_w = size
    scale = min(out_h / height, out_w / width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    return new_h, new_w, (out_h - new_h) // 2, (out_w - new_w) // 2


class Letterbox:
    """Resize to fit ``size`` keeping the aspect ratio, then pad to exactly ``size``
    (centred; image with ``fill``, mask with ``mask_fill`` = ignore). Boxes are scaled by
    the resize's exact ratios and shifted by the padding (see :func:`letterbox_geometry`)."""

    def __init__(self, size: Size, fill: float = LETTERBOX_FILL, mask_fill: int = MASK_PAD_VALUE):
        self.size = _pair(size, "Letterbox")
        self.fill, self.mask_fill = float(fill), int(mask_fill)

    def __call__(self, image: Tensor, target: dict) -> "tuple[Tensor, dict]":
        new_h, new_w, top, left = letterbox_geometry(*image.shape[-2:], self.size)
        image, target = resize_sample(image, target, (new_h, new_w))
        bottom, right = self.size[0] - new_h - top, self.size[1] - new_w - left
        if not (top or bottom or left or right):
            return image, target
        image = F.pad(image, (left, right, top, bottom), value=self.fill)
        if "mask" in target:
            target["mask"] = F.pad(target["mask"], (left, right, top, bottom), value=self.mask_fill)
        if "boxes" in target:
            target["boxes"] = target["boxes"] + torch.tensor([left, top, left, top],
                                                             dtype=target["boxes"].dtype)
        return image, target

    def __repr__(self) -> str:
        return f"Letterbox(size={self.size}, fill={self.fill:.4f}, mask_fill={self.mask_fill})"


class RandomScale:
    """Resize by a factor drawn uniformly from [min_scale, max_scale] (same for both sides;
    the new size is rounded to whole pixels and boxes follow the exact ratio)."""

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0,
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None):
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"RandomScale: need 0 < min_scale <= max_scale, got "
                             f"{min_scale}, {max_scale}")
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)
        self.generator = _make_generator(generator, seed)

    def __call__(self, image: Tensor, target: dict) -> "tuple[Tensor, dict]":
        s = self.min_scale + (self.max_scale - self.min_scale) * _uniform(self.generator)
        h, w = image.shape[-2:]
        return resize_sample(image, target, (max(1, round(h * s)), max(1, round(w * s))))

    def __repr__(self) -> str:
        return f"RandomScale(min_scale={self.min_scale}, max_scale={self.max_scale})"


class RandomCrop:
    """Crop a random ``size`` window (int or (height, width)).

    A side smaller than ``size`` is first padded at the bottom/right: image with ``fill``,
    mask with ``mask_fill`` (255 = ignore by default). Boxes are shifted and clipped to the
    window; boxes left with zero width or height are dropped with their per-object entries
    (a kept box may cover only an occluded part of its object).
    """

    def __init__(self, size: Size, fill: float = 0.0, mask_fill: int = MASK_PAD_VALUE,
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None):
        self.size = _pair(size, "RandomCrop")
        self.fill, self.mask_fill = float(fill), int(mask_fill)
        self.generator = _make_generator(generator, seed)

    def __call__(self, image: Tensor, target: dict) -> "tuple[Tensor, dict]":
        target = dict(target)
        ch, cw = self.size
        h, w = image.shape[-2:]
        pad_h, pad_w = max(0, ch - h), max(0, cw - w)
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), value=self.fill)
            if "mask" in target:
                target["mask"] = F.pad(target["mask"], (0, pad_w, 0, pad_h), value=self.mask_fill)
            h, w = h + pad_h, w + pad_w
        top = _randint(h - ch, self.generator)
        left = _randint(w - cw, self.generator)
        image = image[:, top:top + ch, left:left + cw]
        if "mask" in target:
            target["mask"] = target["mask"][top:top + ch, left:left + cw]
        if "boxes" in target:
            b = target["boxes"] - torch.tensor([left, top, left, top], dtype=target["boxes"].dtype)
            b[:, 0::2] = b[:, 0::2].clamp(0, cw)
            b[:, 1::2] = b[:, 1::2].clamp(0, ch)
            target["boxes"] = b
            _keep_objects(target, (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1]))
        return image, target

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, fill={self.fill}, mask_fill={self.mask_fill})"


class Normalize:
    """Image only: ``(image - mean) / std`` per channel (masks and boxes untouched)."""

    def __init__(self, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225)):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image: Tensor, target: dict) -> "tuple[Tensor, dict]":
        return (image - self.mean) / self.std, dict(target)
