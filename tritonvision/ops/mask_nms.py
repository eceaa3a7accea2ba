"""Mask NMS: SOLOv2's Matrix NMS (``matrix_nms``) and greedy NMS on mask IoU (``mask_nms``,
``batched_mask_nms_padded``), fixed-shape and without host syncs on the GPU.

All of them start from the [B, N, N] mask IoU matrix (``tritonvision::mask_iou``: the
bit-packed popcount kernels on CUDA), permuted into descending score order (stable: equal
scores keep the lower index first; NaN scores sort first, as ``torch.sort``).

* Matrix NMS is then a few elementwise ops and two column reductions of that matrix.
* Greedy NMS thresholds it into the upper-triangle suppression bitmask and runs the box
  NMS scan kernel on it (``ops/nms.py``: ``scan_bitmask_triton`` and the compaction), or a
  vectorised fixed-point iteration on the CPU.

Memory: the IoU matrix, 4 * B * N * N bytes (plus the packed masks on CUDA).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import check_float, check_integer, check_same_device
from ._dtypes import compute_dtype
from ._op import fused_op
from .box_iou import exact_threshold, pack_bits
from .mask_iou import _mask_iou_torch, _mask_iou_triton, check_masks, example_masks
from .nms import _compact_torch, _compact_triton, _greedy_block, _sorted_order, scan_bitmask_triton

KERNELS = ("gaussian", "linear")


def _sorted_iou(masks: Tensor, order: Tensor, triton_path: bool) -> Tensor:
    """[B, N, N] float32 IoU of masks [B, N, P], rows and columns in ``order``."""
    iou = (_mask_iou_triton if triton_path else _mask_iou_torch)(masks, masks, None)
    batch, n = order.shape
    iou = iou.gather(1, order[:, :, None].expand(batch, n, n))
    return iou.gather(2, order[:, None, :].expand(batch, n, n))


def _upper(n: int, device: torch.device) -> Tensor:
    return torch.ones((n, n), dtype=torch.bool, device=device).triu(1)


# ----------------------------------------------------------------------------- matrix NMS
def _matrix_nms_impl(masks: Tensor, labels: Tensor, scores: Tensor, kernel: str, sigma: float,
                     triton_path: bool) -> Tensor:
    batch, n = scores.shape
    if n == 0:
        return scores.clone()
    order = _sorted_order(scores)
    iou = _sorted_iou(masks, order, triton_path).to(compute_dtype(scores.dtype))
    sorted_labels = labels.gather(1, order)
    pairs = (sorted_labels[:, :, None] == sorted_labels[:, None, :]) & _upper(n, scores.device)
    decay_iou = torch.where(pairs, iou, 0)                           # [B, i, j], i above j
    compensate = decay_iou.amax(dim=1, keepdim=True).transpose(1, 2)  # [B, i, 1]: i's own max
    if kernel == "gaussian":
        ratio = torch.exp(sigma * (compensate ** 2 - decay_iou ** 2))
    else:
        ratio = torch.nan_to_num((1 - decay_iou) / (1 - compensate), nan=math.inf)
    decay = torch.where(pairs, ratio, 1).amin(dim=1).clamp(max=1)
    sorted_scores = scores.gather(1, order).to(decay.dtype) * decay
    return torch.empty_like(scores).scatter_(1, order, sorted_scores.to(scores.dtype))


def _matrix_nms_torch(masks: Tensor, labels: Tensor, scores: Tensor, kernel: str, sigma: float) -> Tensor:
    return _matrix_nms_impl(masks, labels, scores, kernel, sigma, triton_path=False)


def _matrix_nms_triton(masks: Tensor, labels: Tensor, scores: Tensor, kernel: str, sigma: float) -> Tensor:
    return _matrix_nms_impl(masks, labels, scores, kernel, sigma, triton_path=True)


matrix_nms_op = fused_op(
    "matrix_nms", _matrix_nms_torch, _matrix_nms_triton,
    example=lambda d: (example_masks(2, 6, 8, 9, d).flatten(2), torch.randint(0, 2, (2, 6), device=d),
                       torch.rand(2, 6, device=d), "gaussian", 2.0))


@matrix_nms_op.register_fake
def _(masks: Tensor, labels: Tensor, scores: Tensor, kernel: str, sigma: float) -> Tensor:
    return torch.empty_like(scores)


# ----------------------------------------------------------------------------- greedy
def _greedy_impl(masks: Tensor, scores: Tensor, labels: Tensor | None, iou_threshold: float,
                 candidates: Tensor, k: int, triton_path: bool) -> tuple[Tensor, Tensor]:
    """(indices [B, k] of the kept masks by descending score, -1 padded; counts [B]).

    candidates [B, N] bool: the masks that take part (the others neither suppress nor are kept).
    """
    batch, n = scores.shape
    order = _sorted_order(scores)
    iou = _sorted_iou(masks, order, triton_path)
    hit = (iou > exact_threshold(iou_threshold, torch.float32)) & _upper(n, scores.device)
    if labels is not None:
        sorted_labels = labels.gather(1, order)
        hit &= sorted_labels[:, :, None] == sorted_labels[:, None, :]
    removed = ~candidates.gather(1, order)
    if triton_path:
        keep = scan_bitmask_triton(pack_bits(hit), removed)
    else:
        hit &= ~removed[:, :, None]                                  # out from the start: no say
        keep = torch.stack([_greedy_block(hit[g]) for g in range(batch)]) if batch \
            else removed.clone()
        keep &= ~removed
    positions, counts = (_compact_triton if triton_path else _compact_torch)(keep, k)
    indices = order.gather(1, positions.clamp(min=0)) if n else positions
    return torch.where(positions >= 0, indices, -1), counts


def _mask_nms_impl(masks: Tensor, scores: Tensor, iou_threshold: float, triton_path: bool) -> Tensor:
    n = scores.shape[0]
    candidates = torch.ones((1, n), dtype=torch.bool, device=scores.device)
    indices, count = _greedy_impl(masks[None], scores[None], None, iou_threshold, candidates, n, triton_path)
    return indices[0, :int(count[0])]  # the one host read: the output length


def _mask_nms_torch(masks: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    return _mask_nms_impl(masks, scores, iou_threshold, triton_path=False)


def _mask_nms_triton(masks: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    return _mask_nms_impl(masks, scores, iou_threshold, triton_path=True)


mask_nms_op = fused_op("mask_nms", _mask_nms_torch, _mask_nms_triton,
                       example=lambda d: (example_masks(1, 40, 8, 9, d)[0].flatten(1),
                                          torch.rand(40, device=d), 0.3))


@mask_nms_op.register_fake
def _(masks: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    kept = torch.library.get_ctx().new_dynamic_size()
    return scores.new_empty((kept,), dtype=torch.int64)


def _padded_impl(masks: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float, score_threshold: float,
                 max_output_per_image: int, class_agnostic: bool,
                 triton_path: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    indices, counts = _greedy_impl(masks, scores, None if class_agnostic else labels, iou_threshold,
                                   scores > score_threshold, max_output_per_image, triton_path)
    filled = indices >= 0
    safe = indices.clamp(min=0)
    if scores.shape[1] == 0:
        return scores.new_zeros(indices.shape), torch.full_like(indices, -1), indices, counts
    out_scores = torch.where(filled, scores.gather(1, safe), 0)
    out_labels = torch.where(filled, labels.gather(1, safe), -1)
    return out_scores, out_labels, indices, counts


def _padded_torch(masks: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float, score_threshold: float,
                  max_output_per_image: int, class_agnostic: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return _padded_impl(masks, scores, labels, iou_threshold, score_threshold, max_output_per_image,
                        class_agnostic, triton_path=False)


def _padded_triton(masks: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float, score_threshold: float,
                   max_output_per_image: int, class_agnostic: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return _padded_impl(masks, scores, labels, iou_threshold, score_threshold, max_output_per_image,
                        class_agnostic, triton_path=True)


batched_mask_nms_padded_op = fused_op(
    "batched_mask_nms_padded", _padded_torch, _padded_triton,
    example=lambda d: (example_masks(2, 12, 8, 9, d).flatten(2), torch.rand(2, 12, device=d),
                       torch.randint(0, 3, (2, 12), device=d), 0.3, 0.2, 5, False))


@batched_mask_nms_padded_op.register_fake
def _(masks, scores, labels, iou_threshold, score_threshold, max_output_per_image, class_agnostic):
    batch, k = scores.shape[0], max_output_per_image
    as_long = dict(dtype=torch.int64, device=scores.device)
    return (scores.new_empty((batch, k)), torch.empty((batch, k), **as_long),
            torch.empty((batch, k), **as_long), torch.empty((batch,), **as_long))


# ----------------------------------------------------------------------------- public API
def _check_scores(op: str, masks: Tensor, scores: Tensor, labels: Tensor | None) -> None:
    check_float(scores, op, "scores")
    if scores.shape != masks.shape[:-2]:
        raise ValueError(f"{op}: scores must have shape {list(masks.shape[:-2])} (one per mask), "
                         f"got {list(scores.shape)}")
    if labels is not None:
        check_integer(labels, op, "labels")
        if labels.shape != scores.shape:
            raise ValueError(f"{op}: labels must have shape {list(scores.shape)} (one per mask), "
                             f"got {list(labels.shape)}")
    check_same_device(op, masks=masks, scores=scores, labels=labels)


def _check_threshold(op: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a Python float, got {type(value).__name__}")
    return float(value)


def matrix_nms(masks: Tensor, labels: Tensor, scores: Tensor, kernel: str = "gaussian",
               sigma: float = 2.0) -> Tensor:
    """SOLOv2's Matrix NMS: every mask's score decayed by its overlap with higher-scored
    masks of its class, all at once (no sequential suppression, no host sync).

    With masks sorted by descending score and IoU the mask IoU of :func:`mask_iou`, for each
    mask j: ``decay_j = min(1, min over i above j of the same class of f(iou_ij) / f(comp_i))``,
    ``comp_i`` the largest IoU of mask i with any mask above it of its class (0 for none),
    ``f(x) = exp(-sigma x^2)`` ("gaussian") or ``1 - x`` ("linear"). This is mmdet's
    ``mask_matrix_nms`` (and the SOLO authors' code): same IoU matrix (intersection over
    ``area_i + area_j - inter``), the same class-aware upper triangle, the compensation per
    *row* i. The minimum over mmdet's other entries, ``f(0) / f(comp_i) >= 1``, is the 1.
    Departures: the gaussian ratio is computed as ``exp(sigma (comp_i^2 - iou_ij^2))`` (one
    exp; equal up to rounding); two empty masks have IoU 0 (mmdet: 0/0 = NaN); for
    "linear" a pair with ``comp_i = 1`` (i duplicates a mask above it) is skipped instead of
    dividing by 0 (NaN or inf in mmdet) -- that mask above decays j at least as much.
    mmdet's score filter, pre/post top-k and output sort are left to the caller, who gets
    the decayed scores in input order (``topk`` / a threshold on them are sync-free too).

    Args:
        masks: Tensor[N, H, W] or Tensor[B, N, H, W], bool or uint8 (nonzero = foreground).
            Empty masks (e.g. padding) decay nothing.
        labels: Tensor[N] / Tensor[B, N] integer class of each mask.
        scores: Tensor[N] / Tensor[B, N] float scores.
        kernel: "gaussian" or "linear".
        sigma: the gaussian's sigma (mmdet's default 2.0); unused for "linear".
    Returns:
        Tensor of the shape and dtype of ``scores``: score_j * decay_j, in input order.
    """
    op = "matrix_nms"
    check_masks(masks, op, "masks", ("[N, H, W]", "[B, N, H, W]"))
    _check_scores(op, masks, scores, labels)
    if kernel not in KERNELS:
        raise ValueError(f"{op}: kernel must be one of {list(KERNELS)}, got {kernel!r}")
    sigma = _check_threshold(op, "sigma", sigma)
    batched = masks.dim() == 4
    out = matrix_nms_op(masks.flatten(-2) if batched else masks.flatten(-2)[None],
                        labels if batched else labels[None], scores if batched else scores[None],
                        kernel, sigma)
    return out if batched else out[0]


def mask_nms(masks: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS on mask IoU: ``torchvision.ops.nms`` semantics with :func:`mask_iou`.

    Masks are visited by descending score (equal scores: lower index first; NaN first, as
    ``torch.sort``); a mask is kept unless a kept mask has IoU strictly above
    ``iou_threshold`` with it, IoU being the float32 value :func:`mask_iou` returns (0 for
    disjoint or empty masks, so with a negative threshold only the top mask survives).

    Args:
        masks: Tensor[N, H, W], bool or uint8.
        scores: Tensor[N], any float dtype.
        iou_threshold: suppress IoU > iou_threshold with a kept mask.
    Returns:
        Tensor[K] int64: indices of the kept masks, by descending score. (Its length is
        read back from the GPU once; :func:`batched_mask_nms_padded` never syncs.)
    """
    op = "mask_nms"
    check_masks(masks, op, "masks")
    _check_scores(op, masks, scores, None)
    return mask_nms_op(masks.flatten(1), scores, _check_threshold(op, "iou_threshold", iou_threshold))


