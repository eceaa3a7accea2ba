"""Benchmark cases of COCO masks as data (``tritonvision.masks``, numpy) against
``pycocotools.mask`` (C), host work whatever the device:

* from_polygons: 500 synthetic instance polygons (star-shaped, 8..40 vertices, radius
  10..150 px, 1-3 polygons per instance) of 640 x 480 images -> one RLE each, as
  ``COCO.annToRLE`` (pycocotools: ``merge(frPyObjects(polys, h, w))``);
* encode / decode: 100 masks of 512 x 512 (the ellipses of perf/cases/mask_iou.py).
"""
from __future__ import annotations

import numpy as np
import torch

from perf.cases.mask_iou import _ellipses
from perf.harness import BenchCase

POLYGON_COUNTS = {"tiny": 20, "small": 500, "full": 500}
ENCODE_SIZES = {"tiny": (8, 64), "small": (100, 512), "full": (100, 512)}
HEIGHT, WIDTH = 480, 640


def _instances(count: int, seed: int) -> list[list[list[float]]]:
    rng = np.random.default_rng(seed)
    instances = []
    for _ in range(count):
        parts = []
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(8, 41))
            angles = np.sort(rng.uniform(0, 2 * np.pi, k))
            radii = rng.uniform(10, 150) * rng.uniform(0.5, 1.0, k)
            cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
            xy = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
            parts.append(np.round(xy, 2).ravel().tolist())
        instances.append(parts)
    return instances


def cases(device: torch.device, size: str) -> list[BenchCase]:
    from pycocotools import mask as mask_utils

    from tritonvision import masks

    count = POLYGON_COUNTS[size]
    found = [BenchCase(
        family="masks", name="from_polygons", shape=f"{count} instances {WIDTH}x{HEIGHT}", dtype="polygon",
        make_inputs=lambda k: (_instances(count, 6000 + k),),
        ours=lambda instances: [masks.from_polygons(p, HEIGHT, WIDTH) for p in instances],
        baselines={"pycocotools": lambda instances: [mask_utils.merge(mask_utils.frPyObjects(p, HEIGHT, WIDTH))
                                                     for p in instances]})]
    n, side = ENCODE_SIZES[size]

    def make_masks(k: int) -> tuple:
        return (_ellipses(n, side, torch.Generator().manual_seed(7000 + k)).numpy(),)

    found.append(BenchCase(
        family="masks", name="encode", shape=f"N={n} {side}x{side}", dtype="bool", make_inputs=make_masks,
        ours=masks.encode,
        baselines={"pycocotools": lambda m: mask_utils.encode(np.asfortranarray(m.transpose(1, 2, 0).astype(np.uint8)))}))
    found.append(BenchCase(
        family="masks", name="decode", shape=f"N={n} {side}x{side}", dtype="rle",
        make_inputs=lambda k: (masks.encode(make_masks(k)[0]),),
        ours=masks.decode, baselines={"pycocotools": mask_utils.decode}))
    return found
