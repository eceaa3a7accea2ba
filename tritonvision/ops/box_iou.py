"""The pairwise IoU family (IoU, GIoU, DIoU, CIoU) and the thresholded IoU bitmask.

Two custom ops carry the whole family:

* ``tritonvision::box_overlap(boxes1, boxes2, variant, eps, aligned)`` -- the
  [N, M] matrix (``aligned=False``) or the [N] row-wise values (``aligned=True``,
  for losses over matched box pairs); differentiable.
* ``tritonvision::box_iou_threshold(boxes1, boxes2, threshold, upper)`` -- the
  bitmask of IoU > threshold, 32 pairs per int32 word; NMS builds on it.

Arithmetic is float32 (float64 for float64 boxes) whatever the input dtype, and
the result is cast back to the input dtype, as torchvision returns it. Where the
union or the enclosing box is empty the overlap is 0, never NaN; NaN coordinates
give NaN.
"""
from __future__ import annotations

import math

import torch
import triton
from torch import Tensor

from tritonvision.kernels import box_iou as kernels

from ._checks import check_boxes, check_same_device
from ._dtypes import compute_dtype, tl_compute_dtype
from ._launch import LaunchConfig, needs_int64
from ._op import fused_op

VARIANTS = {"iou": kernels.IOU, "giou": kernels.GIOU, "diou": kernels.DIOU, "ciou": kernels.CIOU}
BITS_PER_WORD = 32


