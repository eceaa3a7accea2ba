"""Non-maximum suppression: ``nms``, ``batched_nms`` and the fixed-shape ``batched_nms_padded``.

Three custom ops, each routed by :func:`fused_op`:

* ``tritonvision::nms(boxes, scores, iou_threshold)`` -- kept indices, a
  data-dependent length (the fake impl asks for a new dynamic size);
* ``tritonvision::batched_nms(boxes, scores, idxs, iou_threshold)`` -- the same,
  per category, all categories in one pass (segments of a (category, score) sort);
* ``tritonvision::batched_nms_padded(boxes, scores, iou_threshold, score_threshold,
  max_output_per_image, class_agnostic, pre_nms_top_k)`` -- per image, fixed [B, K]
  outputs, sync-free on CUDA (CUDA graphs, ``torch.compile(fullgraph=True)``).

All three share one core: boxes sorted by descending score (stable, so equal
scores keep the lower index first; NaN scores sort first, as ``torch.sort`` puts
them), the upper-triangle IoU bitmask, the greedy scan, the compaction.
On CUDA (and on CPU in kernel-test mode) these are the Triton kernels of
kernels/box_iou.py and kernels/nms.py; on CPU the scan is a block-wise vectorised
torch loop that only evaluates IoUs of still-alive boxes (faster than
torchvision's CPU kernel on 10k boxes).

Semantics are torchvision CPU's, bit for bit: IoU = inter / (area_i + area_j - inter)
in float32 (float64 for float64 boxes; float16/bfloat16 boxes are upcast to
float32), a box is suppressed when that is strictly above the threshold. So a
pair with an empty union (two zero-area boxes) has IoU 0/0 = NaN and never
suppresses, even for a negative threshold; a box with a NaN coordinate never
suppresses nor is suppressed; a NaN threshold suppresses nothing.

On the Triton path the bitmask kernel divides with correct rounding (``div_rn``)
and without FMA contraction, so its float32 IoU is torchvision's bit for bit; the
threshold reaches it in the compute dtype, for float32 as the largest float32 <= t
(see ``exact_threshold``), for float64 unrounded, so an IoU of exactly t (in float64)
is not suppressed, as in torchvision.
"""
from __future__ import annotations

import torch
import triton
from torch import Tensor

from tritonvision.kernels import nms as kernels

from ._checks import check_boxes, check_float, check_integer, check_same_device
from ._dtypes import compute_dtype
from .box_iou import example_boxes, exact_threshold, pack_bits, threshold_triton
from ._launch import LaunchConfig
from ._op import fused_op

BITS_PER_WORD = kernels.BITS_PER_WORD
PRE_NMS_TOP_K = 4096
"""batched_nms_padded's default ``pre_nms_top_k``: the (box, class) candidates per image that
NMS considers, the highest-scored ones. Why not more by default: with fixed shapes every call
pays for K = min(pre_nms_top_k, N * C) candidates whether or not they pass the score
threshold -- a K x K IoU bitmask of K^2 / 8 bytes per image (2 MiB at 4096, 107 MiB at
30,000, 488 MiB at 64,000) and a scan by one program per image over K / 32 blocks. A YOLO
head at 640 px with 80 classes has 20 * 20 * 2 * 80 = 64,000 candidates here (160,000 with
5 anchors); at score threshold 0.001 (mAP evaluation) pass a larger pre_nms_top_k, e.g.
30,000 as Ultralytics' ``max_nms``, where the memory allows."""
CPU_BLOCK = 256
"""Boxes resolved together per step of the CPU scan."""


Detections = tuple[Tensor, Tensor, Tensor, Tensor, Tensor]
"""batched_nms_padded's (boxes, scores, labels, indices, counts)."""


