"""IoU of RLEs, identical to pycocotools' ``mask.iou`` (for evaluation on the CPU)."""
from __future__ import annotations

import numpy as np

from . import _runs
from ._segments import local_index, offsets_of, segment_cumsum, segment_ids
from .rle import bboxes


def _zero_run_after_first(runs: _runs.Runs) -> np.ndarray:
    """[n] bool: the RLE has a 0-length run after its first."""
    zero = (runs.counts == 0) & (local_index(runs.offsets) > 0)
    return np.bincount(segment_ids(runs.offsets)[zero], minlength=len(runs)) > 0


def _bbox_overlap(db: np.ndarray, gb: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' ``bbIou`` of [x, y, w, h] boxes [D, 4] x [G, 4]; crowd columns divide by
    the detection's box area."""
    w = np.minimum(db[:, None, 0] + db[:, None, 2], gb[None, :, 0] + gb[None, :, 2]) \
        - np.maximum(db[:, None, 0], gb[None, :, 0])
    h = np.minimum(db[:, None, 1] + db[:, None, 3], gb[None, :, 1] + gb[None, :, 3]) \
        - np.maximum(db[:, None, 1], gb[None, :, 1])
    inter = w * h
    da = (db[:, 2] * db[:, 3])[:, None]
    union = np.where(crowd[None, :], da, da + (gb[:, 2] * gb[:, 3])[None, :] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((w > 0) & (h > 0), inter / union, 0.0)


def _intersections(dt: _runs.Runs, gt: _runs.Runs, d: np.ndarray, g: np.ndarray, hw: int) -> np.ndarray:
    """Foreground pixels shared by each pair (dt[d[k]], gt[g[k]]), exact, vectorised.

    F_d(x), the foreground pixels of d before position x, is piecewise linear between d's
    run boundaries; a pair's intersection is the sum of F_d(end) - F_d(start) over the
    1-runs of g. All dt boundaries sit in one sorted array (keyed by d * (hw + 1) + x), so
    every query of every pair is one ``searchsorted``.
    """
    ends = segment_cumsum(dt.counts, dt.offsets)
    local = local_index(dt.offsets)
    seg = segment_ids(dt.offsets)
    starts = ends - dt.counts
    fg = local % 2 == 1
    before = segment_cumsum(np.where(fg, dt.counts, 0), dt.offsets) - np.where(fg, dt.counts, 0)
    keys = seg * (hw + 1) + starts                                    # run k of d starts here

    g_ends = segment_cumsum(gt.counts, gt.offsets)
    g_odd = np.nonzero(local_index(gt.offsets) % 2 == 1)[0]
    g_seg = segment_ids(gt.offsets)[g_odd]
    g_start, g_end = g_ends[g_odd] - gt.counts[g_odd], g_ends[g_odd]
    g_run_offsets = offsets_of(np.bincount(g_seg, minlength=len(gt)))
    # every (pair, 1-run of the pair's g)
    n_runs = np.diff(g_run_offsets)[g]
    pair = np.repeat(np.arange(len(d)), n_runs)
    run = np.repeat(g_run_offsets[g], n_runs) + local_index(offsets_of(n_runs))

    def covered(x: np.ndarray) -> np.ndarray:
        k = np.searchsorted(keys, d[pair] * (hw + 1) + x, side="right") - 1
        return before[k] + np.where(fg[k], x - starts[k], 0)

    inside = covered(g_end[run]) - covered(g_start[run])
    return np.bincount(pair, weights=inside, minlength=len(d)).astype(np.int64)


def _intersection_union_literal(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """pycocotools' rleIou loop for one pair, step for step. Only used for RLEs with a
    0-length run after their first, where that loop stops early (when both RLEs reach a
    0-length run together) and so counts less than the masks share."""
    ca, cb, va, vb, ia, ib, inter, union, ct = int(a[0]), int(b[0]), 0, 0, 1, 1, 0, 0, 1
    while ct > 0:
        c = min(ca, cb)
        if va or vb:
            union += c
            inter += c if va and vb else 0
        ca -= c
        if not ca and ia < len(a):
            ca, va, ia = int(a[ia]), 1 - va, ia + 1
        cb -= c
        if not cb and ib < len(b):
            cb, vb, ib = int(b[ib]), 1 - vb, ib + 1
        ct = ca + cb
    return inter, union


def iou(dt, gt, iscrowd) -> np.ndarray:
    """IoU of every (detection, ground truth) RLE pair, as pycocotools' ``mask.iou``.

    Args:
        dt: list of D RLE dicts (compressed or uncompressed).
        gt: list of G RLE dicts of the same size.
        iscrowd: G flags (list or array of bool / 0-1); a crowd ground truth's union is the
            detection's own area, so the value is the fraction of the detection inside it.
    Returns:
        float64 array [D, G]; 0 where the masks do not intersect (also for two empty masks).
        pycocotools returns ``[]`` when D or G is 0; here an empty [D, G] array.

    Like pycocotools, only pairs whose bounding boxes overlap are compared pixel-wise.
    Masks of different sizes raise ValueError (pycocotools writes -1 for such pairs).
    """
    op = "masks.iou"
    for name, value in (("dt", dt), ("gt", gt)):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{op}: {name} must be a list of RLE dicts, got {type(value).__name__}")
    crowd = np.asarray(iscrowd if iscrowd is not None else np.zeros(len(gt)), dtype=bool).reshape(-1)
    if len(crowd) != len(gt):
        raise ValueError(f"{op}: iscrowd has {len(crowd)} flags for {len(gt)} ground-truth RLEs")
    out = np.zeros((len(dt), len(gt)), dtype=np.float64)
    if not len(dt) or not len(gt):
        return out
    dt_runs, gt_runs = _runs.parse(list(dt), op), _runs.parse(list(gt), op)
    sizes = np.concatenate([dt_runs.sizes, gt_runs.sizes])
    if (sizes != sizes[0]).any():
        raise ValueError(f"{op}: every RLE must have the same size, got {np.unique(sizes, axis=0).tolist()}")
    hw = int(sizes[0].prod())
    d, g = np.nonzero(_bbox_overlap(bboxes(dt_runs), bboxes(gt_runs), crowd) > 0)
    inter = _intersections(dt_runs, gt_runs, d, g, hw)
    dt_area, gt_area = dt_runs.fg_areas()[d], gt_runs.fg_areas()[g]
    union = np.where(crowd[g], dt_area, dt_area + gt_area - inter)
    odd_dt, odd_gt = _zero_run_after_first(dt_runs), _zero_run_after_first(gt_runs)
    for k in np.nonzero(odd_dt[d] | odd_gt[g])[0]:
        inter[k], plain_union = _intersection_union_literal(dt_runs.runs(d[k]), gt_runs.runs(g[k]))
        union[k] = dt_area[k] if crowd[g[k]] else plain_union
    out[d, g] = np.where(inter > 0, inter / np.maximum(union, 1), 0.0)
    return out
