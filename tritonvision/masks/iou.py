"""IoU of RLEs, identical to pycocotools' ``mask.iou`` (for evaluation on the CPU)."""
from __future__ import annotations

import numpy as np

from . import _runs
from ._segments import local_index, offsets_of, segment_cumsum, segment_ids
from ._threads import thread_map
from .rle import _fg_intervals, bboxes


def _zero_run_after_first(runs: _runs.Runs) -> np.ndarray:
    """[n] bool: the RLE has a 0-length run after its first."""
    zero = runs.counts == 0
    nonempty = np.flatnonzero(np.diff(runs.offsets) > 0)
    zero[runs.offsets[nonempty]] = False
    out = np.zeros(len(runs), dtype=bool)
    if nonempty.size:
        out[nonempty] = np.logical_or.reduceat(zero, runs.offsets[nonempty])
    return out


def _column_spans(runs: _runs.Runs) -> np.ndarray:
    """[n, 2] int64: the first foreground column and one past the last ([0, 0] for an empty
    mask), from the first and last runs alone. Exact for RLEs without a 0-length run after
    their first."""
    lengths = np.diff(runs.offsets)
    h = np.maximum(runs.sizes[:, 0], 1)
    hw = runs.sizes[:, 0] * runs.sizes[:, 1]
    has_fg = lengths >= 2
    first = runs.counts[np.minimum(runs.offsets[:-1], max(runs.counts.size - 1, 0))] if runs.counts.size else 0
    trailing = np.where(lengths % 2 == 1, runs.counts[np.maximum(runs.offsets[1:] - 1, 0)]
                        if runs.counts.size else 0, 0)
    last = hw - trailing - 1
    return np.where(has_fg[:, None], np.stack([first // h, last // h + 1], axis=1), 0)


def _bbox_overlap_pairs(db: np.ndarray, gb: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' ``bbIou`` of paired [x, y, w, h] boxes [P, 4] and [P, 4]; a crowd pair
    divides by the detection's box area."""
    w = np.minimum(db[:, 0] + db[:, 2], gb[:, 0] + gb[:, 2]) - np.maximum(db[:, 0], gb[:, 0])
    h = np.minimum(db[:, 1] + db[:, 3], gb[:, 1] + gb[:, 3]) - np.maximum(db[:, 1], gb[:, 1])
    inter = w * h
    da = db[:, 2] * db[:, 3]
    union = np.where(crowd, da, da + gb[:, 2] * gb[:, 3] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((w > 0) & (h > 0), inter / union, 0.0)


def _intersections(dt: _runs.Runs, gt_runs: tuple, d: np.ndarray, g: np.ndarray,
                   d_columns: np.ndarray) -> np.ndarray:
    """Foreground pixels shared by each pair (dt[d[k]], gt[g[k]]), exact, vectorised.

    F_d(x), the foreground pixels of d before position x, is piecewise linear between d's
    run boundaries; a pair's intersection is the sum of F_d(end) - F_d(start) over the
    1-runs of g. All dt boundaries sit in one sorted array (keyed by d * stride + x), so
    every query of every pair is one ``searchsorted``. Only g's 1-runs that meet the
    columns ``d_columns[k]`` = [first, last + 1) of d's bounding box are queried (F_d is
    constant outside them). ``gt_runs``: (gt heights, then of gt's 1-runs by RLE and
    position: start, end, start key, end key, and the key stride).
    """
    heights, g_start, g_end, g_start_key, g_end_key, stride = gt_runs
    ends = segment_cumsum(dt.counts, dt.offsets)
    fg = local_index(dt.offsets) % 2 == 1
    starts = ends - dt.counts
    before = segment_cumsum(np.where(fg, dt.counts, 0), dt.offsets) - np.where(fg, dt.counts, 0)
    keys = segment_ids(dt.offsets) * stride + starts                  # run k of d starts here

    h = heights[g]
    first = np.searchsorted(g_end_key, g * stride + d_columns[:, 0] * h, side="right")
    last = np.searchsorted(g_start_key, g * stride + d_columns[:, 1] * h, side="left")
    n_runs = np.maximum(last - first, 0)
    pair = np.repeat(np.arange(len(d)), n_runs)
    run = np.arange(int(n_runs.sum())) - np.repeat(offsets_of(n_runs)[:-1] - first, n_runs)
    query_d = d[pair] * stride

    def covered(x: np.ndarray) -> np.ndarray:
        k = np.searchsorted(keys, query_d + x, side="right") - 1
        return before[k] + np.where(fg[k], x - starts[k], 0)

    inside = covered(g_end[run]) - covered(g_start[run])
    return np.bincount(pair, weights=inside, minlength=len(d)).astype(np.int64)


CHUNK_RUNS = 1 << 20     # detections' runs per chunk of pairs (arrays stay in cache)


def _intersections_by_chunk(dt: _runs.Runs, gt: _runs.Runs, d: np.ndarray, g: np.ndarray,
                            d_columns: np.ndarray) -> np.ndarray:
    """:func:`_intersections` of the pairs, in chunks of detections (on every core)."""
    stride = int(max(dt.sizes.prod(axis=1).max(initial=0), gt.sizes.prod(axis=1).max(initial=0))) + 1
    g_seg, g_start, g_end = _fg_intervals(gt)
    gt_runs = (gt.sizes[:, 0], g_start, g_end, g_seg * stride + g_start, g_seg * stride + g_end, stride)
    order = np.argsort(d, kind="stable")
    d_sorted = d[order]
    run_ends = dt.offsets[1:]
    cuts = np.searchsorted(run_ends, np.arange(CHUNK_RUNS, int(dt.offsets[-1]), CHUNK_RUNS))
    det_bounds = np.unique(np.concatenate([[0], cuts, [len(dt)]]))
    pair_bounds = np.searchsorted(d_sorted, det_bounds)

    def chunk(i: int) -> np.ndarray:
        a, b = det_bounds[i], det_bounds[i + 1]
        pairs = order[pair_bounds[i]:pair_bounds[i + 1]]
        return _intersections(dt.slice(a, b), gt_runs, d[pairs] - a, g[pairs], d_columns[pairs])
    inter = np.zeros(len(d), dtype=np.int64)
    parts = thread_map(chunk, range(len(det_bounds) - 1))
    if parts:
        inter[order] = np.concatenate(parts)
    return inter


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


def pair_iou(dt: _runs.Runs, gt: _runs.Runs, d: np.ndarray, g: np.ndarray, crowd: np.ndarray,
             dt_boxes: np.ndarray | None = None, gt_boxes: np.ndarray | None = None) -> np.ndarray:
    """IoU of the pairs (dt[d[k]], gt[g[k]]), each as ``pycocotools.mask.iou`` computes it.

    Args:
        dt, gt: parsed RLEs (``_runs.Runs``); a pair's two RLEs must have the same size.
        d, g: int arrays [P], indices into dt and gt.
        crowd: bool [P]; a crowd pair's union is the detection's area.
        dt_boxes, gt_boxes: their ``to_bbox`` boxes [n, 4] when already known.
    Returns:
        float64 [P]. As pycocotools, only pairs whose bounding boxes overlap are compared
        pixel-wise (the others are 0).
    Raises:
        ValueError when a pair's RLEs differ in size (pycocotools writes -1 there).
    """
    d, g = np.asarray(d, dtype=np.int64), np.asarray(g, dtype=np.int64)
    crowd = np.asarray(crowd, dtype=bool)
    out = np.zeros(len(d), dtype=np.float64)
    if not len(d):
        return out
    mismatch = np.flatnonzero((dt.sizes[d] != gt.sizes[g]).any(axis=1))
    if mismatch.size:
        k = mismatch[0]
        raise ValueError(f"masks.pair_iou: detection {int(d[k])} is {dt.sizes[d[k]].tolist()} but ground "
                         f"truth {int(g[k])} is {gt.sizes[g[k]].tolist()}; both must have the image's size")
    # pycocotools compares pixel-wise only pairs whose toBbox boxes overlap; for RLEs without
    # 0-length runs after their first, boxes apart means masks apart (IoU 0 either way), so
    # the columns alone prune there and the rows are left to the exact count
    odd_dt, odd_gt = _zero_run_after_first(dt), _zero_run_after_first(gt)
    dt_columns, gt_columns = _column_spans(dt), _column_spans(gt)
    near = (np.minimum(dt_columns[d, 1], gt_columns[g, 1]) > np.maximum(dt_columns[d, 0], gt_columns[g, 0]))
    odd = np.flatnonzero(odd_dt[d] | odd_gt[g])
    if odd.size:
        dt_boxes = bboxes(dt) if dt_boxes is None else dt_boxes
        gt_boxes = bboxes(gt) if gt_boxes is None else gt_boxes
        near[odd] = _bbox_overlap_pairs(dt_boxes[d[odd]], gt_boxes[g[odd]], crowd[odd]) > 0
        dt_columns = np.where(odd_dt[:, None], np.stack([dt_boxes[:, 0], dt_boxes[:, 0] + dt_boxes[:, 2]], 1)
                              .astype(np.int64), dt_columns)
    near = np.flatnonzero(near)
    d, g, crowd = d[near], g[near], crowd[near]
    inter = _intersections_by_chunk(dt, gt, d, g, dt_columns[d])
    dt_area, gt_area = dt.fg_areas()[d], gt.fg_areas()[g]
    union = np.where(crowd, dt_area, dt_area + gt_area - inter)
    for k in np.flatnonzero(odd_dt[d] | odd_gt[g]):
        inter[k], plain_union = _intersection_union_literal(dt.runs(d[k]), gt.runs(g[k]))
        union[k] = dt_area[k] if crowd[k] else plain_union
    out[near] = np.where(inter > 0, inter / np.maximum(union, 1), 0.0)
    return out


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
    if not len(dt) or not len(gt):
        return np.zeros((len(dt), len(gt)), dtype=np.float64)
    dt_runs, gt_runs = _runs.parse(list(dt), op), _runs.parse(list(gt), op)
    sizes = np.concatenate([dt_runs.sizes, gt_runs.sizes])
    if (sizes != sizes[0]).any():
        raise ValueError(f"{op}: every RLE must have the same size, got {np.unique(sizes, axis=0).tolist()}")
    d, g = (a.ravel() for a in np.meshgrid(np.arange(len(dt)), np.arange(len(gt)), indexing="ij"))
    return pair_iou(dt_runs, gt_runs, d, g, crowd[g]).reshape(len(dt), len(gt))
