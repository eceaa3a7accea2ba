"""Benchmark cases of the pairwise IoU family: box_iou, generalized/distance/complete box IoU
and the thresholded IoU bitmask, fp32, N = M = 8192 ("full") or 512 ("small").

Baselines: torchvision.ops (the anchor: the same functions, and for the bitmask
``torchvision.ops.box_iou(a, b) > thr``, the bool matrix people build today), "eager"
(the math written in plain torch below) and "compile" (``torch.compile`` of that math).

Minimum traffic: the [N, M] float32 result written once plus the boxes read once,
N * M * 4 + 16 * (N + M) bytes; the bitmask writes N * ceil(M / 32) int32 words
(+ the boxes), 32x less -- its baselines write a bool matrix, N * M bytes.
"""
from __future__ import annotations

import math

import torch

from perf.harness import BenchCase, compiled

SIZES = {"tiny": 48, "small": 512, "full": 8192}
THRESHOLD = 0.5


def _boxes(n: int, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """Boxes of a 640x640 image, 2..200 px wide: a realistic mix of overlaps."""
    xy = torch.rand(n, 2, generator=generator) * 600
    wh = 2 + torch.rand(n, 2, generator=generator) * 198
    return torch.cat([xy, xy + wh], dim=1).to(device)


def _parts(a: torch.Tensor, b: torch.Tensor):
    a, b = a[:, None, :], b[None, :, :]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a + area_b - inter
    return a, b, inter / union, union


def eager_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _parts(a, b)[2]


def eager_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b, iou, union = _parts(a, b)
    wh = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou - (enclosing - union) / enclosing


def _diou_terms(a: torch.Tensor, b: torch.Tensor, eps: float):
    a, b, iou, _ = _parts(a, b)
    wh = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).clamp(min=0)
    diag2 = wh[..., 0] ** 2 + wh[..., 1] ** 2 + eps
    centre = (a[..., :2] + a[..., 2:]) / 2 - (b[..., :2] + b[..., 2:]) / 2
    return a, b, iou, iou - (centre[..., 0] ** 2 + centre[..., 1] ** 2) / diag2


def eager_diou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    return _diou_terms(a, b, eps)[3]


def eager_ciou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    a, b, iou, diou = _diou_terms(a, b, eps)
    atan_a = torch.atan((a[..., 2] - a[..., 0]) / (a[..., 3] - a[..., 1]))
    atan_b = torch.atan((b[..., 2] - b[..., 0]) / (b[..., 3] - b[..., 1]))
    v = (4 / math.pi ** 2) * (atan_a - atan_b) ** 2
    alpha = v / (1 - iou + v + eps)
    return diou - alpha * v


def eager_iou_above(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return eager_iou(a, b) > THRESHOLD


def cases(device: torch.device, size: str) -> list[BenchCase]:
    import torchvision.ops as tv

    import tritonvision.ops as ops

    n = SIZES[size]
    words = -(-n // 32)

    def make_inputs(k: int) -> tuple:
        generator = torch.Generator().manual_seed(1000 + k)
        return _boxes(n, device, generator), _boxes(n, device, generator)

    matrix_bytes = n * n * 4 + 16 * (n + n)
    shape = f"N=M={n}"
    found = []
    for name, ours, anchor, eager in (
        ("box_iou", ops.box_iou, tv.box_iou, eager_iou),
        ("generalized_box_iou", ops.generalized_box_iou, tv.generalized_box_iou, eager_giou),
        ("distance_box_iou", ops.distance_box_iou, tv.distance_box_iou, eager_diou),
        ("complete_box_iou", ops.complete_box_iou, tv.complete_box_iou, eager_ciou),
    ):
        found.append(BenchCase(
            family="box_iou", name=name, shape=shape, dtype="float32", make_inputs=make_inputs,
            ours=ours,
            baselines={"torchvision": anchor, "eager": eager, "compile": compiled(eager)},
            bytes_moved=matrix_bytes))
    found.append(BenchCase(
        family="box_iou", name="box_iou_threshold", shape=f"{shape} thr={THRESHOLD}", dtype="float32",
        make_inputs=make_inputs,
        ours=lambda a, b: ops.box_iou_threshold(a, b, THRESHOLD),
        baselines={"torchvision": lambda a, b: tv.box_iou(a, b) > THRESHOLD,
                   "eager": eager_iou_above, "compile": compiled(eager_iou_above)},
        bytes_moved=n * words * 4 + 16 * (n + n)))
    return found
