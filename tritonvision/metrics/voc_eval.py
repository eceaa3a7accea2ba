"""PASCAL VOC average precision: 11-point (VOC2007) and all-point (VOC2010+), vectorised.

The VOC devkit rule, per class over all images: detections in descending score order
(stable sort here; the devkit's quicksort leaves ties in an unspecified order); each
takes the ground truth of its image and class with the largest IoU (the first one on
ties), difficult ones included; if that IoU > ``iou_threshold`` (strictly): a difficult
ground truth makes the detection neither TP nor FP, an unclaimed one makes it a TP
(and claims it), a claimed one an FP; otherwise it is an FP. recall = tp / npos (npos:
non-difficult ground truths), precision = tp / max(tp + fp, eps).

Boxes are (x1, y1, x2, y2) without the devkit's "+1 pixel" convention (tritonvision's
box convention); the IoU is ``tritonvision.ops.box_overlap`` on float64 pairs.
A class without non-difficult ground truth has AP -1 (undefined) and is left out of the mean.

Vectorised: a detection's best ground truth does not depend on the order, so all pairs
are scored at once; a detection is a TP exactly when it is the first, in score order,
of the detections whose best (non-difficult, IoU > threshold) ground truth is that one.
"""
from __future__ import annotations

import numpy as np
import torch

from tritonvision.ops import box_overlap

from .coco_eval import _group_bounds, _ranges


def pair_iou_xyxy(det_xyxy: np.ndarray, gt_xyxy: np.ndarray) -> np.ndarray:
    """IoU of matched pairs (row i of each), float64, via our box_overlap op."""
    if det_xyxy.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    out = box_overlap(torch.from_numpy(np.ascontiguousarray(det_xyxy, dtype=np.float64)),
                      torch.from_numpy(np.ascontiguousarray(gt_xyxy, dtype=np.float64)), "iou", aligned=True)
    return out.numpy()


def average_precision_voc07(recall: np.ndarray, precision: np.ndarray) -> float:
    """11-point interpolated AP: mean over t in 0, 0.1, ..., 1 of max precision at recall >= t."""
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        p = float(np.max(precision[recall >= t])) if np.any(recall >= t) else 0.0
        ap += p / 11.0
    return ap


def average_precision_all_points(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the monotone precision envelope, summed where recall changes."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def evaluate_voc(det_image, det_category, det_score, det_xyxy, gt_image, gt_category, gt_xyxy,
                 gt_difficult, num_categories: int, iou_threshold: float = 0.5,
                 use_07_metric: bool = False) -> dict:
    """Per-class AP and PR curves. Categories are indices 0..K-1 (-1: not evaluated).

    Returns ``ap`` [K] (-1 where a class has no non-difficult ground truth), ``map``
    (mean of the defined APs, -1 if none) and ``curves``: per class (recall, precision).
    """
    K = num_categories
    det_image, det_category = np.asarray(det_image, np.int64), np.asarray(det_category, np.int64)
    det_score, det_xyxy = np.asarray(det_score, np.float64), np.asarray(det_xyxy, np.float64).reshape(-1, 4)
    gt_image, gt_category = np.asarray(gt_image, np.int64), np.asarray(gt_category, np.int64)
    gt_xyxy = np.asarray(gt_xyxy, np.float64).reshape(-1, 4)
    gt_difficult = np.asarray(gt_difficult, bool)

    # ground truths grouped by (image, class), original order kept inside a group
    g_valid = gt_category >= 0
    g_key = np.where(g_valid, gt_image * max(K, 1) + gt_category, -1)
    g_order = np.argsort(g_key, kind="stable")
    g_order = g_order[g_key[g_order] >= 0]
    g_sorted_key = g_key[g_order]
    groups, starts, lengths = _group_bounds(g_sorted_key)

    valid = np.flatnonzero(det_category >= 0)
    d_key = det_image[valid] * max(K, 1) + det_category[valid]
    if groups.size and valid.size:
        where = np.minimum(np.searchsorted(groups, d_key), groups.size - 1)
        has = groups[where] == d_key
        count = np.where(has, lengths[where], 0)
        first = np.where(has, starts[where], 0)
    else:
        count = first = np.zeros(valid.size, dtype=np.int64)
    pair_det = np.repeat(valid, count)
    pair_gt = g_order[_ranges(first, count)]
    ious = pair_iou_xyxy(det_xyxy[pair_det], gt_xyxy[pair_gt])

    # best ground truth per detection: largest IoU, first on ties
    ov_max = np.full(det_score.size, -np.inf)
    best_gt = np.full(det_score.size, -1, dtype=np.int64)
    if ious.size:
        _, seg_starts, seg_lengths = _group_bounds(pair_det)
        seg_max = np.maximum.reduceat(ious, seg_starts)
        is_max = ious == np.repeat(seg_max, seg_lengths)
        idx = np.where(is_max, np.arange(ious.size), ious.size)
        first_max = np.minimum(np.minimum.reduceat(idx, seg_starts), seg_starts + seg_lengths - 1)
        dets = pair_det[seg_starts]
        ov_max[dets] = seg_max
        best_gt[dets] = pair_gt[first_max]

    above = ov_max > iou_threshold
    safe = np.maximum(best_gt, 0)
    difficult_hit = above & (gt_difficult[safe] if gt_difficult.size else False)
    candidate = above & ~difficult_hit

    # score order per class; a candidate is a TP when it is the first to claim its gt
    order = valid[np.lexsort((-det_score[valid], det_category[valid]))]
    claimant = candidate[order]
    claimed_gt = best_gt[order]
    tp = np.zeros(order.size, dtype=bool)
    if claimant.any():
        cand_pos = np.flatnonzero(claimant)
        _, first_pos = np.unique(claimed_gt[cand_pos], return_index=True)
        tp[cand_pos[first_pos]] = True
    fp = ~tp & ~difficult_hit[order]
    cats = det_category[order]
    cat_start = np.searchsorted(cats, np.arange(K + 1))
    npos = np.bincount(gt_category[g_valid & ~gt_difficult], minlength=K)[:K] if K else np.zeros(0, np.int64)

    ap = -np.ones(K)
    curves = []
    eps = np.finfo(np.float64).eps
    for k in range(K):
        tp_k = np.cumsum(tp[cat_start[k]:cat_start[k + 1]]).astype(np.float64)
        fp_k = np.cumsum(fp[cat_start[k]:cat_start[k + 1]]).astype(np.float64)
        if npos[k] == 0:
            curves.append((np.zeros(0), np.zeros(0)))
            continue
        rec = tp_k / npos[k]
        prec = tp_k / np.maximum(tp_k + fp_k, eps)
        curves.append((rec, prec))
        ap[k] = average_precision_voc07(rec, prec) if use_07_metric else average_precision_all_points(rec, prec)
    defined = ap > -1
    return {"ap": ap, "map": float(ap[defined].mean()) if defined.any() else -1.0,
            "curves": curves, "num_gt": npos}
