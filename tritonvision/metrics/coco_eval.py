"""COCO box and mask AP/AR, the same numbers as pycocotools' ``COCOeval`` (iouType "bbox" and
"segm"), vectorised. Masks change only the IoU of a pair and the detections' areas
(``CocoInstances.pair_iou`` / ``det_area``; :func:`mask_pair_iou`).

The rules carried over from pycocotools (facts, not code):

* per (image, category): detections sorted by descending score with a stable sort and
  cut to the largest maxDet (100); ground truths sorted with ignored ones last (stable);
  a ground truth is ignored when it is a crowd or its ``area`` is outside the area range;
* IoU of a detection with a crowd ground truth is intersection / area(detection); boxes
  are xywh and the IoU is computed from them in float64 as pycocotools' ``bbIou`` does
  (``x + w`` for the right edge, ``w * h`` for the area);
* greedy matching in score order: a detection takes, among the ground truths it may
  still take (unmatched, or crowd), the one with the largest IoU >= min(t, 1 - 1e-10),
  preferring non-ignored ground truths, ties to the later one in the sorted order;
  a detection matched to an ignored ground truth is ignored, and an unmatched one whose
  area is outside the range is ignored; a match to a ground truth with id 0 counts as no
  match (pycocotools stores the matched id and tests it for truth);
* accumulation per category over all images (stable sort by score of the per-image
  lists, each cut to maxDet): recall = tp / npig, precision = tp / (tp + fp + eps),
  its monotone envelope read at the 101 recall thresholds (``searchsorted`` side left,
  0 past the end); -1 where a category has no non-ignored ground truth.

How it is vectorised: every (detection, ground truth) pair of the same image and
category is built at once; pairs with IoU below the smallest threshold can never match
and are dropped. The greedy matching then runs one step per detection rank (at most
maxDet steps), each step handling that rank's detection in every group, every IoU
threshold and every area range at once with segmented reductions; there is no loop
over detections, images or categories.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = ((0.0, 1e5 ** 2), (0.0, 32.0 ** 2), (32.0 ** 2, 96.0 ** 2), (96.0 ** 2, 1e5 ** 2))
AREA_LABELS = ("all", "small", "medium", "large")


@dataclass
class CocoInstances:
    """Flat arrays of the detections and ground truths of a whole evaluation.

    ``*_image`` index images in evaluation order (pycocotools: sorted image ids),
    ``*_category`` index categories 0..K-1 (pycocotools: sorted category ids); entries
    with category -1 are outside the evaluated categories and skipped. Boxes are xywh
    float64. ``gt_id_nonzero`` is False for a ground truth whose annotation id is 0.
    ``det_area`` defaults to the box area ``w * h``; ``pair_iou(det, gt, crowd)`` (over
    indices into these arrays) defaults to the IoU of the boxes: the segm evaluation
    gives the mask areas and the mask IoU instead.
    """
    num_images: int
    num_categories: int
    det_image: np.ndarray
    det_category: np.ndarray
    det_score: np.ndarray
    det_xywh: np.ndarray
    gt_image: np.ndarray
    gt_category: np.ndarray
    gt_xywh: np.ndarray
    gt_area: np.ndarray
    gt_crowd: np.ndarray
    gt_id_nonzero: np.ndarray | None = None
    det_area: np.ndarray | None = None
    pair_iou: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None


def pair_iou(det_xywh: np.ndarray, gt_xywh: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of matched pairs of xywh boxes, float64, as pycocotools' ``bbIou``.

    ``crowd[i]`` makes pair i's union the detection's own area. 0 where the boxes do
    not overlap (an intersection width or height <= 0).
    """
    dx, dy, dw, dh = det_xywh.T
    gx, gy, gw, gh = gt_xywh.T
    w = np.fmin(dw + dx, gw + gx) - np.fmax(dx, gx)
    h = np.fmin(dh + dy, gh + gy) - np.fmax(dy, gy)
    inter = w * h
    det_area = dw * dh
    union = np.where(crowd, det_area, det_area + gw * gh - inter)
    overlap = (w > 0) & (h > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def mask_pair_iou(det_masks, gt_masks, gt_boxes: np.ndarray | None = None):
    """The ``pair_iou`` of a segm evaluation: mask IoU as pycocotools' ``mask.iou``.

    ``det_masks``: ``masks._runs.CompressedRuns`` (decoded only for the detections that
    have a candidate pair), ``gt_masks``: ``masks._runs.Runs``; ``gt_boxes`` their
    ``toBbox`` boxes when known. Pairs whose mask boxes do not overlap are 0 without
    touching the masks, as in pycocotools.
    """
    from tritonvision.masks.iou import pair_iou as rle_pair_iou

    def pair_iou(det: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
        used, local = np.unique(det, return_inverse=True)
        return rle_pair_iou(det_masks.runs(used), gt_masks, local, gt, crowd, gt_boxes=gt_boxes)
    return pair_iou


def _group_bounds(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For sorted ``keys``: the unique keys, each run's start and length."""
    if keys.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    lengths = np.diff(np.concatenate([starts, [keys.size]])).astype(np.int64)
    return keys[starts], starts, lengths


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for every (s, n)."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + np.arange(total, dtype=np.int64) - offsets


def _segment_max(values: np.ndarray, seg_starts: np.ndarray, seg_lengths: np.ndarray) -> np.ndarray:
    """Max of each segment along axis 1, broadcast back to every element of the segment."""
    return np.repeat(np.maximum.reduceat(values, seg_starts, axis=1), seg_lengths, axis=1)


@dataclass
class _Detections:
    """The evaluated detections by (image, category, descending score), at most max_det per
    group; ``source`` indexes the input arrays, ``by_score`` lists them by (descending
    score, image, input order)."""
    image: np.ndarray
    category: np.ndarray
    score: np.ndarray
    area: np.ndarray
    key: np.ndarray
    rank: np.ndarray
    source: np.ndarray
    by_score: np.ndarray


def _detections(inst: CocoInstances, max_det: int) -> _Detections:
    K = inst.num_categories
    source = np.flatnonzero(inst.det_category >= 0)
    image = inst.det_image[source].astype(np.int64)
    category = inst.det_category[source].astype(np.int64)
    score = inst.det_score[source].astype(np.float64)
    # by (image, category, descending score), ties in input order: stable sorts, the one
    # by score done once for matching and accumulation (saves a 0.04 s float sort of the
    # 500k detections of COCO val): by_score is (descending score, image, input order)
    by_score = np.argsort(_small_ints(image, inst.num_images), kind="stable")
    by_score = by_score[np.argsort(-score[by_score], kind="stable")]
    order = by_score[np.argsort((image * K + category)[by_score], kind="stable")]
    key = image[order] * K + category[order]
    _, starts, lengths = _group_bounds(key)
    rank = np.arange(key.size, dtype=np.int64) - np.repeat(starts, lengths)
    kept = rank < max_det
    new_index = np.full(key.size, -1, dtype=np.int64)   # input -> kept detection
    new_index[order[kept]] = np.arange(int(kept.sum()), dtype=np.int64)
    by_score = new_index[by_score]
    order = order[kept]
    source = source[order]
    if inst.det_area is None:
        box = inst.det_xywh[source].astype(np.float64).reshape(-1, 4)
        area = box[:, 2] * box[:, 3]
    else:
        area = inst.det_area[source].astype(np.float64)
    return _Detections(image[order], category[order], score[order], area, key[kept], rank[kept], source,
                       by_score[by_score >= 0])


@dataclass
class _GroundTruths:
    """The evaluated ground truths by (image, category) (input order within), their groups,
    and per area range the ignore flags and the position in the group once ignored ones
    go last (both [A, G])."""
    category: np.ndarray
    crowd: np.ndarray
    id_ok: np.ndarray
    source: np.ndarray
    groups: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    ignore: np.ndarray
    position: np.ndarray


def _ground_truths(inst: CocoInstances, area_ranges) -> _GroundTruths:
    K = inst.num_categories
    source = np.flatnonzero(inst.gt_category >= 0)
    key = inst.gt_image[source].astype(np.int64) * K + inst.gt_category[source].astype(np.int64)
    order = np.argsort(key, kind="stable")
    source, key = source[order], key[order]
    area = inst.gt_area[source].astype(np.float64)
    crowd = inst.gt_crowd[source].astype(bool)
    id_ok = (np.ones(source.size, dtype=bool) if inst.gt_id_nonzero is None
             else inst.gt_id_nonzero[source].astype(bool))
    groups, starts, lengths = _group_bounds(key)
    group_start = np.repeat(starts, lengths)
    A, G = len(area_ranges), source.size
    ignore = np.stack([crowd | (area < lo) | (area > hi) for lo, hi in area_ranges]) \
        if A else np.zeros((0, G), dtype=bool)
    position = np.empty((A, G), dtype=np.int64)
    for a in range(A):
        sorted_idx = np.lexsort((ignore[a], key))
        position[a, sorted_idx] = np.arange(G, dtype=np.int64) - group_start[sorted_idx]
    return _GroundTruths(inst.gt_category[source].astype(np.int64), crowd, id_ok, source, groups, starts,
                         lengths, ignore, position)


def _candidate_pairs(inst: CocoInstances, dets: _Detections, gts: _GroundTruths, min_iou: float | None):
    """(detection, ground truth, IoU) of every pair in the same (image, category) whose IoU
    reaches ``min_iou`` (the smallest threshold: other pairs can never match)."""
    D = dets.key.size
    if gts.groups.size and D:
        where = np.minimum(np.searchsorted(gts.groups, dets.key), gts.groups.size - 1)
        has_gt = gts.groups[where] == dets.key
        pair_count = np.where(has_gt, gts.lengths[where], 0)
        first_gt = np.where(has_gt, gts.starts[where], 0)
    else:
        pair_count = first_gt = np.zeros(D, dtype=np.int64)
    pair_det = np.repeat(np.arange(D, dtype=np.int64), pair_count)
    pair_gt = _ranges(first_gt, pair_count)
    det_source, gt_source, crowd = dets.source[pair_det], gts.source[pair_gt], gts.crowd[pair_gt]
    if inst.pair_iou is None:
        ious = pair_iou(inst.det_xywh[det_source].astype(np.float64).reshape(-1, 4),
                        inst.gt_xywh[gt_source].astype(np.float64).reshape(-1, 4), crowd)
    else:
        ious = np.asarray(inst.pair_iou(det_source, gt_source, crowd), dtype=np.float64)
    if min_iou is not None:
        useful = ious >= min_iou
        pair_det, pair_gt, ious = pair_det[useful], pair_gt[useful], ious[useful]
    return pair_det, pair_gt, ious


def _greedy_match(dets: _Detections, gts: _GroundTruths, pairs, thresholds: np.ndarray, max_det: int):
    """Every match as (row, detection, ground truth), row = area range * T + threshold.

    One step per detection rank, each step handling that rank's detection in every group,
    every threshold and every area range at once with segmented reductions."""
    T, A = thresholds.size, gts.ignore.shape[0]
    AT = A * T
    row_thr = np.tile(thresholds, A)[:, None]
    gt_taken = np.zeros((AT, gts.source.size), dtype=bool)
    pair_det, pair_gt, ious = pairs
    pair_rank = dets.rank[pair_det]
    by_rank = np.argsort(pair_rank, kind="stable")
    pair_det, pair_gt, ious, pair_rank = pair_det[by_rank], pair_gt[by_rank], ious[by_rank], pair_rank[by_rank]
    rank_bounds = np.searchsorted(pair_rank, np.arange(max_det + 1))
    hits_row, hits_det, hits_gt = [], [], []
    for r in range(max_det):
        lo, hi = rank_bounds[r], rank_bounds[r + 1]
        if lo == hi or AT == 0:
            continue
        det, gt, iou = pair_det[lo:hi], pair_gt[lo:hi], ious[lo:hi]
        _, seg_starts, seg_lengths = _group_bounds(det)
        eligible = (iou[None, :] >= row_thr) & (~gt_taken[:, gt] | gts.crowd[gt][None, :])
        # 1) prefer a non-ignored gt, 2) then the largest IoU, 3) then the later gt in order
        not_ignored = np.repeat(~gts.ignore[:, gt], T, axis=0).astype(np.int8)
        key = np.where(eligible, not_ignored, np.int8(-1))
        best = eligible & (key == _segment_max(key, seg_starts, seg_lengths))
        key = np.where(best, iou[None, :], -1.0)
        best &= key == _segment_max(key, seg_starts, seg_lengths)
        key = np.where(best, np.repeat(gts.position[:, gt], T, axis=0), -1)
        best &= key == _segment_max(key, seg_starts, seg_lengths)
        hit_row, hit_col = np.nonzero(best)
        gt_taken[hit_row, gt[hit_col]] = True
        hits_row.append(hit_row)
        hits_det.append(det[hit_col])
        hits_gt.append(gt[hit_col])
    concat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return concat(hits_row), concat(hits_det), concat(hits_gt)


def evaluate(inst: CocoInstances, iou_thresholds=IOU_THRESHOLDS, max_dets=MAX_DETS,
             area_ranges=AREA_RANGES) -> dict:
    """Match and accumulate; returns ``precision`` [T, R, K, A, M], ``recall`` [T, K, A, M]
    and ``scores`` [T, R, K, A, M] in pycocotools' layout (-1 where undefined)."""
    iou_thresholds = np.asarray(iou_thresholds, dtype=np.float64)
    max_dets = sorted(int(m) for m in max_dets)
    T, R, A, M = len(iou_thresholds), len(RECALL_THRESHOLDS), len(area_ranges), len(max_dets)
    K = inst.num_categories
    dets = _detections(inst, max_dets[-1])
    gts = _ground_truths(inst, area_ranges)
    thresholds = np.minimum(iou_thresholds, 1 - 1e-10)
    pairs = _candidate_pairs(inst, dets, gts, thresholds.min() if T else None)
    hits_row, hits_det, hits_gt = _greedy_match(dets, gts, pairs, thresholds, max_dets[-1])

    npig = np.zeros((A, K), dtype=np.int64)
    for a in range(A):
        npig[a] = np.bincount(gts.category[~gts.ignore[a]], minlength=K)[:K]
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    if A * T and K:
        accumulate = _Accumulation(dets, gts, npig, T, area_ranges, hits_row, hits_det, hits_gt)
        for m, md in enumerate(max_dets):
            q, ss, rec = accumulate.at_max_det(md, max_dets[-1])
            precision[:, :, :, :, m] = q
            scores[:, :, :, :, m] = ss
            recall[:, :, :, m] = rec
    return _result(precision, recall, scores, iou_thresholds, max_dets, area_ranges, npig)


class _Accumulation:
    """Precision / recall / score curves per category from the matches, one maxDets at a time.

    What each match makes of its detection in its row: a true positive, or ignored;
    unmatched detections are false positives unless outside the area range. Per category,
    detections go by score, ties in (image, rank) order, as pycocotools concatenates: the
    kept detections by (descending score, image, input order), stably by category.
    """

    def __init__(self, dets: _Detections, gts: _GroundTruths, npig: np.ndarray, T: int, area_ranges,
                 hits_row: np.ndarray, hits_det: np.ndarray, hits_gt: np.ndarray):
        K, D = npig.shape[1], dets.key.size
        self.dets, self.npig, self.T, self.K = dets, npig, T, K
        self.det_out = np.stack([(dets.area < lo) | (dets.area > hi) for lo, hi in area_ranges])
        hits_area = hits_row // T
        counted = gts.id_ok[hits_gt]
        hit_ignored = gts.ignore[hits_area, hits_gt] | (~counted & self.det_out[hits_area, hits_det])
        hit_tp = counted & ~hit_ignored
        hit_delta = (~hit_ignored).astype(np.int64) - (~self.det_out[hits_area, hits_det]).astype(np.int64)
        self.needed = np.repeat(_needed_true_positives(npig), T, axis=0)      # [AT, K, R]
        self.defined = np.repeat(npig > 0, T, axis=0)                          # [AT, K]
        self.order = dets.by_score[np.argsort(_small_ints(dets.category, K)[dets.by_score], kind="stable")]
        position = np.empty(D, dtype=np.int64)
        position[self.order] = np.arange(D)
        # the matches sorted once by (row, category, accumulation position); each maxDets
        # subset keeps that order
        hit_order = np.argsort((hits_row * K + dets.category[hits_det]) * np.int64(D + 1) + position[hits_det],
                               kind="stable")
        self.hits_row, self.hits_det = hits_row[hit_order], hits_det[hit_order]
        self.hit_tp, self.hit_delta = hit_tp[hit_order], hit_delta[hit_order]

    def at_max_det(self, md: int, max_det: int):
        """(precision [T, R, K, A], scores [T, R, K, A], recall [T, K, A]) with maxDets ``md``."""
        dets, T, K = self.dets, self.T, self.K
        A = self.npig.shape[0]
        AT = A * T
        order_m = self.order if md >= max_det else self.order[dets.rank[self.order] < md]
        position = np.full(dets.key.size, -1, dtype=np.int64)
        position[order_m] = np.arange(order_m.size)
        cat_start = np.searchsorted(dets.category[order_m], np.arange(K + 1))
        n_k = np.diff(cat_start)
        # non-ignored count up to each position, as if nothing matched (area range only)
        # (column j + 1 holds the count over positions 0..j)
        base_cum = np.zeros((A, order_m.size + 1), dtype=np.int64)
        np.cumsum(~self.det_out[:, order_m], axis=1, out=base_cum[:, 1:])
        before = base_cum[:, cat_start[:-1]]

        sel = dets.rank[self.hits_det] < md
        h_row, h_det = self.hits_row[sel], self.hits_det[sel]
        h_area, h_cat, h_pos = h_row // T, dets.category[h_det], position[h_det]
        h_group = h_row * K + h_cat
        h_tp, h_delta = self.hit_tp[sel], self.hit_delta[sel]
        nonignored = base_cum[h_area, h_pos + 1] - before[h_area, h_cat] + _segment_cumsum(h_delta, h_group)
        # true positives: their count within the group, precision there, its suffix max
        tp_group, tp_det = h_group[h_tp], h_det[h_tp]
        tp_count = _segment_cumsum(np.ones(tp_group.size, dtype=np.int64), tp_group)
        pr = tp_count.astype(np.float64) / (nonignored[h_tp].astype(np.float64) + np.spacing(1))
        envelope = _segment_suffix_max(pr, tp_group)
        n_tp = np.bincount(tp_group, minlength=AT * K).reshape(AT, K)
        tp_start = np.searchsorted(tp_group, np.arange(AT * K)).reshape(AT, K)

        # precision at each recall threshold: the envelope at the needed-th true positive
        needed = self.needed
        reach = (needed >= 1) & (needed <= n_tp[:, :, None])
        at = np.where(reach, tp_start[:, :, None] + np.clip(needed - 1, 0, None), 0)
        q = np.where(reach, envelope[at] if envelope.size else 0.0, 0.0)
        ss = np.where(reach, dets.score[tp_det[at]] if tp_det.size else 0.0, 0.0)
        # a threshold of 0 is reached at the first detection of the category
        zero = (needed == 0) & (n_k[None, :, None] > 0)
        first_env = np.where(n_tp > 0, envelope[np.minimum(tp_start, max(envelope.size - 1, 0))]
                             if envelope.size else 0.0, 0.0)
        first_score = dets.score[order_m[np.minimum(cat_start[:-1], max(order_m.size - 1, 0))]] \
            if order_m.size else np.zeros(K)
        q = np.where(zero, first_env[:, :, None], q)
        ss = np.where(zero, first_score[None, :, None], ss)
        rec = np.where(n_k[None, :] > 0, n_tp / np.maximum(np.repeat(self.npig, T, axis=0), 1), 0.0)
        # rows are (a, t): into pycocotools' layout, -1 where no ground truth
        R = needed.shape[2]
        q = np.where(self.defined[:, :, None], q, -1.0).reshape(A, T, K, R)
        ss = np.where(self.defined[:, :, None], ss, -1.0).reshape(A, T, K, R)
        rec = np.where(self.defined, rec, -1.0).reshape(A, T, K)
        return q.transpose(1, 3, 2, 0), ss.transpose(1, 3, 2, 0), rec.transpose(1, 2, 0)


def _result(precision, recall, scores, iou_thresholds, max_dets, area_ranges, npig) -> dict:
    return {"precision": precision, "recall": recall, "scores": scores,
            "iou_thresholds": iou_thresholds, "rec_thresholds": RECALL_THRESHOLDS.copy(),
            "max_dets": list(max_dets), "area_ranges": [list(r) for r in area_ranges],
            "num_gt": npig}


def _small_ints(values: np.ndarray, bound: int) -> np.ndarray:
    """``values`` (in [0, bound)) as int16 when they fit: numpy's stable sort is then a
    radix sort (~10x faster than its timsort on int64)."""
    return values.astype(np.int16) if bound <= 2 ** 15 else values


def _segment_cumsum(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Inclusive cumsum of ``values`` restarting wherever the (sorted) ``groups`` change."""
    if values.size == 0:
        return values.copy()
    total = np.cumsum(values)
    _, starts, lengths = _group_bounds(groups)
    return total - np.repeat(total[starts] - values[starts], lengths)


def _segment_suffix_max(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Max of ``values[i:]`` within i's group, for sorted ``groups`` (exact: works on ranks)."""
    if values.size == 0:
        return values.copy()
    unique, rank = np.unique(values, return_inverse=True)
    _, starts, lengths = _group_bounds(groups)
    segment = np.repeat(np.arange(starts.size, dtype=np.int64), lengths)
    key = (starts.size - segment) * np.int64(unique.size) + rank.reshape(-1)
    key = np.maximum.accumulate(key[::-1])[::-1]
    return unique[key % unique.size]


def _needed_true_positives(npig: np.ndarray) -> np.ndarray:
    """[A, K, R]: the least integer c with c / npig >= threshold (float division, as
    pycocotools' ``tp / npig``), i.e. where ``searchsorted(rc, thr, 'left')`` lands."""
    n = np.maximum(npig, 1).astype(np.float64)[:, :, None]
    thr = RECALL_THRESHOLDS[None, None, :]
    c = np.ceil(thr * n)
    for _ in range(3):  # fix the rounding of thr * n, both ways
        c = np.where((c > 0) & ((c - 1) / n >= thr), c - 1, c)
        c = np.where(c / n < thr, c + 1, c)
    return c.astype(np.int64)


SUMMARY = (  # (AP or AR, IoU threshold (None: mean over all), area range, maxDets)
    (True, None, "all", 100), (True, .5, "all", 100), (True, .75, "all", 100),
    (True, None, "small", 100), (True, None, "medium", 100), (True, None, "large", 100),
    (False, None, "all", 1), (False, None, "all", 10), (False, None, "all", 100),
    (False, None, "small", 100), (False, None, "medium", 100), (False, None, "large", 100),
)
STAT_NAMES = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
              "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")


def _line_max_det(line: int, max_dets: list[int]) -> int | None:
    """The maxDets that summary line ``line`` reads, as pycocotools does: the first line
    asks for maxDets == 100 literally (-1 when 100 is not among them), the others read
    maxDets by position (lines 6 and 7 the first and second, the rest the third). With
    other than three maxDets (pycocotools fails there) the last stands in for the third."""
    md = SUMMARY[line][3]
    if line == 0:
        return 100 if 100 in max_dets else None
    if len(max_dets) == 3:
        return max_dets[{1: 0, 10: 1, 100: 2}[md]]
    if md == 100:
        return max_dets[-1]
    return md if md in max_dets else None


def summarize(result: dict) -> np.ndarray:
    """The 12 numbers of ``COCOeval.summarize()`` in its order (-1 where undefined)."""
    iou_thresholds = result["iou_thresholds"]
    max_dets = list(result["max_dets"])
    stats = np.zeros(len(SUMMARY))
    for i, (is_ap, iou, area, _) in enumerate(SUMMARY):
        a = AREA_LABELS.index(area)
        md = _line_max_det(i, max_dets)
        if md is None:
            stats[i] = -1
            continue
        m = max_dets.index(md)
        s = result["precision"][:, :, :, a, m] if is_ap else result["recall"][:, :, a, m]
        if iou is not None:
            s = s[np.where(iou == iou_thresholds)[0]]
        stats[i] = -1 if len(s[s > -1]) == 0 else np.mean(s[s > -1])
    return stats


def format_summary(stats, max_dets=MAX_DETS) -> str:
    """pycocotools' familiar table, one line per summary number."""
    lines = []
    for line, (value, (is_ap, iou, area, md)) in enumerate(zip(stats, SUMMARY)):
        md = _line_max_det(line, sorted(max_dets)) or md
        title = "Average Precision" if is_ap else "Average Recall"
        kind = "(AP)" if is_ap else "(AR)"
        iou_str = "0.50:0.95" if iou is None else f"{iou:0.2f}"
        lines.append(f" {title:<18} {kind} @[ IoU={iou_str:<9} | area={area:>6s} | maxDets={md:>3d} ] = {value:0.3f}")
    return "\n".join(lines)
