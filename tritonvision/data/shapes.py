"""Synthetic shapes: circles, squares and triangles on textured backgrounds.

The embedded default dataset for training and testing detection and segmentation without
downloading anything. Every sample is generated on the fly from ``(seed, split, index)``
alone, so sample ``i`` is the same whatever order it is read in, in any process, and a
train and a val split of the same seed never share an image.

Ground truth is exact (no anti-aliasing, no annotation noise):

- ``mask`` int64 [H, W]: 0 = background, ``1 + label`` for the pixels where an object is
  *visible*. Objects are painted in order, so later objects occlude earlier ones.
- ``boxes`` float32 [K, 4] xyxy in pixel-edge coordinates: the tight box of the object's
  *full* footprint (occluded parts included) clipped to the image. A pixel (row r, col c)
  covers ``[c, c + 1] x [r, r + 1]``, so a footprint whose columns run from c0 to c1
  has ``x1 = c0, x2 = c1 + 1``. Every visible pixel of an object lies inside its box.
- ``labels`` int64 [K]: 0 = circle, 1 = square, 2 = triangle (``CLASSES``).
- An object whose footprint misses the image, or which is fully occluded by later objects
  (visible area 0), is dropped from ``boxes``/``labels``; objects keep painting order.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

CLASSES = ("circle", "square", "triangle")
SPLITS = {"train": 0, "val": 1, "test": 2}

Transform = Callable[[Tensor, dict], "tuple[Tensor, dict]"]


class ShapesDataset(Dataset):
    """Synthetic detection + segmentation dataset of circles, squares and triangles.

    Args:
        num_images: number of samples (``len(dataset)``).
        image_size: side of the square images, in pixels.
        seed: the dataset seed; sample ``i`` depends only on ``(seed, split, i)``.
        max_objects: each image has 1..max_objects objects before dropping invisible ones.
        min_size: smallest object size in pixels: the diameter of the object's
            circumscribed circle (circle diameter; a square's diagonal; an equilateral
            triangle's circumcircle); default ``max(4, image_size // 8)``.
        max_size: largest object size; default ``max(min_size, image_size // 2)``.
        transforms: optional ``transforms(image, target) -> (image, target)``. A random
            transform draws from its own generator, so augmented samples are reproducible
            only when read in the same order (the un-augmented sample always is).
        split: "train", "val" or "test": independent random streams of the same seed.
            Use :meth:`split` (or two instances with split="train"/"val") for train/val;
            this is what the CLI should do.

    Each sample is ``(image, target)``: image float32 [3, H, W] in [0, 1]; target dict with
    ``boxes`` float32 [K, 4] xyxy, ``labels`` int64 [K], ``mask`` int64 [H, W] (0 =
    background, 1 + label), ``image_id`` int (the index). See the module docstring for the
    exact box and occlusion conventions.
    """

    CLASSES = CLASSES
    num_classes = len(CLASSES)
    num_seg_classes = len(CLASSES) + 1

    def __init__(self, num_images: int, image_size: int = 64, seed: int = 0,
                 max_objects: int = 4, min_size: Optional[int] = None,
                 max_size: Optional[int] = None, transforms: Optional[Transform] = None,
                 split: str = "train"):
        if int(num_images) < 0:
            raise ValueError(f"ShapesDataset: num_images must be >= 0, got {num_images}")
        if int(image_size) < 8:
            raise ValueError(f"ShapesDataset: image_size must be >= 8, got {image_size}")
        if int(max_objects) < 1:
            raise ValueError(f"ShapesDataset: max_objects must be >= 1, got {max_objects}")
        if split not in SPLITS:
            raise ValueError(f"ShapesDataset: split must be one of {sorted(SPLITS)}, got {split!r}")
        if int(seed) < 0:
            raise ValueError(f"ShapesDataset: seed must be >= 0, got {seed}")
        self.num_images = int(num_images)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.max_objects = int(max_objects)
        self.min_size = int(min_size) if min_size is not None else max(4, self.image_size // 8)
        self.max_size = (int(max_size) if max_size is not None
                         else max(self.min_size, self.image_size // 2))
        if not 2 <= self.min_size <= self.max_size:
            raise ValueError(f"ShapesDataset: need 2 <= min_size <= max_size, got "
                             f"min_size={self.min_size}, max_size={self.max_size}")
        self.transforms = transforms
        self.split_name = split
        self._yy, self._xx = np.mgrid[0:self.image_size, 0:self.image_size].astype(np.float32) + 0.5

    @classmethod
    def split(cls, num_train: int, num_val: int, seed: int = 0, image_size: int = 64,
              **kwargs) -> "tuple[ShapesDataset, ShapesDataset]":
        """Train and val datasets of the same seed from disjoint random streams.

        ``kwargs`` (max_objects, min_size, max_size, transforms) go to both; pass
        ``transforms`` to the train one yourself if val should stay un-augmented.
        """
        train = cls(num_train, image_size=image_size, seed=seed, split="train", **kwargs)
        kwargs.pop("transforms", None)
        val = cls(num_val, image_size=image_size, seed=seed, split="val", **kwargs)
        return train, val

    def __len__(self) -> int:
        return self.num_images

    def __repr__(self) -> str:
        return (f"ShapesDataset(num_images={self.num_images}, image_size={self.image_size}, "
                f"seed={self.seed}, split={self.split_name!r}, max_objects={self.max_objects}, "
                f"min_size={self.min_size}, max_size={self.max_size})")

    def __getitem__(self, index: int):
        index = int(index)
        if index < 0:
            index += self.num_images
        if not 0 <= index < self.num_images:
            raise IndexError(f"ShapesDataset: index {index} out of range for {self.num_images} images")
        image, target = self.generate(index)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    # ------------------------------------------------------------------ generation
    def generate(self, index: int) -> "tuple[Tensor, dict]":
        """The un-augmented sample ``index`` (no bounds check, no transforms)."""
        rng = np.random.default_rng([self.seed, SPLITS[self.split_name], int(index)])
        size = self.image_size
        image, bg_a, bg_b = self._background(rng)
        owner = np.full((size, size), -1, dtype=np.int16)

        n = int(rng.integers(1, self.max_objects + 1))
        labels, boxes = [], []
        for _ in range(n):
            label = int(rng.integers(0, len(CLASSES)))
            s = float(rng.uniform(self.min_size, self.max_size))
            cx, cy = rng.uniform(0, size, 2)
            angle = float(rng.uniform(0, 2 * math.pi))
            colour = _contrasting_colour(rng, bg_a, bg_b)
            # window of pixels the shape can touch (circumradius <= s / 2 for all shapes)
            half = s / 2 + 1
            c0, c1 = max(0, int(cx - half)), min(size, int(math.ceil(cx + half)))
            r0, r1 = max(0, int(cy - half)), min(size, int(math.ceil(cy + half)))
            if c0 >= c1 or r0 >= r1:
                continue
            dx = self._xx[r0:r1, c0:c1] - cx
            dy = self._yy[r0:r1, c0:c1] - cy
            foot = _footprint(label, dx, dy, s, angle)
            cols = np.flatnonzero(foot.any(0))
            if cols.size == 0:
                continue
            rows = np.flatnonzero(foot.any(1))
            k = len(labels)
            owner[r0:r1, c0:c1][foot] = k
            image[r0:r1, c0:c1][foot] = colour
            labels.append(label)
            boxes.append((c0 + cols[0], r0 + rows[0], c0 + cols[-1] + 1, r0 + rows[-1] + 1))

        # drop fully occluded objects; the mask is a lookup of each pixel's owner
        owner_flat = owner.ravel().astype(np.intp) + 1
        visible = np.bincount(owner_flat, minlength=len(labels) + 1)[1:]
        keep = np.flatnonzero(visible > 0)
        labels_np = np.asarray(labels, dtype=np.int64).reshape(-1)
        mask = np.concatenate([[0], labels_np + 1])[owner_flat].reshape(size, size)

        # mild sensor noise over the whole picture so colours are not perfectly flat
        # (uniform, std 0.02: cheaper to draw than Gaussian noise)
        noise = rng.random((size, size, 3), dtype=np.float32)
        image += (noise - 0.5) * np.float32(0.02 * math.sqrt(12))
        np.clip(image, 0.0, 1.0, out=image)

        boxes_np = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)[keep]
        target = {
            "boxes": torch.from_numpy(np.ascontiguousarray(boxes_np)),
            "labels": torch.from_numpy(np.ascontiguousarray(labels_np[keep])),
            "mask": torch.from_numpy(mask),
            "image_id": int(index),
        }
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), target

    def _background(self, rng: np.random.Generator) -> "tuple[np.ndarray, np.ndarray, np.ndarray]":
        """A textured [H, W, 3] float32 background (smooth noise, a gradient, or stripes)
        blending two colours a and b; returns (background, a, b)."""
        size = self.image_size
        kind = int(rng.integers(0, 3))
        a = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        b = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        if kind == 0:  # blocky smooth noise: low-res noise upsampled
            cell = int(rng.integers(2, 9))
            low = (size + cell - 1) // cell
            t = rng.uniform(0.0, 1.0, (low, low, 1)).astype(np.float32)
            t = np.repeat(np.repeat(t, cell, 0), cell, 1)[:size, :size]
        elif kind == 1:  # linear gradient along a random direction
            theta = rng.uniform(0, 2 * math.pi)
            proj = (self._xx * math.cos(theta) + self._yy * math.sin(theta)) / size
            t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
            t = t[..., None]
        else:  # stripes of random period and direction
            theta = rng.uniform(0, math.pi)
            period = rng.uniform(4, max(5.0, size / 4))
            proj = self._xx * math.cos(theta) + self._yy * math.sin(theta)
            t = (0.5 + 0.5 * np.sin(2 * math.pi * proj / period))[..., None]
        return (a + (b - a) * t).astype(np.float32), a, b


def _footprint(label: int, dx: np.ndarray, dy: np.ndarray, s: float, angle: float) -> np.ndarray:
    """Boolean footprint of a shape of size ``s`` centred at dx = dy = 0 (pixel centres)."""
    r = s / 2
    if label == 0:  # circle of diameter s
        return dx * dx + dy * dy <= r * r
    cos, sin = math.cos(angle), math.sin(angle)
    if label == 1:  # rotated square inscribed in the circle of diameter s
        h = r / math.sqrt(2)  # half-side
        u = dx * cos + dy * sin
        v = -dx * sin + dy * cos
        return (np.abs(u) <= h) & (np.abs(v) <= h)
    # equilateral triangle with circumradius r, vertices counter-clockwise
    inside = np.ones(dx.shape, dtype=bool)
    verts = [(r * math.cos(angle + k * 2 * math.pi / 3), r * math.sin(angle + k * 2 * math.pi / 3))
             for k in range(3)]
    for (ax, ay), (bx, by) in zip(verts, verts[1:] + verts[:1]):
        inside &= (bx - ax) * (dy - ay) - (by - ay) * (dx - ax) >= 0
    return inside


def _contrasting_colour(rng: np.random.Generator, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A random RGB colour at least 0.35 away (L2) from every background colour (the segment
    from a to b), else the farthest of 8 draws."""
    cand = rng.uniform(0.0, 1.0, (8, 3)).astype(np.float32)
    ab = b - a
    t = np.clip((cand - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    dist = np.linalg.norm(cand - (a + t[:, None] * ab), axis=1)
    ok = np.flatnonzero(dist >= 0.35)
    return cand[ok[0]] if ok.size else cand[int(np.argmax(dist))]
