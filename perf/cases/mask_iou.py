"""Benchmark cases of mask IoU and Matrix NMS, bool masks.

* mask_iou: N x M masks of S x S, random ellipses of instance size (radius 4..S/4):
  100 x 100 of 512^2 ("full"), 40 x 40 of 128^2 ("small"). Baselines: "eager" (the
  float matmul of flattened masks people write in torch, as mmdet does), "compile"
  (``torch.compile`` of it), and "pycocotools" -- ``mask.encode`` of both stacks plus
  ``mask.iou`` on the RLEs: *encoding included*, the cost for dense masks.
* rle_iou (CPU only): ``tritonvision.masks.iou`` against ``pycocotools.mask.iou`` on the
  same RLEs of those masks with a third of the columns crowd: *encoding excluded*, the
  evaluation-time cost.
* matrix_nms: N masks of S x S, 3 classes, gaussian kernel: N = 500 of 256^2 ("full"),
  100 of 128^2 ("small"). Baseline "eager": mmdet's ``mask_matrix_nms`` math in plain
  torch (float matmul IoU, the decay matrices), and its ``torch.compile``.

Minimum traffic: the masks read once (one byte per pixel), the result written once.
"""
from __future__ import annotations

import numpy as np
import torch

from perf.harness import BenchCase, compiled

IOU_SIZES = {"tiny": (8, 8, 32), "small": (40, 40, 128), "full": (100, 100, 512)}
MATRIX_SIZES = {"tiny": (12, 32), "small": (100, 128), "full": (500, 256)}
SIGMA = 2.0


def _ellipses(n: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """[n, side, side] bool: filled ellipses, radius 4 .. side / 4, centred anywhere."""
    centre = torch.rand(n, 2, 1, 1, generator=generator) * side
    radius = 4 + torch.rand(n, 2, 1, 1, generator=generator) * (side / 4 - 4)
    ys = torch.arange(side, dtype=torch.float32)[:, None]
    xs = torch.arange(side, dtype=torch.float32)[None, :]
    return ((ys - centre[:, 0]) / radius[:, 0]) ** 2 + ((xs - centre[:, 1]) / radius[:, 1]) ** 2 <= 1


def eager_mask_iou(masks1: torch.Tensor, masks2: torch.Tensor) -> torch.Tensor:
    a, b = masks1.flatten(1).float(), masks2.flatten(1).float()
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return inter / union


def pycocotools_mask_iou(masks1: torch.Tensor, masks2: torch.Tensor) -> np.ndarray:
    from pycocotools import mask as mask_utils

    def encode(m: torch.Tensor):
        return mask_utils.encode(np.asfortranarray(m.permute(1, 2, 0).cpu().numpy().astype(np.uint8)))
    return mask_utils.iou(encode(masks1), encode(masks2), [0] * masks2.shape[0])


def eager_matrix_nms(masks: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """mmdet's mask_matrix_nms core (no filter, no top-k), decayed scores in input order."""
    sorted_scores, order = scores.sort(descending=True)
    flat = masks[order].flatten(1).float()
    area = flat.sum(1)
    n = flat.shape[0]
    inter = flat @ flat.T
    iou = (inter / (area[:, None] + area[None, :] - inter)).triu(1)
    sorted_labels = labels[order]
    same = (sorted_labels[:, None] == sorted_labels[None, :]).triu(1)
    decay_iou = iou * same
    compensate = decay_iou.max(0).values.expand(n, n).T
    coefficient = (torch.exp(-SIGMA * decay_iou ** 2) / torch.exp(-SIGMA * compensate ** 2)).min(0).values
    return torch.empty_like(scores).scatter_(0, order, sorted_scores * coefficient)


def cases(device: torch.device, size: str) -> list[BenchCase]:
    import tritonvision.ops as ops
    from tritonvision import masks as rle

    n, m, side = IOU_SIZES[size]

    def make_iou_inputs(k: int) -> tuple:
        generator = torch.Generator().manual_seed(4000 + k)
        return _ellipses(n, side, generator).to(device), _ellipses(m, side, generator).to(device)

    shape = f"N={n} M={m} {side}x{side}"
    found = [BenchCase(
        family="mask_iou", name="mask_iou", shape=shape, dtype="bool", make_inputs=make_iou_inputs,
        ours=ops.mask_iou,
        baselines={"eager": eager_mask_iou, "compile": compiled(eager_mask_iou),
                   "pycocotools": pycocotools_mask_iou},
        bytes_moved=(n + m) * side * side + n * m * 4)]

    if device.type == "cpu":
        def make_rle_inputs(k: int) -> tuple:
            masks1, masks2 = make_iou_inputs(k)
            crowd = np.arange(m) % 3 == 0
            return rle.encode(masks1), rle.encode(masks2), crowd

        def pycocotools_rle_iou(dt, gt, crowd):
            from pycocotools import mask as mask_utils
            return mask_utils.iou(dt, gt, crowd.astype(np.uint8))

        found.append(BenchCase(
            family="mask_iou", name="rle_iou", shape=shape + " RLE", dtype="rle", make_inputs=make_rle_inputs,
            ours=rle.iou, baselines={"pycocotools": pycocotools_rle_iou}))

    count, side = MATRIX_SIZES[size]

    def make_matrix_inputs(k: int) -> tuple:
        generator = torch.Generator().manual_seed(5000 + k)
        return (_ellipses(count, side, generator).to(device),
                torch.randint(0, 3, (count,), generator=generator).to(device),
                torch.rand(count, generator=generator).to(device))

    found.append(BenchCase(
        family="mask_iou", name="matrix_nms", shape=f"N={count} {side}x{side} C=3", dtype="bool",
        make_inputs=make_matrix_inputs,
        ours=lambda masks, labels, scores: ops.matrix_nms(masks, labels, scores, "gaussian", SIGMA),
        baselines={"eager": eager_matrix_nms, "compile": compiled(eager_matrix_nms)},
        bytes_moved=count * side * side + count * 16))
    return found