# ----------------------------------------------------------------------------- CPU scan
def _iou_above(a: tuple[Tensor, ...], b: tuple[Tensor, ...], threshold: float) -> Tensor:
    """IoU(a, b) > threshold for broadcastable coordinate columns (x1, y1, x2, y2, area):
    torchvision's arithmetic, inter / (area_a + area_b - inter), so an empty union
    gives NaN (no hit)."""
    w = torch.minimum(a[2], b[2])
    w.sub_(torch.maximum(a[0], b[0])).clamp_(min=0)
    h = torch.minimum(a[3], b[3])
    h.sub_(torch.maximum(a[1], b[1])).clamp_(min=0)
    inter = w.mul_(h)
    union = a[4] + b[4]
    union.sub_(inter)
    return inter.div_(union) > threshold


def _rows(cols: Tensor) -> tuple[Tensor, ...]:
    return tuple(c[:, None] for c in cols.unbind(0))


def _columns(cols: Tensor) -> tuple[Tensor, ...]:
    return tuple(c[None, :] for c in cols.unbind(0))


def _suppressed(a: Tensor, b: Tensor, threshold: float) -> Tensor:
    """[m] bool: box j of ``b`` has IoU > threshold with some box of ``a`` ([5, k], [5, m] columns).

    For threshold >= 0 only pairs that overlap along x can hit (otherwise inter = 0
    and IoU is 0 or NaN), so a cheap comparison picks the candidate pairs and the
    exact IoU runs on those alone when they are few (sparse scenes)."""
    if threshold >= 0:
        candidates = (b[0][None, :] < a[2][:, None]) & (b[2][None, :] > a[0][:, None])
        pairs = candidates.nonzero()
        if pairs.shape[0] * 3 < candidates.numel():
            i, j = pairs.unbind(1)
            hit = _iou_above(a.index_select(1, i).unbind(0), b.index_select(1, j).unbind(0), threshold)
            out = torch.zeros(b.shape[1], dtype=torch.bool)
            out[j[hit]] = True
            return out
    return _iou_above(_rows(a), _columns(b), threshold).any(0)


def _greedy_block(hit: Tensor) -> Tensor:
    """Greedy keep flags of boxes whose suppression matrix (upper triangle) is ``hit``:
    iterate keep = not any(kept earlier box hits me) to its fixed point, which is the
    greedy answer (entry j is final once all i < j are)."""
    keep = torch.ones(hit.shape[0], dtype=torch.bool)
    hit_f = hit.to(torch.float32)
    while True:
        new = (keep.to(torch.float32) @ hit_f) == 0
        if torch.equal(new, keep):
            return keep
        keep = new


def _scan_image_torch(boxes: Tensor, removed: Tensor, seg_end: Tensor | None, threshold: float) -> Tensor:
    """Greedy NMS of one image's score-sorted boxes [M, 4] (compute dtype): keep flags [M].

    Block by block of CPU_BLOCK boxes: resolve the still-alive boxes of the block
    among themselves, then let the kept ones remove the alive later boxes of their
    segment. Only alive pairs are ever evaluated, as torchvision's loop does, but
    vectorised.
    """
    m = boxes.shape[0]
    if threshold != threshold:  # NaN: no IoU is above it
        return ~removed
    keep = torch.zeros(m, dtype=torch.bool)
    removed = removed.clone()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cols = torch.cat([boxes.t(), area[None]]).contiguous()          # [5, M]: x1, y1, x2, y2, area
    segmented = seg_end is not None
    for start in range(0, m, CPU_BLOCK):
        end = min(start + CPU_BLOCK, m)
        alive = (~removed[start:end]).nonzero().squeeze(1) + start
        if alive.numel() == 0:
            continue
        block = cols[:, alive]
        hit = _iou_above(_rows(block), _columns(block), threshold).triu_(1)
        if segmented:
            hit &= seg_end[alive][:, None] == seg_end[alive][None, :]
        kept = alive[_greedy_block(hit)]
        keep[kept] = True
        stop = int(seg_end[kept].max()) if segmented else m
        if stop <= end:
            continue
        later = (~removed[end:stop]).nonzero().squeeze(1) + end
        if later.numel() == 0:
            continue
        if segmented:
            hit = _iou_above(_rows(cols[:, kept]), _columns(cols[:, later]), threshold)
            hit &= seg_end[kept][:, None] == seg_end[later][None, :]
            removed[later[hit.any(0)]] = True
        else:
            removed[later[_suppressed(cols[:, kept], cols[:, later], threshold)]] = True
    return keep


