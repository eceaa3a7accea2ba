"""encode, decode, area, to_bbox and merge of COCO RLEs, identical to pycocotools.mask.

Every function takes one RLE dict or a list of them (a list in gives a list or a stacked
array out). All of them are vectorised over the whole batch with numpy.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import _runs
from ._runs import Runs
from ._segments import local_index, offsets_of, segment_cumsum, segment_ids


def _batch(rles, op: str) -> tuple[Runs, bool]:
    """(parsed runs, whether a single RLE was given)."""
    if isinstance(rles, Mapping):
        return _runs.parse([rles], op, single=True), True
    if not isinstance(rles, (list, tuple)):
        raise TypeError(f"{op}: expected an RLE dict or a list of them, got {type(rles).__name__}")
    return _runs.parse(list(rles), op), False


def _as_numpy_masks(masks, op: str) -> np.ndarray:
    if hasattr(masks, "detach"):                                       # a torch tensor
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.dtype != bool and not np.issubdtype(masks.dtype, np.integer):
        raise TypeError(f"{op}: masks must be bool or integer (0 / 1), got {masks.dtype}; "
                        f"threshold soft masks first, e.g. masks > 0.5")
    if masks.ndim not in (2, 3):
        raise ValueError(f"{op}: masks must have shape [H, W] or [N, H, W], got {list(masks.shape)}")
    return masks


def encode(masks):
    """Run-length encode binary masks as COCO RLE (pycocotools' ``mask.encode``).

    Args:
        masks: [H, W] or [N, H, W] numpy array or torch tensor, bool or integer; nonzero
            pixels are foreground. (pycocotools takes a Fortran-ordered uint8 [h, w, n]
            array; here the batch axis comes first, as in the ops: ``np.moveaxis(m, -1, 0)``.)
    Returns:
        One RLE dict ``{"size": [H, W], "counts": bytes}`` for a 2-D mask, a list of N for
        [N, H, W]; ``counts`` is the compressed string, byte for byte pycocotools'.
    """
    op = "masks.encode"
    masks = _as_numpy_masks(masks, op)
    single = masks.ndim == 2
    stack = masks[None] if single else masks
    n, h, w = stack.shape
    # column-major pixel order, each mask a row; a run boundary wherever a pixel differs
    # from the one before it (the pixel before the first counts as 0)
    flat = np.ascontiguousarray((stack != 0).transpose(0, 2, 1)).reshape(n, h * w)
    changed = np.empty_like(flat)
    changed[:, :1] = flat[:, :1]
    np.not_equal(flat[:, 1:], flat[:, :-1], out=changed[:, 1:])
    rows, positions = np.nonzero(changed)
    per_row = np.bincount(rows, minlength=n)
    # per mask: boundaries [0, changes..., h*w]; run lengths are their differences
    bounds_offsets = offsets_of(per_row + 2)
    bounds = np.empty(int(bounds_offsets[-1]), dtype=np.int64)
    bounds[bounds_offsets[:-1]] = 0
    bounds[bounds_offsets[1:] - 1] = h * w
    first_change = offsets_of(per_row)[:-1]
    bounds[bounds_offsets[rows] + 1 + np.arange(len(rows)) - first_change[rows]] = positions
    diffs = np.diff(bounds)
    keep = np.ones(len(diffs), dtype=bool)
    keep[bounds_offsets[1:-1] - 1] = False                             # across two masks
    runs = Runs(diffs[keep], offsets_of(per_row + 1), np.tile([h, w], (n, 1)))
    out = _runs.to_dicts(runs)
    return out[0] if single else out


def decode(rles) -> np.ndarray:
    """Binary masks of RLEs (pycocotools' ``mask.decode``).

    Args:
        rles: one RLE dict, or a list of RLEs of the same size (compressed or uncompressed).
    Returns:
        uint8 numpy array [H, W] for one RLE, [N, H, W] for a list (pycocotools gives
        [h, w, n]; the batch axis comes first here, as in :func:`encode`).
    """
    op = "masks.decode"
    runs, single = _batch(rles, op)
    if len(runs) and (runs.sizes != runs.sizes[0]).any():
        raise ValueError(f"{op}: the RLEs have different sizes ({runs.sizes.tolist()[:4]}...); "
                         f"decode them one at a time to get one mask each")
    h, w = (int(v) for v in runs.sizes[0]) if len(runs) else (0, 0)
    values = (local_index(runs.offsets) % 2).astype(np.uint8)
    flat = np.repeat(values, runs.counts)
    masks = np.ascontiguousarray(flat.reshape(len(runs), w, h).transpose(0, 2, 1))
    return masks[0] if single else masks


def area(rles):
    """Foreground pixels of RLEs (pycocotools' ``mask.area``): an int, or int64 array [N]."""
    runs, single = _batch(rles, "masks.area")
    areas = runs.fg_areas()
    return int(areas[0]) if single else areas


def to_bbox(rles) -> np.ndarray:
    """Bounding boxes [x, y, w, h] of RLEs, float64, as pycocotools' ``mask.toBbox``.

    The box spans the foreground's columns, and its rows -- all of them as soon as one
    1-run continues into the next column; an empty mask gives [0, 0, 0, 0]. Follows
    pycocotools 2.0.11 (which skips 0-length runs) in every case, including RLEs whose
    1-runs all have length 0 (pycocotools then returns [w, h, 1 - w, 1 - h] in uint32).
    Returns [4] for one RLE, [N, 4] for a list.
    """
    runs, single = _batch(rles, "masks.to_bbox")
    boxes = bboxes(runs)
    return boxes[0] if single else boxes


def bboxes(runs: Runs) -> np.ndarray:
    """[n, 4] float64 boxes of parsed runs (see :func:`to_bbox`)."""
    n = len(runs)
    h_all, w_all = runs.sizes[:, 0], runs.sizes[:, 1]
    lengths = np.diff(runs.offsets)
    local = local_index(runs.offsets)
    # pycocotools reads an even number of runs (a trailing 0-run is dropped), then each 1-run
    # of nonzero length from its first pixel to its last
    used = (local < np.repeat(lengths // 2 * 2, lengths)) & (local % 2 == 1) & (runs.counts > 0)
    seg = segment_ids(runs.offsets)[used]
    end = segment_cumsum(runs.counts, runs.offsets)[used]
    first, last = end - runs.counts[used], end - 1
    h = h_all[seg]
    x_first, y_first, x_last, y_last = first // h, first % h, last // h, last % h
    xs, ys = w_all.copy(), h_all.copy()                                # pycocotools' start values
    xe, ye = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    across = np.zeros(n, dtype=bool)                                    # a run spans columns
    if seg.size:                                                        # per RLE: seg is sorted
        start = np.flatnonzero(np.concatenate([[True], seg[1:] != seg[:-1]]))
        owner = seg[start]
        xs[owner] = np.minimum(xs[owner], np.minimum.reduceat(x_first, start))
        xe[owner] = np.maximum.reduceat(x_last, start)
        ys[owner] = np.minimum(ys[owner], np.minimum.reduceat(y_first, start))
        ye[owner] = np.maximum.reduceat(y_last, start)
        across[owner] = np.logical_or.reduceat(x_first < x_last, start)
    ys = np.where(across, 0, ys)
    ye = np.where(across, h_all - 1, ye)
    boxes = np.stack([xs, ys, (xe - xs + 1) % 2**32, (ye - ys + 1) % 2**32], axis=1).astype(np.float64)
    boxes[lengths < 2] = 0
    return boxes


def _fg_intervals(runs: Runs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(segment, start, end) of every 1-run of every RLE, by segment then position."""
    ends = segment_cumsum(runs.counts, runs.offsets)
    odd = np.nonzero(local_index(runs.offsets) % 2 == 1)[0]
    return segment_ids(runs.offsets)[odd], ends[odd] - runs.counts[odd], ends[odd]


def merge_groups(runs: Runs, group: np.ndarray, n_groups: int, intersect: bool) -> Runs:
    """Union (or intersection) of the RLEs of each group (the RLEs of a group share one size;
    groups may differ), normalised: no 0-length run except a leading one. Equal to
    pycocotools' ``merge`` of the group when no RLE has a 0-length run after its first
    (see :func:`merge`). Every group needs at least one RLE."""
    group_size = np.zeros((n_groups, 2), dtype=np.int64)
    group_size[group] = runs.sizes
    group_hw = group_size[:, 0] * group_size[:, 1]
    stride = int(group_hw.max()) + 1 if n_groups else 1
    seg, start, end = _fg_intervals(runs)
    keys = np.concatenate([group[seg] * stride + start, group[seg] * stride + end])
    delta = np.concatenate([np.ones(len(start), np.int64), -np.ones(len(end), np.int64)])
    order = np.argsort(keys, kind="stable")
    keys, delta = keys[order], delta[order]
    first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if keys.size else keys
    unique = keys[first]
    change = np.add.reduceat(delta, first) if keys.size else delta
    owner = unique // stride
    owner_offsets = offsets_of(np.bincount(owner, minlength=n_groups))
    coverage = segment_cumsum(change, owner_offsets)
    members = np.bincount(group, minlength=n_groups)
    inside = coverage == members[owner] if intersect else coverage > 0
    before = np.concatenate([[False], inside[:-1]])
    before[owner_offsets[:-1][owner_offsets[:-1] < len(unique)]] = False
    position = unique % stride
    toggle = (inside != before) & (position < group_hw[owner])
    toggles_owner = owner[toggle]
    per_group = np.bincount(toggles_owner, minlength=n_groups)
    bounds_offsets = offsets_of(per_group + 2)
    bounds = np.empty(int(bounds_offsets[-1]), dtype=np.int64)
    bounds[bounds_offsets[:-1]] = 0
    bounds[bounds_offsets[1:] - 1] = group_hw
    first_toggle = offsets_of(per_group)[:-1]
    bounds[bounds_offsets[toggles_owner] + 1 + np.arange(len(toggles_owner)) - first_toggle[toggles_owner]] = \
        position[toggle]
    diffs = np.diff(bounds)
    keep = np.ones(len(diffs), dtype=bool)
    keep[bounds_offsets[1:-1] - 1] = False
    return Runs(diffs[keep], offsets_of(per_group + 1), group_size)


def _merge_two_literal(a: np.ndarray, b: np.ndarray, intersect: bool) -> np.ndarray:
    """pycocotools' rleMerge loop for two RLEs, step for step: only used when an input has
    a 0-length run after its first, where pycocotools keeps 0-length runs in its output
    (and stops early when both inputs reach a 0-length run together)."""
    out, ca, cb, va, vb, v, ia, ib, cc, ct = [], int(a[0]), int(b[0]), 0, 0, 0, 1, 1, 0, 1
    while ct > 0:
        c = min(ca, cb)
        cc += c
        ca -= c
        if not ca and ia < len(a):
            ca, va, ia = int(a[ia]), 1 - va, ia + 1
        cb -= c
        if not cb and ib < len(b):
            cb, vb, ib = int(b[ib]), 1 - vb, ib + 1
        ct = ca + cb
        previous, v = v, (va and vb) if intersect else (va or vb)
        if v != previous or ct == 0:
            out.append(cc)
            cc = 0
    return np.array(out, dtype=np.int64)


def merge(rles, intersect: bool = False) -> dict:
    """Union (or intersection) of RLEs of one size, as pycocotools' ``mask.merge``.

    Args:
        rles: a non-empty list of RLE dicts of the same size.
        intersect: False for the union, True for the intersection.
    Returns:
        One RLE dict with compressed counts; a single RLE comes back unchanged (re-encoded).
    """
    op = "masks.merge"
    if isinstance(rles, Mapping) or not isinstance(rles, (list, tuple)):
        raise TypeError(f"{op}: expected a list of RLE dicts, got {type(rles).__name__}")
    if not rles:
        raise ValueError(f"{op}: needs at least one RLE (pycocotools returns a 0 x 0 mask here)")
    runs = _runs.parse(list(rles), op)
    if (runs.sizes != runs.sizes[0]).any():
        raise ValueError(f"{op}: all RLEs must have the same size, got {runs.sizes.tolist()}")
    if len(runs) == 1:
        return _runs.to_dicts(runs)[0]
    if ((runs.counts == 0) & (local_index(runs.offsets) > 0)).any():
        merged, hw = runs.runs(0), int(runs.sizes[0].prod())
        for i in range(1, len(runs)):
            if merged.sum() != hw:
                raise ValueError(f"{op}: RLEs 0..{i - 1} have 0-length runs that stop pycocotools' "
                                 f"merge early (its counts sum to {int(merged.sum())}, not {hw}); "
                                 f"merging one more would loop forever there. Drop the 0-length runs")
            merged = _merge_two_literal(merged, runs.runs(i), intersect)
        out = _runs.from_pieces([merged], runs.sizes[:1])
    else:
        out = merge_groups(runs, np.zeros(len(runs), dtype=np.int64), 1, intersect)
    return _runs.to_dicts(out)[0]
