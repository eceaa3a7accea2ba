"""Segmented-array helpers: many variable-length int64 arrays kept as one flat array plus offsets.

Every batched mask routine works on this layout, so a batch of RLEs costs a fixed number
of numpy calls instead of a Python loop per RLE.
"""
from __future__ import annotations

import numpy as np


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    """[n + 1] int64 start offsets of segments with the given lengths."""
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def segment_ids(offsets: np.ndarray) -> np.ndarray:
    """For each element of the flat array, the index of its segment."""
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def local_index(offsets: np.ndarray) -> np.ndarray:
    """For each element of the flat array, its index inside its segment."""
    total = int(offsets[-1])
    return np.arange(total, dtype=np.int64) - np.repeat(offsets[:-1], np.diff(offsets))


def segment_cumsum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum restarting at every segment, exact in int64."""
    total = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(values, out=total[1:])
    return total[1:] - np.repeat(total[offsets[:-1]], np.diff(offsets))


def segment_sum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of each segment (0 for empty segments), exact in int64."""
    total = np.zeros(len(values) + 1, dtype=values.dtype)
    np.cumsum(values, out=total[1:])
    return total[offsets[1:]] - total[offsets[:-1]]
