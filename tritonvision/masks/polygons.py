"""COCO polygons to RLE, pixel for pixel pycocotools' ``frPyObjects`` + ``merge``.

pycocotools' rasteriser (``rleFrPoly`` in maskApi.c) works like this:

1. Vertices are scaled by 5 and truncated to ints: ``(int)(5 * v + 0.5)``.
2. Each edge is walked one step per unit of its longer axis (from its lower end on that
   axis), the other coordinate rounded as ``(int)(start + slope * t + 0.5)``.
3. Wherever consecutive points change column u, the column they straddle (back in pixel
   units: ``(min(u, u') + 0.5) / 5 - 0.5``, kept only when an exact integer in [0, w - 1])
   gets a boundary at row ``ceil(clamp((min(v, v') + 0.5) / 5 - 0.5, 0, h))``.
4. The boundaries, as column-major pixel positions, toggle the mask: sorted, positions
   hit an even number of times cancel, and the run lengths are their differences.

Step 3 keeps only the steps from u = 5k + 2 to 5k + 3 (pixel column k), and each edge
takes such a step at most once per k (u is monotone along an edge; consecutive edges
meet at the same point). So instead of walking every point (5 per pixel of perimeter)
this computes those steps directly, with the same float64 expressions so that every
rounding falls the same way: on an edge walked along x the two points are
``t = 5k + 2 - xs`` and ``t + 1``; on one walked along y the step is the first t whose
``(int)(xs + slope * t + 0.5)`` passes 5k + 2, found from the line's equation and
confirmed with that exact expression. Cost: O(boundaries) = O(columns crossed), for a
whole batch in a fixed number of numpy calls.
"""
from __future__ import annotations

from numbers import Real

import numpy as np

from . import _runs
from ._runs import Runs
from ._segments import offsets_of, segment_ids
from .rle import merge_groups

SCALE = 5                   # pycocotools' upsampling factor
MAX_COORDINATE = 4e8        # 5 * v must fit in a C int, as pycocotools computes it