# ----------------------------------------------------------------------------- torch math
def _overlap_math(a: Tensor, b: Tensor, variant: int, eps: float) -> Tensor:
    """The kernel's math in torch over broadcastable [..., 4] boxes, in the compute dtype;
    differentiable (CIoU's alpha is a constant, as in torchvision)."""
    a = a.to(compute_dtype(a.dtype))
    b = b.to(compute_dtype(b.dtype))
    ax1, ay1, ax2, ay2 = a.unbind(-1)
    bx1, by1, bx2, by2 = b.unbind(-1)
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    inter = ((torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp(min=0)
             * (torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp(min=0))
    union = area_a + area_b - inter
    zero = torch.zeros((), dtype=a.dtype, device=a.device)
    iou = torch.where(union == 0, zero, inter / torch.where(union == 0, 1, union))
    if variant == kernels.IOU:
        return iou
    encl_w = (torch.maximum(ax2, bx2) - torch.minimum(ax1, bx1)).clamp(min=0)
    encl_h = (torch.maximum(ay2, by2) - torch.minimum(ay1, by1)).clamp(min=0)
    if variant == kernels.GIOU:
        encl = encl_w * encl_h
        return iou - torch.where(encl == 0, zero, (encl - union) / torch.where(encl == 0, 1, encl))
    diag2 = encl_w ** 2 + encl_h ** 2 + eps
    centre2 = ((ax1 + ax2) * 0.5 - (bx1 + bx2) * 0.5) ** 2 + ((ay1 + ay2) * 0.5 - (by1 + by2) * 0.5) ** 2
    diou = iou - centre2 / diag2
    if variant == kernels.DIOU:
        return diou

    def aspect(w: Tensor, h: Tensor) -> Tensor:
        empty = (w == 0) & (h == 0)
        return torch.atan(torch.where(empty, zero, w / torch.where(empty, 1, h)))

    v = (4 / math.pi ** 2) * (aspect(ax2 - ax1, ay2 - ay1) - aspect(bx2 - bx1, by2 - by1)) ** 2
    alpha = (v / (1 - iou + v + eps)).detach()
    return diou - alpha * v


def _pairs(boxes1: Tensor, boxes2: Tensor, aligned: bool) -> tuple[Tensor, Tensor]:
    return (boxes1, boxes2) if aligned else (boxes1[:, None, :], boxes2[None, :, :])


def _overlap_torch(boxes1: Tensor, boxes2: Tensor, variant: int, eps: float, aligned: bool) -> Tensor:
    return _overlap_math(*_pairs(boxes1, boxes2, aligned), variant, eps).to(boxes1.dtype)


# ----------------------------------------------------------------------------- launch configuration
# Tiles of the kernels below, read by their launchers (and through them by perf/resources.py and
# the compile-for-GPU test); kernel-test mode runs the same. Memory-bound kernels: sized for zero
# register spills and >= 16 resident warps per SM on sm_90 (perf/results/sm90-static/resources.md),
# 2 to 8 results per thread; not yet measured on a GPU.
PAIRWISE = {
    (torch.float32, False): LaunchConfig(dict(BLOCK_N=16, BLOCK_M=64)),
    (torch.float32, True): LaunchConfig(dict(BLOCK_N=8, BLOCK_M=64)),
    (torch.float64, False): LaunchConfig(dict(BLOCK_N=8, BLOCK_M=64)),
    (torch.float64, True): LaunchConfig(dict(BLOCK_N=4, BLOCK_M=64)),
}
"""pairwise_box_overlap_kernel by (compute dtype, CIoU): CIoU and float64 keep more registers per pair."""
ALIGNED = LaunchConfig(dict(BLOCK=256))
"""aligned_box_overlap_kernel: 2 box pairs per thread."""
THRESHOLD = {torch.float32: LaunchConfig(dict(BLOCK_N=8, BLOCK_WORDS=4)),
             torch.float64: LaunchConfig(dict(BLOCK_N=4, BLOCK_WORDS=4))}
"""box_iou_threshold_kernel by compute dtype: BLOCK_N rows x 32 * BLOCK_WORDS columns (8 or 4 IoUs per thread)."""


def _overlap_triton(boxes1: Tensor, boxes2: Tensor, variant: int, eps: float, aligned: bool) -> Tensor:
    n, m = boxes1.shape[0], boxes2.shape[0]
    out = boxes1.new_empty((n,) if aligned else (n, m))
    if out.numel() == 0:
        return out
    a, b = boxes1.contiguous(), boxes2.contiguous()
    compute = tl_compute_dtype(boxes1.dtype)
    if aligned:
        kernels.aligned_box_overlap_kernel[(triton.cdiv(n, ALIGNED.tiles["BLOCK"]),)](
            a, b, out, n, eps, VARIANT=variant, COMPUTE=compute, **ALIGNED.kwargs)
    else:
        config = PAIRWISE[compute_dtype(boxes1.dtype), variant == kernels.CIOU]
        grid = (triton.cdiv(n, config.tiles["BLOCK_N"]), triton.cdiv(m, config.tiles["BLOCK_M"]))
        kernels.pairwise_box_overlap_kernel[grid](
            a, b, out, n, m, eps, VARIANT=variant, COMPUTE=compute, INT64=needs_int64(a, b, out), **config.kwargs)
    return out


def example_boxes(n: int, device: torch.device) -> Tensor:
    """Example boxes for the ops' smoke runs (``fused_op(example=...)``)."""
    xy = torch.rand(n, 2, device=device) * 100
    return torch.cat([xy, xy + 1 + torch.rand(n, 2, device=device) * 50], dim=1)


box_overlap_op = fused_op("box_overlap", _overlap_torch, _overlap_triton,
                          example=lambda d: (example_boxes(8, d), example_boxes(5, d), kernels.IOU, 1e-7, False))


@box_overlap_op.register_fake
def _(boxes1: Tensor, boxes2: Tensor, variant: int, eps: float, aligned: bool) -> Tensor:
    n, m = boxes1.shape[0], boxes2.shape[0]
    return boxes1.new_empty((n,) if aligned else (n, m))


def _overlap_backward_impl(boxes1: Tensor, boxes2: Tensor, grad: Tensor, variant: int, eps: float,
                           aligned: bool) -> tuple[Tensor, Tensor]:
    out, vjp = torch.func.vjp(lambda a, b: _overlap_math(*_pairs(a, b, aligned), variant, eps),
                              boxes1, boxes2)
    grad_a, grad_b = vjp(grad.to(out.dtype))
    return grad_a.to(boxes1.dtype), grad_b.to(boxes2.dtype)


# The backward recomputes the torch math under torch.func.vjp inside an opaque op, so
# compile and export see one node. It is O(N * M) like the forward.
box_overlap_backward_op = torch.library.custom_op(
    "tritonvision::box_overlap_backward", _overlap_backward_impl, mutates_args=())


@box_overlap_backward_op.register_fake
def _(boxes1, boxes2, grad, variant, eps, aligned):
    return torch.empty_like(boxes1), torch.empty_like(boxes2)


def _setup_context(ctx, inputs, output):
    boxes1, boxes2, variant, eps, aligned = inputs
    ctx.save_for_backward(boxes1, boxes2)
    ctx.args = (variant, eps, aligned)


def _backward(ctx, grad):
    boxes1, boxes2 = ctx.saved_tensors
    grad_a, grad_b = box_overlap_backward_op(boxes1, boxes2, grad, *ctx.args)
    return grad_a, grad_b, None, None, None


box_overlap_op.register_autograd(_backward, setup_context=_setup_context)


def box_overlap(boxes1: Tensor, boxes2: Tensor, variant: str = "iou", eps: float = 1e-7,
                aligned: bool = False) -> Tensor:
    """IoU, GIoU, DIoU or CIoU of every pair (or of matched pairs, with ``aligned``).

    Args:
        boxes1: Tensor[N, 4], (x1, y1, x2, y2), float16/bfloat16/float32/float64.
        boxes2: Tensor[M, 4] in the same format (M == N when ``aligned``).
        variant: 'iou', 'giou', 'diou' or 'ciou'.
        eps: added to the enclosing diagonal (DIoU, CIoU) and the CIoU alpha
            denominator, as torchvision does.
        aligned: False gives the [N, M] matrix; True the [N] values of pairs (i, i).
    Returns:
        Tensor[N, M] or Tensor[N] in the promoted dtype of the inputs.
    """
    op = "box_overlap" if variant == "iou" else f"{variant}"
    if variant not in VARIANTS:
        raise ValueError(f"box_overlap: variant must be one of {list(VARIANTS)}, got {variant!r}")
    check_boxes(boxes1, op, "boxes1")
    check_boxes(boxes2, op, "boxes2")
    check_same_device(op, boxes1=boxes1, boxes2=boxes2)
    if aligned and boxes1.shape[0] != boxes2.shape[0]:
        raise ValueError(f"{op}: aligned pairs need as many boxes in boxes1 as in boxes2, "
                         f"got {boxes1.shape[0]} and {boxes2.shape[0]}")
    dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    return box_overlap_op(boxes1.to(dtype), boxes2.to(dtype), VARIANTS[variant], float(eps), aligned)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection-over-union (Jaccard index).

    Args:
        boxes1: Tensor[N, 4] in (x1, y1, x2, y2) format, any float dtype.
        boxes2: Tensor[M, 4] in the same format.
    Returns:
        Tensor[N, M]: area(b1 & b2) / area(b1 | b2) of every pair, in [0, 1] for
        well-formed boxes; 0 where the union is empty, NaN where a coordinate is NaN.
    """
    return box_overlap(boxes1, boxes2, "iou")


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise generalised IoU: IoU - (C - U) / C, C the smallest enclosing box, U the union.

    Args and shapes as :func:`box_iou`. Values in [-1, 1]; the penalty is 0 where C is empty.
    """
    return box_overlap(boxes1, boxes2, "giou")


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise distance IoU: IoU - d^2 / (c^2 + eps), d the distance between centres,
    c the diagonal of the enclosing box. Args and shapes as :func:`box_iou`."""
    return box_overlap(boxes1, boxes2, "diou", eps)


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise complete IoU: DIoU - alpha * v, v = 4/pi^2 (atan(w1/h1) - atan(w2/h2))^2,
    alpha = v / (1 - IoU + v + eps) treated as a constant in the gradient (as torchvision).
    Args and shapes as :func:`box_iou`."""
    return box_overlap(boxes1, boxes2, "ciou", eps)


# ----------------------------------------------------------------------------- bitmask
def pack_bits(bits: Tensor, fill: bool = False) -> Tensor:
    """[..., M] bool -> [..., ceil(M / 32)] int32 words, bit k of word w = column 32 w + k;
    the columns past M are ``fill``."""
    m = bits.shape[-1]
    words = triton.cdiv(m, BITS_PER_WORD)
    bits = torch.nn.functional.pad(bits, (0, words * BITS_PER_WORD - m), value=fill)
    shifts = torch.arange(BITS_PER_WORD, device=bits.device, dtype=torch.int64)
    packed = (bits.unflatten(-1, (words, BITS_PER_WORD)).to(torch.int64) << shifts).sum(-1)
    return packed.to(torch.int32)


def exact_threshold(threshold: float, compute: torch.dtype) -> float:
    """A threshold t' with ``iou > t'`` in ``compute`` equal to ``iou > t`` in float64, as
    torchvision compares (float IoU promoted to double): t itself for float64, else the
    largest float32 <= t. The bitmask kernel reads t' from a tensor of the compute dtype."""
    if compute == torch.float64:
        return float(threshold)
    t = torch.tensor(threshold, dtype=torch.float64)
    f = t.to(torch.float32)
    if f.to(torch.float64) > t:
        f = torch.nextafter(f, torch.tensor(-float("inf"), dtype=torch.float32))
    return float(f)


def _threshold_torch(boxes1: Tensor, boxes2: Tensor, threshold: float, upper: bool) -> Tensor:
    n, m = boxes1.shape[1], boxes2.shape[1]
    iou = _overlap_math(boxes1[:, :, None, :], boxes2[:, None, :, :], kernels.IOU, 0.0)
    hit = iou > exact_threshold(threshold, iou.dtype)
    if upper:
        hit &= torch.ones(n, m, dtype=torch.bool, device=hit.device).triu(1)
    return pack_bits(hit)


def threshold_triton(boxes1: Tensor, boxes2: Tensor, threshold: float, upper: bool) -> Tensor:
    """Launch box_iou_threshold_kernel on [B, N, 4] and [B, M, 4] boxes -> [B, N, W] int32."""
    batch, n, m = boxes1.shape[0], boxes1.shape[1], boxes2.shape[1]
    words = triton.cdiv(m, BITS_PER_WORD)
    mask = torch.empty((batch, n, words), dtype=torch.int32, device=boxes1.device)
    if mask.numel() == 0:
        return mask
    compute = compute_dtype(boxes1.dtype)
    config = THRESHOLD[compute]
    grid = (triton.cdiv(n, config.tiles["BLOCK_N"]), triton.cdiv(words, config.tiles["BLOCK_WORDS"]), batch)
    threshold = torch.full((1,), exact_threshold(threshold, compute), dtype=compute, device=boxes1.device)
    kernels.box_iou_threshold_kernel[grid](
        boxes1.contiguous(), boxes2.contiguous(), mask, n, m, words, threshold, UPPER=upper,
        COMPUTE=tl_compute_dtype(boxes1.dtype), **config.kwargs,
        enable_fp_fusion=False)  # no FMA contraction: IoU rounds as torchvision computes it
    return mask


box_iou_threshold_op = fused_op(
    "box_iou_threshold", _threshold_torch, threshold_triton,
    example=lambda d: (example_boxes(40, d)[None], example_boxes(40, d)[None], 0.5, True))


@box_iou_threshold_op.register_fake
def _(boxes1: Tensor, boxes2: Tensor, threshold: float, upper: bool) -> Tensor:
    words = -(-boxes2.shape[1] // BITS_PER_WORD)
    return boxes1.new_empty((boxes1.shape[0], boxes1.shape[1], words), dtype=torch.int32)


def box_iou_threshold(boxes1: Tensor, boxes2: Tensor, threshold: float, upper: bool = False) -> Tensor:
    """Bitmask of IoU(boxes1[i], boxes2[j]) > threshold, 32 pairs per int32 word.

    Args:
        boxes1: Tensor[N, 4] or Tensor[B, N, 4], (x1, y1, x2, y2), any float dtype.
        boxes2: Tensor[M, 4] or Tensor[B, M, 4] in the same format.
        threshold: IoU strictly above it sets the bit (as NMS suppresses).
        upper: set only pairs with j > i (the rows greedy NMS scans over score-sorted boxes).
    Returns:
        Tensor[N, W] or Tensor[B, N, W] of int32, W = ceil(M / 32): bit k of word w
        of row i is the pair (i, 32 * w + k). Unpack with :func:`unpack_bitmask`.
    """
    op = "box_iou_threshold"
    batched = boxes1.dim() == 3
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        if boxes.dim() != (3 if batched else 2):
            raise ValueError(f"{op}: boxes1 and boxes2 must both be [N, 4] or both [B, N, 4], "
                             f"got {list(boxes1.shape)} and {list(boxes2.shape)}")
        check_boxes(boxes.flatten(0, -2) if batched else boxes, op, name)
    if batched and boxes1.shape[0] != boxes2.shape[0]:
        raise ValueError(f"{op}: batch sizes differ: {boxes1.shape[0]} and {boxes2.shape[0]}")
    check_same_device(op, boxes1=boxes1, boxes2=boxes2)
    dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    a, b = boxes1.to(dtype), boxes2.to(dtype)
    mask = box_iou_threshold_op(a if batched else a[None], b if batched else b[None], float(threshold), upper)
    return mask if batched else mask[0]


def unpack_bitmask(mask: Tensor, num_columns: int) -> Tensor:
    """Expand a [..., W] int32 bitmask into a [..., num_columns] bool tensor."""
    shifts = torch.arange(BITS_PER_WORD, device=mask.device, dtype=torch.int32)
    bits = (mask[..., None] >> shifts) & 1
    return bits.flatten(-2)[..., :num_columns].bool()