def _scan_torch(boxes: Tensor, removed: Tensor, seg_end: Tensor | None, iou_threshold: float) -> Tensor:
    """keep [B, M] bool of greedy NMS over score-sorted boxes [B, M, 4] (see _scan_triton)."""
    compute = compute_dtype(boxes.dtype)
    threshold = exact_threshold(iou_threshold, compute)
    boxes = boxes.to(compute)
    if boxes.shape[0] == 0:
        return removed.clone()
    return torch.stack([_scan_image_torch(boxes[g], removed[g], None if seg_end is None else seg_end[g],
                                          threshold) for g in range(boxes.shape[0])])


# ----------------------------------------------------------------------------- Triton scan
SCAN = LaunchConfig(dict(BLOCK_WORDS=128))
"""nms_scan_kernel (one program per image): removal words ORed per step. Not yet measured on a GPU."""
COMPACT = LaunchConfig(dict(BLOCK=256))
"""nms_compact_kernel (one program per image): flags per prefix-sum step."""


def _empty_union_words(boxes: Tensor) -> Tensor:
    """Bitmask [B, M, W] of pairs whose union is empty (IoU 0/0): the bitmask kernel calls
    their IoU 0, torchvision NaN; only matters for a negative threshold. O(M^2) memory."""
    b = boxes.to(compute_dtype(boxes.dtype))
    area = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return pack_bits((area[:, :, None] + area[:, None, :]) == 0)


def _scan_triton(boxes: Tensor, removed: Tensor, seg_end: Tensor | None, iou_threshold: float) -> Tensor:
    """Greedy NMS keep flags [B, M] bool over score-sorted boxes [B, M, 4].

    removed [B, M] bool: boxes out from the start; seg_end [B, M] or None (one
    segment): box i may only suppress boxes j < seg_end[i] (its class run). Two
    launches: the IoU bitmask (box_iou_threshold_kernel, upper triangle) and
    nms_scan_kernel. No host sync. Memory: the bitmask, B * M * ceil(M / 32) * 4 bytes.
    """
    mask = threshold_triton(boxes, boxes, iou_threshold, upper=True)
    if iou_threshold < 0 and mask.numel():
        mask &= ~_empty_union_words(boxes)
    return scan_bitmask_triton(mask, removed, seg_end)


def scan_bitmask_triton(mask: Tensor, removed: Tensor, seg_end: Tensor | None = None) -> Tensor:
    """Greedy NMS keep flags [B, M] bool from an upper-triangle suppression bitmask
    [B, M, ceil(M / 32)] int32 of score-sorted items (nms_scan_kernel; any IoU: boxes,
    masks). removed and seg_end as in _scan_triton. No host sync."""
    batch, m = removed.shape
    keep = torch.zeros((batch, m), dtype=torch.int8, device=removed.device)
    if batch == 0 or m == 0:
        return keep.bool()
    words = triton.cdiv(m, BITS_PER_WORD)
    removed_words = pack_bits(removed, fill=True)
    segmented = seg_end is not None
    seg_end = seg_end.to(torch.int32).contiguous() if segmented else removed_words
    kernels.nms_scan_kernel[(batch,)](mask, removed_words, seg_end, keep, m, words,
                                      SEGMENTED=segmented, **SCAN.kwargs)
    return keep.bool()