def _edges(x: np.ndarray, y: np.ndarray, offsets: np.ndarray):
    """Every edge (vertex j to j + 1, the last back to 0) oriented as pycocotools walks it:
    (xs, ys, xe, ye, wide, slope, polygon) with xs <= xe when ``wide`` (walked along x,
    |dx| >= |dy|), ys <= ye otherwise; slope of the other coordinate per step."""
    polygon = segment_ids(offsets)
    following = np.arange(len(x)) + 1
    nonempty = np.diff(offsets) > 0
    following[offsets[1:][nonempty] - 1] = offsets[:-1][nonempty]      # closing edge: back to vertex 0
    xs, ys, xe, ye = x, y, x[following], y[following]
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    wide = dx >= dy
    flip = (wide & (xs > xe)) | (~wide & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    steps = np.where(wide, dx, dy)
    rise = np.where(wide, ye - ys, xe - xs).astype(np.float64)
    slope = np.divide(rise, steps, out=np.zeros(len(steps)), where=steps > 0)
    return xs, ys, xe, ye, wide, slope, polygon


def _rounded(base: np.ndarray, slope: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(int)(base + slope * t + 0.5)`` as C evaluates it (float64, truncation)."""
    return np.trunc(base + slope * t + 0.5).astype(np.int64)


def _column_steps(xs, ys, xe, ye, wide, slope, width: np.ndarray):
    """(edge, k, min v) of every step of an edge from u = 5k + 2 to 5k + 3, 0 <= k < width."""
    base_u = xs.astype(np.float64)
    # u at the two ends of the edge (exact: along x it is t + xs; along y the rounded line)
    u_first = np.where(wide, xs, _rounded(base_u, slope, np.zeros(len(xs))))
    u_last = np.where(wide, xe, _rounded(base_u, slope, (ye - ys).astype(np.float64)))
    lo, hi = np.minimum(u_first, u_last), np.maximum(u_first, u_last)
    k_first = np.maximum(-((2 - lo) // SCALE), 0)                     # ceil((lo - 2) / 5)
    count = np.maximum(np.minimum((hi - 3) // SCALE, width - 1) - k_first + 1, 0)
    along_x, along_y = np.flatnonzero(wide & (count > 0)), np.flatnonzero(~wide & (count > 0))
    # along x: the points at u = 5k + 2 and 5k + 3; v is monotone, the lower one is the
    # first unless v falls
    edge, k = _enumerate(along_x, k_first, count)
    t = (SCALE * k + 2 - xs[edge] + (slope[edge] < 0)).astype(np.float64)
    v_x = _rounded(ys[edge].astype(np.float64), slope[edge], t)
    # along y: the first t whose u is past 5k + 2 (rising) or down to 5k + 2 (falling);
    # the step is (t - 1, t) and v = ys + t there, so min v = ys + t - 1
    edge_y, k_y = _enumerate(along_y, k_first, count)
    first_t = _first_step(base_u[edge_y], slope[edge_y], k_y, ye[edge_y] - ys[edge_y])
    v_y = ys[edge_y] + first_t - 1
    return np.concatenate([edge, edge_y]), np.concatenate([k, k_y]), np.concatenate([v_x, v_y])


def _enumerate(edges: np.ndarray, k_first: np.ndarray, count: np.ndarray):
    """(edge, k) for k = k_first .. k_first + count - 1 of each of ``edges``."""
    n = count[edges]
    starts = offsets_of(n)[:-1]
    edge = np.repeat(edges, n)
    return edge, np.arange(int(starts[-1] + n[-1]) if n.size else 0) - np.repeat(starts - k_first[edges], n)


def _first_step(base_u: np.ndarray, slope: np.ndarray, k: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """For edges walked along y (|slope| < 1), the least t in [1, steps] where the rounded u
    has passed column k's step: u >= 5k + 3 when rising, u <= 5k + 2 when falling."""
    rising = slope > 0
    target = np.where(rising, SCALE * k + 3, SCALE * k + 2)

    def passed(t):
        u = _rounded(base_u, slope, t.astype(np.float64))
        return np.where(rising, u >= target, u <= target)

    # the line's equation: base + slope * t + 0.5 reaches target (rising) / target + 1 (falling)
    edge_value = np.where(rising, target - 0.5, target + 0.5) - base_u
    with np.errstate(divide="ignore", invalid="ignore"):
        guess = np.where(rising, np.ceil(edge_value / slope), np.floor(edge_value / slope) + 1)
    guess = np.clip(np.nan_to_num(guess), 1, np.maximum(steps, 1)).astype(np.int64)
    t = np.where(passed(guess - 1) & (guess > 1), guess - 1, np.where(passed(guess), guess, guess + 1))
    if not (passed(t).all() and (~passed(t - 1) | (t == 1)).all()):
        raise AssertionError("masks.polygons: a column step was not where the line's equation puts it")
    return t


def _boundaries(x, y, offsets, heights: np.ndarray, widths: np.ndarray):
    """(polygon, column-major position) of every row boundary of every polygon."""
    xs, ys, xe, ye, wide, slope, polygon = _edges(x, y, offsets)
    edge, k, v = _column_steps(xs, ys, xe, ye, wide, slope, widths[polygon])
    owner = polygon[edge]
    h = heights[owner]
    # ceil(clamp((v + 0.5) / 5 - 0.5, 0, h)) in integers: (v + 0.5) / 5 - 0.5 is (v - 2) / 5,
    # exactly an integer when 5 divides v - 2 and at least 0.2 from one otherwise
    row = np.clip(-((2 - v) // SCALE), 0, h)
    return owner, k * h + row


CHUNK_VERTICES = 1 << 15    # rasterise about this many vertices at a time (arrays stay in cache)


def rasterise(polygons: list[np.ndarray], height, width) -> Runs:
    """One RLE per polygon (each a flat float64 [x0, y0, x1, y1, ...] array); ``height`` and
    ``width`` are ints or one per polygon."""
    n = len(polygons)
    heights = np.broadcast_to(np.asarray(height, dtype=np.int64), (n,))
    widths = np.broadcast_to(np.asarray(width, dtype=np.int64), (n,))
    vertices = np.cumsum([len(p) // 2 for p in polygons])
    bounds = np.unique(np.concatenate([[0], np.searchsorted(vertices, np.arange(CHUNK_VERTICES, vertices[-1]
                                                           if n else 0, CHUNK_VERTICES)), [n]]))
    return Runs.concatenate([_rasterise_chunk(polygons[a:b], heights[a:b], widths[a:b])
                             for a, b in zip(bounds[:-1], bounds[1:])]) if n else _rasterise_chunk([], heights, widths)


def _rasterise_chunk(polygons: list[np.ndarray], heights: np.ndarray, widths: np.ndarray) -> Runs:
    n = len(polygons)
    hw = heights * widths
    vertex_offsets = offsets_of(np.array([len(p) // 2 for p in polygons], dtype=np.int64))
    xy = np.concatenate(polygons).reshape(-1, 2) if n else np.zeros((0, 2))
    x = np.trunc(SCALE * xy[:, 0] + 0.5).astype(np.int64)
    y = np.trunc(SCALE * xy[:, 1] + 0.5).astype(np.int64)
    owner, position = _boundaries(x, y, vertex_offsets, heights, widths)
    # toggles: positions hit an odd number of times, below h * w (the end sentinel's place)
    stride = int(hw.max()) + 1 if n else 1
    keys = np.sort(owner * stride + position)
    first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if keys.size else keys
    hits = np.diff(np.concatenate([first, [keys.size]]))
    keys = keys[first][hits % 2 == 1]
    toggle_owner, toggle_position = keys // stride, keys % stride
    keys = keys[toggle_position < hw[toggle_owner]]
    toggle_owner, toggle_position = keys // stride, keys % stride
    per_polygon = np.bincount(toggle_owner, minlength=n)
    bounds_offsets = offsets_of(per_polygon + 2)
    bounds = np.empty(int(bounds_offsets[-1]), dtype=np.int64)
    bounds[bounds_offsets[:-1]] = 0
    bounds[bounds_offsets[1:] - 1] = hw
    first_toggle = offsets_of(per_polygon)[:-1]
    bounds[bounds_offsets[toggle_owner] + 1 + np.arange(len(keys)) - first_toggle[toggle_owner]] = toggle_position
    diffs = np.diff(bounds)
    keep = np.ones(len(diffs), dtype=bool)
    keep[bounds_offsets[1:-1] - 1] = False
    return Runs(diffs[keep], offsets_of(per_polygon + 1), np.stack([heights, widths], axis=1))


def _check_polygons(polygons, op: str) -> list[np.ndarray]:
    if isinstance(polygons, np.ndarray) and polygons.ndim == 1:
        polygons = [polygons]
    if not isinstance(polygons, (list, tuple)):
        raise TypeError(f"{op}: polygons must be a list of flat [x0, y0, x1, y1, ...] lists, "
                        f"got {type(polygons).__name__}")
    if polygons and isinstance(polygons[0], Real):
        polygons = [polygons]                                          # one flat polygon
    out = []
    for i, poly in enumerate(polygons):
        array = np.asarray(poly, dtype=np.float64) if isinstance(poly, (list, tuple, np.ndarray)) else None
        if array is None or array.ndim != 1:
            raise ValueError(f"{op}: polygon {i} must be a flat list [x0, y0, x1, y1, ...], "
                             f"got {str(poly)[:80]}")
        if len(array) % 2:
            raise ValueError(f"{op}: polygon {i} has an odd number of coordinates ({len(array)}); "
                             f"it must be x, y pairs")
        if not np.isfinite(array).all() or (np.abs(array) > MAX_COORDINATE).any():
            raise ValueError(f"{op}: polygon {i} has a coordinate that is not finite or beyond "
                             f"+-{MAX_COORDINATE:g} pixels")
        out.append(array)
    return out


def from_polygons(polygons, height: int, width: int) -> dict:
    """RLE of the union of COCO polygons, identical to pycocotools'
    ``merge(frPyObjects(polygons, height, width))`` (as ``COCO.annToRLE`` builds it).

    Args:
        polygons: a list of flat ``[x0, y0, x1, y1, ...]`` lists (COCO's ``segmentation``
            field) in pixel coordinates, or one such flat list. Every list is rasterised as a
            polygon, also one of 4 numbers (pycocotools' ``frPyObjects`` would read a list
            whose first polygon has 4 numbers as bounding boxes).
        height, width: the image size.
    Returns:
        ``{"size": [height, width], "counts": bytes}``; no polygon gives an empty mask.
    """
    op = "masks.from_polygons"
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{op}: {name} must be an int >= 0, got {value!r}")
    arrays = _check_polygons(polygons, op)
    runs = rasterise(arrays, int(height), int(width))
    if len(runs) != 1:
        runs = merge_groups(runs, np.zeros(len(runs), dtype=np.int64), 1, intersect=False) if len(runs) \
            else _runs.from_pieces([np.array([height * width])], [[height, width]])
    return _runs.to_dicts(runs)[0]
