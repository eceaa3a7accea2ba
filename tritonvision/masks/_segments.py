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


def segment_sum_reduceat(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sum of ``values[starts[i]:starts[i + 1]]`` for each i (``starts`` [n + 1]
    non-decreasing, ending at ``len(values)``; 0 for empty segments). One ``reduceat``:
    no running sum, works on strided views."""
    out = np.zeros(len(starts) - 1, dtype=values.dtype)
    nonempty = np.flatnonzero(starts[:-1] < starts[1:])
    if nonempty.size:
        out[nonempty] = np.add.reduceat(values, starts[nonempty])
    return out


def parity_sums(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per segment: (sum at local positions 0, 2, 4, ..., sum at 1, 3, 5, ...)."""
    at_even = segment_sum_reduceat(values[0::2], (offsets + 1) // 2)    # global positions 0, 2, ...
    at_odd = segment_sum_reduceat(values[1::2], offsets // 2)            # global positions 1, 3, ...
    starts_even = offsets[:-1] % 2 == 0
    return np.where(starts_even, at_even, at_odd), np.where(starts_even, at_odd, at_even)