# ----------------------------------------------------------------------------- compaction
def _compact_torch(keep: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Positions [B, k] int64 of the first k kept entries of each row (-1 pad), counts [B]."""
    batch, m = keep.shape
    rank = keep.cumsum(1) - 1
    take = keep & (rank < k)
    out = torch.full((batch, k + 1), -1, dtype=torch.int64, device=keep.device)
    cols = torch.arange(m, device=keep.device).expand(batch, m)
    out.scatter_(1, torch.where(take, rank, k), torch.where(take, cols, -1))
    return out[:, :k], take.sum(1)


def _compact_triton(keep: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """nms_compact_kernel: one program per row, prefix-sum compaction. No host sync."""
    batch, m = keep.shape
    if batch == 0 or m == 0 or k == 0:                     # nothing to launch over
        return (torch.full((batch, k), -1, dtype=torch.int64, device=keep.device),
                torch.zeros((batch,), dtype=torch.int64, device=keep.device))
    out = torch.empty((batch, k), dtype=torch.int64, device=keep.device)
    counts = torch.empty((batch,), dtype=torch.int64, device=keep.device)
    kernels.nms_compact_kernel[(batch,)](keep.to(torch.int8).contiguous(), out, counts, m, k, **COMPACT.kwargs)
    return out, counts


# ----------------------------------------------------------------------------- nms
def _sorted_order(scores: Tensor) -> Tensor:
    """Stable descending order (equal scores: lower index first; NaN first)."""
    return torch.sort(scores, dim=-1, descending=True, stable=True).indices


def _segment_ends(sorted_labels: Tensor) -> Tensor:
    """For labels sorted ascending along the last dim: the end of each entry's run."""
    return torch.searchsorted(sorted_labels.contiguous(), sorted_labels.contiguous(), right=True)


def _nms_impl(boxes: Tensor, scores: Tensor, iou_threshold: float, triton_path: bool) -> Tensor:
    n = boxes.shape[0]
    order = _sorted_order(scores)
    removed = torch.zeros((1, n), dtype=torch.bool, device=boxes.device)
    if not triton_path:
        keep = _scan_torch(boxes[order][None], removed, None, iou_threshold)[0]
        return order[keep]
    keep = _scan_triton(boxes[order][None], removed, None, iou_threshold)
    positions, count = _compact_triton(keep, n)
    return order[positions[0, :int(count[0])]]  # the one host read: the output length


def _nms_torch(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    return _nms_impl(boxes, scores, iou_threshold, triton_path=False)


def _nms_triton(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    return _nms_impl(boxes, scores, iou_threshold, triton_path=True)


nms_op = fused_op("nms", _nms_torch, _nms_triton,
                  example=lambda d: (example_boxes(40, d), torch.rand(40, device=d), 0.5))


@nms_op.register_fake
def _(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((kept,), dtype=torch.int64)


def _batched_impl(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float,
                  triton_path: bool) -> Tensor:
    n = boxes.shape[0]
    order = _sorted_order(scores)                                     # score order S
    labels = idxs[order]
    sorted_labels, perm = torch.sort(labels, stable=True)             # (class, score) order P
    seg_end = _segment_ends(sorted_labels)[None]
    removed = torch.zeros((1, n), dtype=torch.bool, device=boxes.device)
    scan = _scan_triton if triton_path else _scan_torch
    keep_p = scan(boxes[order[perm]][None], removed, seg_end, iou_threshold)[0]
    keep_mask = torch.zeros_like(keep_p).scatter_(0, order[perm], keep_p)   # by box index
    if triton_path:
        positions, count = _compact_triton(keep_mask[None], n)
        kept = positions[0, :int(count[0])]  # the one host read: the output length
    else:
        kept = keep_mask.nonzero().squeeze(1)
    # torchvision's final ordering, call for call (its sort is not stable: equal scores
    # come out in whatever order torch.sort gives on this device)
    return kept[scores[kept].sort(descending=True)[1]]


def _batched_torch(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    return _batched_impl(boxes, scores, idxs, iou_threshold, triton_path=False)


def _batched_triton(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    return _batched_impl(boxes, scores, idxs, iou_threshold, triton_path=True)


batched_nms_op = fused_op(
    "batched_nms", _batched_torch, _batched_triton,
    example=lambda d: (example_boxes(40, d), torch.rand(40, device=d), torch.randint(0, 3, (40,), device=d),
                       0.5))


@batched_nms_op.register_fake
def _(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((kept,), dtype=torch.int64)


# ----------------------------------------------------------------------------- padded
def _padded_impl(boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float,
                 max_output_per_image: int, class_agnostic: bool, pre_nms_top_k: int,
                 triton_path: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    batch, n, classes = scores.shape
    device = boxes.device
    m = n * classes
    k_out = max_output_per_image
    flat = scores.reshape(batch, m)
    valid = flat > score_threshold
    key = torch.where(valid, flat, torch.full((), -float("inf"), dtype=flat.dtype, device=device))
    # candidates (box n, class c) have id n * C + c: the best pre_nms_top_k in score order S
    # (equal scores: lower id first), so every valid one when they fit
    cand = _sorted_order(key)[:, :pre_nms_top_k]
    cand_valid = valid.gather(1, cand)
    m_c = cand.shape[1]
    labels = cand % classes
    if class_agnostic or classes == 1:
        perm = None
        seg_end = None
    else:
        class_key = torch.where(cand_valid, labels, classes)
        sorted_key, perm = torch.sort(class_key, dim=1, stable=True)  # (class, score) order P
        runs = torch.zeros((batch, classes + 1), dtype=torch.int64, device=device)
        runs.scatter_add_(1, sorted_key, torch.ones_like(sorted_key))
        seg_end = runs.cumsum(1).gather(1, sorted_key)
    cand_p = cand if perm is None else cand.gather(1, perm)
    box_p = boxes.gather(1, (cand_p // classes)[..., None].expand(batch, m_c, 4))
    removed_p = ~(cand_valid if perm is None else cand_valid.gather(1, perm))
    scan = _scan_triton if triton_path else _scan_torch
    keep_p = scan(box_p, removed_p, seg_end, iou_threshold)
    keep_s = keep_p if perm is None else torch.empty_like(keep_p).scatter_(1, perm, keep_p)
    compact = _compact_triton if triton_path else _compact_torch
    positions, counts = compact(keep_s, k_out)
    filled = positions >= 0
    ids = cand.gather(1, positions.clamp(min=0)) if m_c else torch.zeros_like(positions)
    box_idx = ids // classes
    out_indices = torch.where(filled, box_idx, -1)
    out_labels = torch.where(filled, ids % classes, -1)
    out_scores = torch.where(filled, flat.gather(1, ids) if m_c else flat.new_zeros(ids.shape), 0)
    out_boxes = boxes.gather(1, box_idx[..., None].expand(batch, k_out, 4)) if m_c else \
        boxes.new_zeros((batch, k_out, 4))
    out_boxes = torch.where(filled[..., None], out_boxes, 0)
    return out_boxes, out_scores, out_labels, out_indices, counts


def _padded_torch(boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float,
                  max_output_per_image: int, class_agnostic: bool,
                  pre_nms_top_k: int = PRE_NMS_TOP_K) -> Detections:
    return _padded_impl(boxes, scores, iou_threshold, score_threshold, max_output_per_image,
                        class_agnostic, pre_nms_top_k, triton_path=False)


def _padded_triton(boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float,
                   max_output_per_image: int, class_agnostic: bool,
                   pre_nms_top_k: int = PRE_NMS_TOP_K) -> Detections:
    return _padded_impl(boxes, scores, iou_threshold, score_threshold, max_output_per_image,
                        class_agnostic, pre_nms_top_k, triton_path=True)


batched_nms_padded_op = fused_op(
    "batched_nms_padded", _padded_torch, _padded_triton,
    example=lambda d: (example_boxes(30, d).view(2, 15, 4), torch.rand(2, 15, 3, device=d),
                       0.5, 0.2, 10, False))


@batched_nms_padded_op.register_fake
def _(boxes, scores, iou_threshold, score_threshold, max_output_per_image, class_agnostic,
      pre_nms_top_k=PRE_NMS_TOP_K):
    batch, k = boxes.shape[0], max_output_per_image
    as_long = dict(dtype=torch.int64, device=boxes.device)
    return (boxes.new_empty((batch, k, 4)), scores.new_empty((batch, k)), torch.empty((batch, k), **as_long),
            torch.empty((batch, k), **as_long), torch.empty((batch,), **as_long))


# ----------------------------------------------------------------------------- public API
def _check_nms_inputs(op: str, boxes: Tensor, scores: Tensor, iou_threshold: float) -> None:
    check_boxes(boxes, op, "boxes")
    check_float(scores, op, "scores")
    if scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"{op}: scores must have shape [N] with N = {boxes.shape[0]} (one per box), "
                         f"got {list(scores.shape)}")
    check_same_device(op, boxes=boxes, scores=scores)
    if not isinstance(iou_threshold, (int, float)):
        raise TypeError(f"{op}: iou_threshold must be a Python float, got {type(iou_threshold).__name__}")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression, the same result as ``torchvision.ops.nms`` (CPU).

    Boxes are visited by descending score; a box is kept unless a kept box has
    IoU strictly above ``iou_threshold`` with it. Equal scores: the lower index
    comes first. NaN scores sort above every number (as ``torch.sort``), so they
    come first. IoU arithmetic is torchvision's (float32; float64 for float64
    boxes): a pair of zero-area boxes has IoU 0/0 = NaN, which suppresses nothing
    whatever the threshold; a box with a NaN coordinate never suppresses and is
    never suppressed. Inverted boxes (x2 < x1) have a signed area, as in torchvision.

    Args:
        boxes: Tensor[N, 4], (x1, y1, x2, y2), float16/bfloat16/float32/float64
            (float16/bfloat16 are compared in float32).
        scores: Tensor[N], any float dtype.
        iou_threshold: discard boxes with IoU > iou_threshold with a kept box.
    Returns:
        Tensor[K] int64: indices of the kept boxes, by descending score.
    """
    _check_nms_inputs("nms", boxes, scores, iou_threshold)
    return nms_op(boxes, scores, float(iou_threshold))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression within each category, the same result as
    ``torchvision.ops.batched_nms`` (CPU).

    Like torchvision, up to 1000 boxes on CPU (25000 on CUDA) use the
    coordinate-offset trick (boxes of category c shifted by c * (max coordinate + 1)
    in the boxes' dtype, then one :func:`nms`), larger inputs exact per-category
    NMS; here both run all categories in one pass (no loop over categories): the
    exact path sorts by (category, score) and lets a box suppress only inside its
    category's run. Semantics otherwise as :func:`nms`.

    Args:
        boxes: Tensor[N, 4], (x1, y1, x2, y2), any float dtype.
        scores: Tensor[N], any float dtype.
        idxs: Tensor[N] integer category of each box (any values).
        iou_threshold: discard boxes with IoU > iou_threshold with a kept box of the same category.
    Returns:
        Tensor[K] int64: indices of the kept boxes, by descending score.
    """
    op = "batched_nms"
    _check_nms_inputs(op, boxes, scores, iou_threshold)
    check_integer(idxs, op, "idxs")
    if idxs.shape != scores.shape:
        raise ValueError(f"{op}: idxs must have shape [N] with N = {boxes.shape[0]}, got {list(idxs.shape)}")
    check_same_device(op, boxes=boxes, idxs=idxs)
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    if boxes.numel() <= (4000 if boxes.device.type == "cpu" else 100_000):
        max_coordinate = boxes.max()
        offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
        return nms_op(boxes + offsets[:, None], scores, float(iou_threshold))
    return batched_nms_op(boxes, scores, idxs, float(iou_threshold))


def batched_nms_padded(boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float,
                       max_output_per_image: int, class_agnostic: bool = False, *,
                       pre_nms_top_k: int = PRE_NMS_TOP_K
                       ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per-image NMS with fixed-shape outputs, sync-free (like TensorRT's EfficientNMS).

    No host read, no data-dependent shape: works under
    ``torch.cuda.set_sync_debug_mode("error")``, in CUDA graph capture and in
    ``torch.compile(fullgraph=True)`` (one custom op).

    Candidates are (box, class) pairs with score > ``score_threshold`` (NaN scores
    are never candidates). NMS considers the ``pre_nms_top_k`` highest-scored
    candidates of each image (equal scores: lower candidate id ``n * C + c`` first),
    so results equal a per-image ``torchvision.ops.batched_nms`` whenever an image has
    at most ``pre_nms_top_k`` candidates. Beyond that the lower-scored candidates are
    dropped before NMS, as ``pre_nms_top_n`` / ``topk_candidates`` do in torchvision's
    detection models: a box they would have kept is missing, one they would have
    suppressed may be kept -- nothing reports it (that would need a host read), so size
    ``pre_nms_top_k`` for the candidates your score threshold lets through. Per class
    (or across classes with ``class_agnostic``), greedy NMS as :func:`nms`. Each
    image's results are sorted by descending score, equal scores by lower candidate id
    first, and truncated to ``max_output_per_image``.

    Cost: every call works on K = min(pre_nms_top_k, N * C) candidates per image,
    whatever their scores (fixed shapes): a K x K IoU bitmask of about K^2 / 8 bytes per
    image (2 MiB for the default 4096, 107 MiB for 30,000) and one scan program per
    image over K / 32 blocks. See :data:`PRE_NMS_TOP_K` for why the default is not larger.

    Args:
        boxes: Tensor[B, N, 4], (x1, y1, x2, y2), any float dtype.
        scores: Tensor[B, N] (one class) or Tensor[B, N, C], any float dtype.
        iou_threshold: suppress IoU > iou_threshold with a kept box (same class unless class_agnostic).
        score_threshold: candidates need score > score_threshold.
        max_output_per_image: K, the fixed number of output slots per image.
        class_agnostic: suppress across classes too.
        pre_nms_top_k: the most candidates per image NMS considers (an int >= 1; default
            :data:`PRE_NMS_TOP_K` = 4096).
    Returns:
        (boxes Tensor[B, K, 4] in boxes' dtype, scores Tensor[B, K] in scores' dtype,
        labels Tensor[B, K] int64 (class c; 0 for [B, N] scores), indices Tensor[B, K]
        int64 (the box n), counts Tensor[B] int64 (filled slots)). Slots beyond
        counts[b] hold box 0, score 0, label -1, index -1.
    """
    op = "batched_nms_padded"
    check_float(boxes, op, "boxes")
    check_float(scores, op, "scores")
    if boxes.dim() != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"{op}: boxes must have shape [B, N, 4], got {list(boxes.shape)}")
    if scores.dim() not in (2, 3) or tuple(scores.shape[:2]) != tuple(boxes.shape[:2]):
        raise ValueError(f"{op}: scores must have shape [B, N] or [B, N, C] with B, N = "
                         f"{list(boxes.shape[:2])}, got {list(scores.shape)}")
    if scores.dim() == 3 and scores.shape[2] == 0:
        raise ValueError(f"{op}: scores has 0 classes; pass at least one class")
    check_same_device(op, boxes=boxes, scores=scores)
    if isinstance(max_output_per_image, bool) or not isinstance(max_output_per_image, int) \
            or max_output_per_image < 0:
        raise ValueError(f"{op}: max_output_per_image must be an int >= 0, got {max_output_per_image!r}")
    if isinstance(pre_nms_top_k, bool) or not isinstance(pre_nms_top_k, int) or pre_nms_top_k < 1:
        raise ValueError(f"{op}: pre_nms_top_k must be an int >= 1 (candidates per image NMS considers), "
                         f"got {pre_nms_top_k!r}")
    if scores.dim() == 2:
        scores = scores[..., None]
    return batched_nms_padded_op(boxes, scores, float(iou_threshold), float(score_threshold),
                                 max_output_per_image, bool(class_agnostic), pre_nms_top_k)
