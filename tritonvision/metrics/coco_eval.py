"""COCO box AP/AR, the same numbers as pycocotools' ``COCOeval`` (iouType "bbox"), vectorised.

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

import numpy as np

IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = ((0.0, 1e5 ** 2), (0.0, 32.0 ** 2), (32.0 ** 2, 96.0 ** 2), (96.0 ** 2, 1e5 ** 2))
AREA_LABELS = ("all", "small", "medium", "large")


@dataclass
class CocoBoxes:
    """Flat arrays of the detections and ground truths of a whole evaluation.

    ``*_image`` index images in evaluation order (pycocotools: sorted image ids),
    ``*_category`` index categories 0..K-1 (pycocotools: sorted category ids); entries
    with category -1 are outside the evaluated categories and skipped. Boxes are xywh
    float64. ``gt_id_nonzero`` is False for a ground truth whose annotation id is 0.
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


def evaluate(boxes: CocoBoxes, iou_thresholds=IOU_THRESHOLDS, max_dets=MAX_DETS,
             area_ranges=AREA_RANGES) -> dict:
    """Match and accumulate; returns ``precision`` [T, R, K, A, M], ``recall`` [T, K, A, M]
    and ``scores`` [T, R, K, A, M] in pycocotools' layout (-1 where undefined)."""
    iou_thresholds = np.asarray(iou_thresholds, dtype=np.float64)
    max_dets = sorted(int(m) for m in max_dets)
    T, R, A, M = len(iou_thresholds), len(RECALL_THRESHOLDS), len(area_ranges), len(max_dets)
    K = boxes.num_categories
    max_det = max_dets[-1]

    # ---------------------------------------------------------------- detections
    keep = boxes.det_category >= 0
    d_img = boxes.det_image[keep].astype(np.int64)
    d_cat = boxes.det_category[keep].astype(np.int64)
    d_score = boxes.det_score[keep].astype(np.float64)
    d_box = boxes.det_xywh[keep].astype(np.float64).reshape(-1, 4)
    # by (image, category, descending score), ties in input order: stable sorts, the one
    # by score done once for matching and accumulation (saves a 0.04 s float sort of the
    # 500k detections of COCO val): by_score is (descending score, image, input order)
    by_score = np.argsort(_small_ints(d_img, boxes.num_images), kind="stable")
    by_score = by_score[np.argsort(-d_score[by_score], kind="stable")]
    order = by_score[np.argsort((d_img * K + d_cat)[by_score], kind="stable")]
    d_img, d_cat, d_score, d_box = d_img[order], d_cat[order], d_score[order], d_box[order]
    d_key = d_img * K + d_cat
    _, starts, lengths = _group_bounds(d_key)
    d_rank = np.arange(d_key.size, dtype=np.int64) - np.repeat(starts, lengths)
    kept = d_rank < max_det
    new_index = np.full(d_key.size, -1, dtype=np.int64)   # input -> kept detection
    new_index[order[kept]] = np.arange(int(kept.sum()), dtype=np.int64)
    by_score = new_index[by_score]
    by_score = by_score[by_score >= 0]
    d_img, d_cat, d_score, d_box, d_key, d_rank = (
        d_img[kept], d_cat[kept], d_score[kept], d_box[kept], d_key[kept], d_rank[kept])
    D = d_key.size
    d_area = d_box[:, 2] * d_box[:, 3]

    # ---------------------------------------------------------------- ground truths
    g_keep = boxes.gt_category >= 0
    g_img = boxes.gt_image[g_keep].astype(np.int64)
    g_cat = boxes.gt_category[g_keep].astype(np.int64)
    g_box = boxes.gt_xywh[g_keep].astype(np.float64).reshape(-1, 4)
    g_area = boxes.gt_area[g_keep].astype(np.float64)
    g_crowd = boxes.gt_crowd[g_keep].astype(bool)
    g_id_ok = (np.ones(g_img.size, dtype=bool) if boxes.gt_id_nonzero is None
               else boxes.gt_id_nonzero[g_keep].astype(bool))
    g_order = np.argsort(g_img * K + g_cat, kind="stable")
    g_img, g_cat, g_box, g_area, g_crowd, g_id_ok = (
        g_img[g_order], g_cat[g_order], g_box[g_order], g_area[g_order], g_crowd[g_order], g_id_ok[g_order])
    g_key = g_img * K + g_cat
    G = g_key.size
    g_groups, g_starts, g_lengths = _group_bounds(g_key)
    g_group_start = np.repeat(g_starts, g_lengths)

    # ignore flags [A, G] and each gt's position within its group once ignored ones go last
    g_ignore = np.stack([g_crowd | (g_area < lo) | (g_area > hi) for lo, hi in area_ranges]) \
        if A else np.zeros((0, G), dtype=bool)
    g_pos = np.empty((A, G), dtype=np.int64)
    for a in range(A):
        sorted_idx = np.lexsort((g_ignore[a], g_key))
        g_pos[a, sorted_idx] = np.arange(G, dtype=np.int64) - g_group_start[sorted_idx]
    d_out = np.stack([(d_area < lo) | (d_area > hi) for lo, hi in area_ranges]) \
        if A else np.zeros((0, D), dtype=bool)

    # ---------------------------------------------------------------- pairs in the same group
    if g_groups.size and D:
        where = np.minimum(np.searchsorted(g_groups, d_key), g_groups.size - 1)
        has_gt = g_groups[where] == d_key
        pair_count = np.where(has_gt, g_lengths[where], 0)
        first_gt = np.where(has_gt, g_starts[where], 0)
    else:
        pair_count = first_gt = np.zeros(D, dtype=np.int64)
    pair_det = np.repeat(np.arange(D, dtype=np.int64), pair_count)
    pair_gt = _ranges(first_gt, pair_count)
    ious = pair_iou(d_box[pair_det], g_box[pair_gt], g_crowd[pair_gt])
    thresholds = np.minimum(iou_thresholds, 1 - 1e-10)
    if T:
        useful = ious >= thresholds.min()
        pair_det, pair_gt, ious = pair_det[useful], pair_gt[useful], ious[useful]

    # ---------------------------------------------------------------- greedy matching by rank
    # rows are (area range, threshold) pairs: row = a * T + t
    AT = A * T
    row_thr = np.tile(thresholds, A)[:, None]
    gt_taken = np.zeros((AT, G), dtype=bool)
    pair_rank = d_rank[pair_det]
    by_rank = np.argsort(pair_rank, kind="stable")
    pair_det, pair_gt, ious, pair_rank = pair_det[by_rank], pair_gt[by_rank], ious[by_rank], pair_rank[by_rank]
    rank_bounds = np.searchsorted(pair_rank, np.arange(max_det + 1))
    hits_row, hits_det, hits_gt = [], [], []
    for r in range(max_det):
        lo, hi = rank_bounds[r], rank_bounds[r + 1]
        if lo == hi or AT == 0:
            continue
        dets, gts, iou = pair_det[lo:hi], pair_gt[lo:hi], ious[lo:hi]
        _, seg_starts, seg_lengths = _group_bounds(dets)
        eligible = (iou[None, :] >= row_thr) & (~gt_taken[:, gts] | g_crowd[gts][None, :])
        # 1) prefer a non-ignored gt, 2) then the largest IoU, 3) then the later gt in order
        not_ignored = np.repeat(~g_ignore[:, gts], T, axis=0).astype(np.int8)
        key = np.where(eligible, not_ignored, np.int8(-1))
        best = eligible & (key == _segment_max(key, seg_starts, seg_lengths))
        key = np.where(best, iou[None, :], -1.0)
        best &= key == _segment_max(key, seg_starts, seg_lengths)
        key = np.where(best, np.repeat(g_pos[:, gts], T, axis=0), -1)
        best &= key == _segment_max(key, seg_starts, seg_lengths)
        hit_row, hit_col = np.nonzero(best)
        gt_taken[hit_row, gts[hit_col]] = True
        hits_row.append(hit_row)
        hits_det.append(dets[hit_col])
        hits_gt.append(gts[hit_col])
    hits_row = np.concatenate(hits_row) if hits_row else np.zeros(0, dtype=np.int64)
    hits_det = np.concatenate(hits_det) if hits_det else np.zeros(0, dtype=np.int64)
    hits_gt = np.concatenate(hits_gt) if hits_gt else np.zeros(0, dtype=np.int64)

    # what each match makes of its detection in its row: a true positive, or ignored;
    # unmatched detections are false positives unless outside the area range
    hits_area = hits_row // max(T, 1)
    counted = g_id_ok[hits_gt]
    hit_ignored = g_ignore[hits_area, hits_gt] | (~counted & d_out[hits_area, hits_det])
    hit_tp = counted & ~hit_ignored
    hit_delta = (~hit_ignored).astype(np.int64) - (~d_out[hits_area, hits_det]).astype(np.int64)

    # ---------------------------------------------------------------- accumulate per category
    npig = np.zeros((A, K), dtype=np.int64)
    for a in range(A):
        npig[a] = np.bincount(g_cat[~g_ignore[a]], minlength=K)[:K]
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    if AT == 0 or K == 0:
        return _result(precision, recall, scores, iou_thresholds, max_dets, area_ranges, npig)
    needed = _needed_true_positives(npig)                     # [A, K, R]
    needed_rows = np.repeat(needed, T, axis=0)                # [AT, K, R]
    defined = np.repeat(npig > 0, T, axis=0)                  # [AT, K]
    # per category by score; ties in (image, rank) order, as pycocotools concatenates: the
    # kept detections by (descending score, image, input order), stably by category
    acc_order = by_score[np.argsort(_small_ints(d_cat, K)[by_score], kind="stable")]
    acc_position = np.empty(D, dtype=np.int64)
    acc_position[acc_order] = np.arange(D)
    # the matches sorted once by (row, category, accumulation position); each maxDets
    # subset keeps that order
    hit_order = np.argsort((hits_row * K + d_cat[hits_det]) * np.int64(D + 1) + acc_position[hits_det],
                           kind="stable")
    hits_row, hits_det, hit_tp, hit_delta = (hits_row[hit_order], hits_det[hit_order], hit_tp[hit_order],
                                             hit_delta[hit_order])
    eps = np.spacing(1)
    for m, md in enumerate(max_dets):
        order_m = acc_order if md >= max_det else acc_order[d_rank[acc_order] < md]
        position = np.full(D, -1, dtype=np.int64)
        position[order_m] = np.arange(order_m.size)
        cat_start = np.searchsorted(d_cat[order_m], np.arange(K + 1))
        n_k = np.diff(cat_start)
        # non-ignored count up to each position, as if nothing matched (area range only)
        # (column j + 1 holds the count over positions 0..j)
        base_cum = np.zeros((A, order_m.size + 1), dtype=np.int64)
        np.cumsum(~d_out[:, order_m], axis=1, out=base_cum[:, 1:])
        before = base_cum[:, cat_start[:-1]]

        sel = d_rank[hits_det] < md
        h_row, h_det = hits_row[sel], hits_det[sel]
        h_area, h_cat, h_pos = h_row // T, d_cat[h_det], position[h_det]
        h_group = h_row * K + h_cat
        h_tp, h_delta = hit_tp[sel], hit_delta[sel]
        nonignored = base_cum[h_area, h_pos + 1] - before[h_area, h_cat] + _segment_cumsum(h_delta, h_group)
        # true positives: their count within the group, precision there, its suffix max
        tp_group, tp_det = h_group[h_tp], h_det[h_tp]
        tp_count = _segment_cumsum(np.ones(tp_group.size, dtype=np.int64), tp_group)
        pr = tp_count.astype(np.float64) / (nonignored[h_tp].astype(np.float64) + eps)
        envelope = _segment_suffix_max(pr, tp_group)
        n_tp = np.bincount(tp_group, minlength=AT * K).reshape(AT, K)
        tp_start = np.searchsorted(tp_group, np.arange(AT * K)).reshape(AT, K)

        # precision at each recall threshold: the envelope at the needed-th true positive
        reach = (needed_rows >= 1) & (needed_rows <= n_tp[:, :, None])
        at = tp_start[:, :, None] + np.clip(needed_rows - 1, 0, None)
        at = np.where(reach, at, 0)
        q = np.where(reach, envelope[at] if envelope.size else 0.0, 0.0)
        ss = np.where(reach, d_score[tp_det[at]] if tp_det.size else 0.0, 0.0)
        # a threshold of 0 is reached at the first detection of the category
        zero = (needed_rows == 0) & (n_k[None, :, None] > 0)
        first_env = np.where(n_tp > 0, envelope[np.minimum(tp_start, max(envelope.size - 1, 0))]
                             if envelope.size else 0.0, 0.0)
        first_score = d_score[order_m[np.minimum(cat_start[:-1], max(order_m.size - 1, 0))]] \
            if order_m.size else np.zeros(K)
        q = np.where(zero, first_env[:, :, None], q)
        ss = np.where(zero, first_score[None, :, None], ss)
        rec = np.where(n_k[None, :] > 0, n_tp / np.maximum(np.repeat(npig, T, axis=0), 1), 0.0)
        # rows are (a, t): scatter into pycocotools' layout, -1 where no ground truth
        q = np.where(defined[:, :, None], q, -1.0).reshape(A, T, K, R)
        ss = np.where(defined[:, :, None], ss, -1.0).reshape(A, T, K, R)
        rec = np.where(defined, rec, -1.0).reshape(A, T, K)
        precision[:, :, :, :, m] = q.transpose(1, 3, 2, 0)
        scores[:, :, :, :, m] = ss.transpose(1, 3, 2, 0)
        recall[:, :, :, m] = rec.transpose(1, 2, 0)
    return _result(precision, recall, scores, iou_thresholds, max_dets, area_ranges, npig)


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


def _line_max_det(md: int, max_dets: list[int]) -> int | None:
    """pycocotools reads maxDets by position: the 1/10/100 lines use its first, second
    and third; with another number of maxDets we use the last for the 100 lines."""
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
    for i, (is_ap, iou, area, md) in enumerate(SUMMARY):
        a = AREA_LABELS.index(area)
        md = _line_max_det(md, max_dets)
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
    for value, (is_ap, iou, area, md) in zip(stats, SUMMARY):
        md = _line_max_det(md, sorted(max_dets)) or md
        title = "Average Precision" if is_ap else "Average Recall"
        kind = "(AP)" if is_ap else "(AR)"
        iou_str = "0.50:0.95" if iou is None else f"{iou:0.2f}"
        lines.append(f" {title:<18} {kind} @[ IoU={iou_str:<9} | area={area:>6s} | maxDets={md:>3d} ] = {value:0.3f}")
    return "\n".join(lines)