def batched_mask_nms_padded(masks: Tensor, scores: Tensor, labels: Tensor | None, iou_threshold: float,
                            score_threshold: float, max_output_per_image: int
                            ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-image greedy mask NMS with fixed-shape outputs, sync-free (like
    :func:`batched_nms_padded` for boxes): no host read, no data-dependent shape, so it
    runs under ``torch.cuda.set_sync_debug_mode("error")``, in CUDA graphs and in
    ``torch.compile(fullgraph=True)``.

    Candidates are the masks with score > ``score_threshold``; per image and per label
    (across labels when ``labels`` is None), greedy NMS as :func:`mask_nms`; results by
    descending score (equal scores: lower index first), truncated to ``max_output_per_image``.

    Args:
        masks: Tensor[B, N, H, W], bool or uint8 (pad images with empty masks, score 0).
        scores: Tensor[B, N], any float dtype.
        labels: Tensor[B, N] integer classes, or None for class-agnostic NMS.
        iou_threshold: suppress IoU > iou_threshold with a kept mask of the same label.
        score_threshold: candidates need score > score_threshold.
        max_output_per_image: K, the fixed number of output slots per image.
    Returns:
        (scores Tensor[B, K] in scores' dtype, labels Tensor[B, K] int64 (0 when ``labels``
        is None), indices Tensor[B, K] int64 (the mask n), counts Tensor[B] int64 (filled
        slots)). Slots beyond counts[b] hold score 0, label -1, index -1.
    """
    op = "batched_mask_nms_padded"
    check_masks(masks, op, "masks", ("[B, N, H, W]",))
    _check_scores(op, masks, scores, labels)
    if isinstance(max_output_per_image, bool) or not isinstance(max_output_per_image, int) \
            or max_output_per_image < 0:
        raise ValueError(f"{op}: max_output_per_image must be an int >= 0, got {max_output_per_image!r}")
    class_agnostic = labels is None
    labels = torch.zeros(scores.shape, dtype=torch.int64, device=scores.device) if class_agnostic \
        else labels.to(torch.int64)
    return batched_mask_nms_padded_op(masks.flatten(2), scores, labels,
                                      _check_threshold(op, "iou_threshold", iou_threshold),
                                      _check_threshold(op, "score_threshold", score_threshold),
                                      max_output_per_image, class_agnostic)
