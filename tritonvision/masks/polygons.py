"""COCO polygons to RLE, pixel for pixel pycocotools' ``frPyObjects`` + ``merge``.

pycocotools' rasteriser (``rleFrPoly`` in maskApi.c), reproduced operation by operation
in float64 / int64 numpy so that every rounding falls the same way:

1. Vertices are scaled by 5 and truncated to ints: ``(int)(5 * v + 0.5)``.
2. Each edge is walked one step per unit of its longer axis (from its lower end on that
   axis), the other coordinate rounded as ``(int)(start + slope * t + 0.5)``.
3. Wherever consecutive points change column, the column they straddle (back in pixel
   units, only exact integers in [0, w - 1]) gets a boundary at row
   ``ceil(clamp((min(v) + 0.5) / 5 - 0.5, 0, h))``.
4. The boundaries, as column-major pixel positions, toggle the mask: sorted, positions
   hit an even number of times cancel, and the run lengths are their differences.

One call rasterises many polygons at once (all edges and points of the batch in flat
arrays), so the cost is a fixed number of numpy calls plus O(perimeter * 5) work.
"""
from __future__ import annotations

from numbers import Real

import numpy as np

from . import _runs
from ._runs import Runs
from ._segments import local_index, offsets_of, segment_ids
from .rle import merge_groups

SCALE = 5                   # pycocotools' upsampling factor
MAX_COORDINATE = 4e8        # 5 * v must fit in a C int, as pycocotools computes it
INT_MIN = -2 ** 31          # what x86 gives for (int)NaN: a 0-length edge's point (never used)


def _walk_edges(x: np.ndarray, y: np.ndarray, offsets: np.ndarray):
    """Points (u, v) along every edge of the scaled polygons, and the polygon of each point."""
    polygon = segment_ids(offsets)
    following = np.arange(len(x)) + 1
    last = offsets[1:][np.diff(offsets) > 0] - 1
    following[last] = offsets[:-1][np.diff(offsets) > 0]             # closing edge: back to vertex 0
    xs, ys, xe, ye = x, y, x[following], y[following]
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    wide = dx >= dy
    flip = (wide & (xs > xe)) | (~wide & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    steps = np.where(wide, dx, dy)
    degenerate = steps == 0                     # pycocotools divides 0 by 0 here
    rise = np.where(wide, ye - ys, xe - xs).astype(np.float64)
    slope = np.divide(rise, steps, out=np.zeros(len(steps)), where=~degenerate)
    point_offsets = offsets_of(steps + 1)
    edge = segment_ids(point_offsets)
    d = local_index(point_offsets)
    t = np.where(flip[edge], steps[edge] - d, d)
    base = np.where(wide, ys, xs)[edge].astype(np.float64)
    rounded = np.trunc(base + slope[edge] * t + 0.5).astype(np.int64)   # C's (int) cast
    wide_p = wide[edge]
    u = np.where(wide_p, t + xs[edge], rounded)
    v = np.where(wide_p, rounded, t + ys[edge])
    v = np.where(degenerate[edge], INT_MIN, v)
    return u, v, polygon[edge]


def _boundaries(u, v, polygon, h: int, w: int):
    """(polygon, column-major position) of every row boundary of every polygon."""
    same = np.nonzero(polygon[1:] == polygon[:-1])[0] + 1             # point j and j - 1
    uj, up, vj, vp = u[same], u[same - 1], v[same], v[same - 1]
    moved = uj != up
    uj, up, vj, vp, owner = uj[moved], up[moved], vj[moved], vp[moved], polygon[same][moved]
    xd = np.where(uj < up, uj, uj - 1).astype(np.float64)
    xd = (xd + 0.5) / SCALE - 0.5
    column = (np.floor(xd) == xd) & (xd >= 0) & (xd <= w - 1)
    yd = np.minimum(vj, vp).astype(np.float64)
    yd = np.ceil(np.clip((yd + 0.5) / SCALE - 0.5, 0, h))
    return owner[column], xd[column].astype(np.int64) * h + yd[column].astype(np.int64)


def rasterise(polygons: list[np.ndarray], height: int, width: int) -> Runs:
    """One RLE per polygon (each a flat float64 [x0, y0, x1, y1, ...] array), all height x width."""
    n, hw = len(polygons), height * width
    vertex_offsets = offsets_of(np.array([len(p) // 2 for p in polygons], dtype=np.int64))
    xy = np.concatenate(polygons).reshape(-1, 2) if n else np.zeros((0, 2))
    x = np.trunc(SCALE * xy[:, 0] + 0.5).astype(np.int64)
    y = np.trunc(SCALE * xy[:, 1] + 0.5).astype(np.int64)
    owner, position = _boundaries(*_walk_edges(x, y, vertex_offsets), height, width)
    # toggles: positions hit an odd number of times, below h * w (the end sentinel's place)
    keys, hits = np.unique(owner * (hw + 1) + position, return_counts=True)
    keys = keys[(hits % 2 == 1) & (keys % (hw + 1) < hw)]
    toggle_owner, toggle_position = keys // (hw + 1), keys % (hw + 1)
    per_polygon = np.bincount(toggle_owner, minlength=n)
    bounds_offsets = offsets_of(per_polygon + 2)
    bounds = np.empty(int(bounds_offsets[-1]), dtype=np.int64)
    bounds[bounds_offsets[:-1]] = 0
    bounds[bounds_offsets[1:] - 1] = hw
    first = offsets_of(per_polygon)[:-1]
    bounds[bounds_offsets[toggle_owner] + 1 + np.arange(len(keys)) - first[toggle_owner]] = toggle_position
    diffs = np.diff(bounds)
    keep = np.ones(len(diffs), dtype=bool)
    keep[bounds_offsets[1:-1] - 1] = False
    return Runs(diffs[keep], offsets_of(per_polygon + 1), np.tile([height, width], (n, 1)))


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
