"""Rasterising COCO ``segmentation`` fields (polygons, RLE) without pycocotools."""
from __future__ import annotations

import numpy as np


def polygon_mask(polygons, height: int, width: int) -> np.ndarray:
    """Bool [H, W]: pixels whose centre (c + 0.5, r + 0.5) lies inside any polygon.

    ``polygons`` is COCO's list of flat ``[x0, y0, x1, y1, ...]`` lists in pixel-edge
    coordinates. Even-odd rule per polygon, union over polygons; a centre exactly on a
    crossing counts as outside (half-open, like most scanline fills). Vectorised scanline:
    each edge's crossing with every row of pixel centres toggles the pixels right of it.
    """
    out = np.zeros((height, width), dtype=bool)
    centres_y = np.arange(height, dtype=np.float64) + 0.5
    for poly in polygons:
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(pts) < 3:
            continue
        x0, y0 = pts[:, 0], pts[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        # [R, E]: does edge e cross the row of centres r (half-open in y)?
        crosses = (y0[None, :] > centres_y[:, None]) != (y1[None, :] > centres_y[:, None])
        rows, edges = np.nonzero(crosses)
        if rows.size == 0:
            continue
        t = (centres_y[rows] - y0[edges]) / (y1[edges] - y0[edges])
        x = x0[edges] + t * (x1[edges] - x0[edges])
        # pixel c is right of the crossing when c + 0.5 > x, i.e. c >= floor(x - 0.5) + 1
        cols = np.clip(np.floor(x - 0.5).astype(np.int64) + 1, 0, width)
        toggles = np.zeros((height, width + 1), dtype=np.int32)
        np.add.at(toggles, (rows, cols), 1)
        out |= (np.cumsum(toggles, axis=1)[:, :width] % 2) == 1
    return out


def rle_counts_from_string(s: str) -> "list[int]":
    """Decode COCO's compressed RLE string (pycocotools' ``rleFrString``) into run lengths."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_mask(rle: dict, height: int, width: int) -> np.ndarray:
    """Bool [H, W] from a COCO RLE dict (``counts`` list or compressed string, ``size``
    [h, w]); runs alternate 0/1 starting with 0, in column-major (Fortran) order."""
    counts = rle["counts"]
    if isinstance(counts, (bytes, str)):
        counts = rle_counts_from_string(counts.decode() if isinstance(counts, bytes) else counts)
    counts = np.asarray(counts, dtype=np.int64)
    h, w = (int(v) for v in rle.get("size", (height, width)))
    if (counts < 0).any() or counts.sum() != h * w:
        raise ValueError(f"RLE run lengths sum to {int(counts.sum())}, expected h * w = {h * w}")
    flat = np.repeat((np.arange(len(counts)) % 2).astype(bool), counts)
    mask = flat.reshape(w, h).T
    if (h, w) != (height, width):
        raise ValueError(f"RLE size {h}x{w} does not match the image {height}x{width}")
    return mask


def segmentation_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Bool [H, W] of a COCO ``segmentation`` field: polygon list or RLE dict."""
    if isinstance(segmentation, dict):
        return rle_mask(segmentation, height, width)
    if isinstance(segmentation, list):
        return polygon_mask(segmentation, height, width)
    raise ValueError(f"segmentation must be a list of polygons or an RLE dict, got "
                     f"{type(segmentation).__name__}")
