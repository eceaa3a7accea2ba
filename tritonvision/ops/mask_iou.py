"""Pairwise IoU of binary masks, ``mask_iou``: equal to ``pycocotools.mask.iou`` on the same masks.

One custom op, ``tritonvision::mask_iou(masks1, masks2, iscrowd)`` over batched, flattened
masks [B, N, P] x [B, M, P] -> [B, N, M] float32 (mask NMS reuses the batch axis):

* CUDA (and kernel-test mode): kernels/mask_iou.py -- pack the masks 32 pixels per int32
  word, then popcounts of AND words per pair (exact integer counts);
* CPU: an int8 matmul of the 0/1 masks per image (``torch._int_mm``, exact int32 counts,
  areas included).

Both divide the exact counts in float64 and round once to float32, so they agree bit for
bit with each other and with pycocotools' double IoU rounded to float32. IoU is 0 when
the intersection is empty (also for two empty masks, as pycocotools); a crowd column's
union is the row mask's own area.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
from torch import Tensor

from tritonvision.kernels import mask_iou as kernels

from ._checks import check_same_device, check_tensor
from ._launch import LaunchConfig
from ._op import fused_op

BITS_PER_WORD = 32

PACK = LaunchConfig(dict(BLOCK=64))
"""pack_masks_kernel: words per program."""
PAIRWISE = LaunchConfig(dict(BLOCK_N=32, BLOCK_M=32, BLOCK_K=4))
"""mask_iou_kernel: a BLOCK_N x BLOCK_M tile of pairs, BLOCK_K words of each mask per step.
Not yet measured on a GPU."""


def _divide(inter: Tensor, area1: Tensor, area2: Tensor, iscrowd: Optional[Tensor]) -> Tensor:
    """IoU from exact counts [B, N, M], [B, N], [B, M] (int64 or integral float64)."""
    inter = inter.to(torch.float64)
    union = area1[:, :, None].to(torch.float64) + area2[:, None, :].to(torch.float64) - inter
    if iscrowd is not None:
        union = torch.where(iscrowd[:, None, :], area1[:, :, None].to(torch.float64), union)
    return (inter / union.clamp(min=1)).to(torch.float32)


def _mask_iou_torch(masks1: Tensor, masks2: Tensor, iscrowd: Optional[Tensor]) -> Tensor:
    # One exact int8 x int8 -> int32 matmul per image (torch._int_mm) of the 0/1 masks, each
    # side with a row of ones appended, so the same product also gives both sides' areas
    # (torch's CPU reductions over int8 / bool cost more than the matmul). Bool masks are
    # 0/1 bytes already: no conversion pass. 100 x 100 masks of 512^2 on the 2-core Xeon
    # (AMX): the matmul takes 15 ms, the float32 matmul of the same masks 85 ms.
    batch, n, pixels = masks1.shape
    m = masks2.shape[1]
    ones = masks1.new_ones((batch, 1, max(pixels, 2)), dtype=torch.int8)
    a, b = (torch.nn.functional.pad(x.to(torch.bool).view(torch.int8), (0, max(2 - pixels, 0)))  # nonzero -> 1
            for x in (masks1, masks2))            # an inner size of 1 gives garbage from _int_mm
    a, b = torch.cat([a, ones], 1), torch.cat([b, ones], 1)
    counts = torch.stack([torch._int_mm(a[g], b[g].T) for g in range(batch)]) if batch \
        else a.new_zeros((0, n + 1, m + 1), dtype=torch.int32)
    return _divide(counts[:, :n, :m], counts[:, :n, m], counts[:, n, :m], iscrowd)


def pack_masks(masks: Tensor) -> Tensor:
    """[R, P] bool / uint8 -> [R, ceil(P / 32)] int32 words (pack_masks_kernel)."""
    rows, pixels = masks.shape
    words = torch.empty((rows, triton.cdiv(pixels, BITS_PER_WORD)), dtype=torch.int32, device=masks.device)
    if words.numel():
        source = masks.contiguous()
        source = source.view(torch.uint8) if source.dtype == torch.bool else source
        kernels.pack_masks_kernel[(triton.cdiv(words.numel(), PACK.tiles["BLOCK"]),)](
            source, words, rows, pixels, words.shape[1], **PACK.kwargs)
    return words


def _mask_iou_triton(masks1: Tensor, masks2: Tensor, iscrowd: Optional[Tensor]) -> Tensor:
    batch, n, pixels = masks1.shape
    m = masks2.shape[1]
    out = torch.zeros((batch, n, m), dtype=torch.float32, device=masks1.device)
    if out.numel() == 0 or pixels == 0:
        return out
    words1 = pack_masks(masks1.reshape(batch * n, pixels))
    words2 = words1 if masks2 is masks1 else pack_masks(masks2.reshape(batch * m, pixels))
    crowd = iscrowd.to(torch.int8).contiguous() if iscrowd is not None else words2
    grid = (triton.cdiv(n, PAIRWISE.tiles["BLOCK_N"]), triton.cdiv(m, PAIRWISE.tiles["BLOCK_M"]), batch)
    kernels.mask_iou_kernel[grid](words1, words2, crowd, out, n, m, words1.shape[1],
                                  HAS_CROWD=iscrowd is not None, **PAIRWISE.kwargs)
    return out


def example_masks(batch: int, n: int, height: int, width: int, device: torch.device) -> Tensor:
    """Overlapping random rectangles [batch, n, height, width] bool, for the ops' smoke runs."""
    ys = torch.arange(height, device=device)[:, None]
    xs = torch.arange(width, device=device)[None, :]
    corner = torch.randint(0, max(height, width) // 2, (batch, n, 2, 1, 1), device=device)
    size = torch.randint(1, max(height, width) // 2 + 2, (batch, n, 2, 1, 1), device=device)
    return ((ys >= corner[:, :, 0]) & (ys < corner[:, :, 0] + size[:, :, 0])
            & (xs >= corner[:, :, 1]) & (xs < corner[:, :, 1] + size[:, :, 1]))


mask_iou_op = fused_op(
    "mask_iou", _mask_iou_torch, _mask_iou_triton,
    example=lambda d: (example_masks(1, 7, 9, 11, d).flatten(2), example_masks(1, 5, 9, 11, d).flatten(2),
                       torch.tensor([[False, True, False, False, True]], device=d)))


@mask_iou_op.register_fake
def _(masks1: Tensor, masks2: Tensor, iscrowd: Optional[Tensor]) -> Tensor:
    return masks1.new_empty((masks1.shape[0], masks1.shape[1], masks2.shape[1]), dtype=torch.float32)


def check_masks(masks: Tensor, op: str, name: str, shapes: tuple[str, ...] = ("[N, H, W]",)) -> None:
    """masks must be a bool / uint8 tensor with one of the ``shapes`` (by number of dims)."""
    check_tensor(masks, op, name)
    if masks.dtype not in (torch.bool, torch.uint8):
        raise TypeError(f"{op}: {name} must be bool or uint8 (nonzero = foreground), got {masks.dtype}; "
                        f"threshold soft masks first, e.g. masks > 0.5")
    if masks.dim() not in [shape.count(",") + 1 for shape in shapes]:
        raise ValueError(f"{op}: {name} must have shape {' or '.join(shapes)}, got {list(masks.shape)}")


def mask_iou(masks1: Tensor, masks2: Tensor, iscrowd: Optional[Tensor] = None) -> Tensor:
    """Pairwise intersection-over-union of binary masks, as ``pycocotools.mask.iou``.

    Args:
        masks1: Tensor[N, H, W], bool or uint8 (nonzero = foreground): the detections.
        masks2: Tensor[M, H, W] of the same H, W: the ground truth.
        iscrowd: optional Tensor[M] bool (or 0/1 integers): for a crowd column the union is
            the area of masks1's mask alone (the fraction of the detection inside the crowd
            region), as pycocotools scores crowd ground truth.
    Returns:
        Tensor[N, M] float32: |m1 & m2| / |m1 | m2| from exact pixel counts, divided in
        float64 and rounded once; 0 where the masks do not intersect (also when both are
        empty).
    """
    op = "mask_iou"
    check_masks(masks1, op, "masks1")
    check_masks(masks2, op, "masks2")
    if masks1.shape[1:] != masks2.shape[1:]:
        raise ValueError(f"{op}: masks1 and masks2 must have the same H, W, got "
                         f"{list(masks1.shape[1:])} and {list(masks2.shape[1:])}")
    check_same_device(op, masks1=masks1, masks2=masks2, iscrowd=iscrowd)
    if iscrowd is not None:
        check_tensor(iscrowd, op, "iscrowd")
        if iscrowd.shape != (masks2.shape[0],):
            raise ValueError(f"{op}: iscrowd must have shape [M] = [{masks2.shape[0]}] (one flag per "
                             f"masks2 mask), got {list(iscrowd.shape)}")
        iscrowd = iscrowd.ne(0)[None]
    return mask_iou_op(masks1.flatten(1)[None], masks2.flatten(1)[None], iscrowd)[0]
