"""A batch of RLEs as one segmented array, and reading / writing COCO's RLE dicts.

An RLE is COCO's ``{"size": [h, w], "counts": ...}``: run lengths of an [h, w] binary
mask read in column-major (Fortran) order, alternating 0-runs and 1-runs and starting
with a 0-run (of length 0 when the first pixel is set). ``counts`` is either the
compressed string (bytes, or str as read from JSON) or the plain list of run lengths
("uncompressed", as COCO stores crowd regions).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral

import numpy as np

from . import _counts_string
from ._segments import local_index, offsets_of, segment_sum


@dataclass
class Runs:
    """n RLEs: run lengths ``counts`` (flat int64), ``offsets`` [n + 1], ``sizes`` [n, 2] (h, w)."""
    counts: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.sizes)

    def runs(self, i: int) -> np.ndarray:
        return self.counts[self.offsets[i]:self.offsets[i + 1]]

    def fg_areas(self) -> np.ndarray:
        """[n] int64: pixels in the 1-runs (odd positions) of each RLE."""
        odd = local_index(self.offsets) % 2 == 1
        return segment_sum(np.where(odd, self.counts, 0), self.offsets)


def _size(rle: Mapping, i: int) -> tuple[int, int]:
    size = rle["size"]
    if not (isinstance(size, (list, tuple, np.ndarray)) and len(size) == 2
            and all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 0 for v in size)):
        raise _Invalid(ValueError, i, f"'size' is {size!r}; it must be [height, width], two ints >= 0")
    return int(size[0]), int(size[1])


def parse(rles: list, op: str, single: bool = False) -> Runs:
    """Read and check a list of RLE dicts (compressed or uncompressed counts).

    Raises ValueError naming the RLE (its position in ``rles``, unless ``single``) and
    what is wrong.
    """
    try:
        return _parse(rles)
    except _Invalid as error:
        where = "RLE" if single else f"RLE {error.index}"
        raise error.kind(f"{op}: {where}: {error.reason}") from None


class _Invalid(Exception):
    def __init__(self, kind: type, index: int, reason: str):
        super().__init__(reason)
        self.kind, self.index, self.reason = kind, index, reason


def _sizes(rles: list) -> np.ndarray:
    """[n, 2] int64 sizes, checked in one go (one by one only to name a bad one)."""
    sizes = np.asarray([rle["size"] for rle in rles]) if rles else np.zeros((0, 2), dtype=np.int64)
    if sizes.shape == (len(rles), 2) and sizes.dtype.kind in "iu" and (sizes >= 0).all():
        return sizes.astype(np.int64)
    for i, rle in enumerate(rles):
        _size(rle, i)
    raise AssertionError("unreachable: some size is invalid")


def _parse(rles: list) -> Runs:
    for i, rle in enumerate(rles):
        if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
            raise _Invalid(TypeError, i, f"must be a dict with 'size' [h, w] and 'counts', "
                                         f"got {type(rle).__name__}")
    sizes = _sizes(rles)
    lists, strings, where = [], [], []
    for i, rle in enumerate(rles):
        counts = rle["counts"]
        if type(counts) is str:
            counts = counts.encode("ascii", errors="replace")
        if type(counts) is bytes:
            strings.append(counts)
            where.append(("s", len(strings) - 1))
        elif isinstance(counts, (list, tuple, np.ndarray)):
            array = np.asarray(counts)
            if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
                raise _Invalid(ValueError, i, "'counts' is neither a flat list of ints "
                                              "(uncompressed) nor a string (compressed)")
            lists.append(array.astype(np.int64))
            where.append(("l", len(lists) - 1))
        else:
            raise _Invalid(TypeError, i, f"'counts' is a {type(counts).__name__}; expected a "
                                         f"compressed string (bytes or str) or a list of run lengths")
    try:
        decoded, decoded_offsets = _counts_string.from_strings(strings)
    except _counts_string.CountsStringError as error:      # name the RLE by its place in rles
        owner = [i for i, (kind, _) in enumerate(where) if kind == "s"][error.index]
        raise _Invalid(ValueError, owner, error.reason) from None
    if not lists:                                       # all compressed: already in order
        runs = Runs(decoded, decoded_offsets, sizes)
    else:
        pieces = [decoded[decoded_offsets[j]:decoded_offsets[j + 1]] if kind == "s" else lists[j]
                  for kind, j in where]
        runs = from_pieces(pieces, sizes)
    _check(runs)
    return runs


def _check(runs: Runs) -> None:
    negative = np.nonzero(runs.counts < 0)[0]
    if len(negative):
        i = int(np.searchsorted(runs.offsets, negative[0], side="right") - 1)
        raise _Invalid(ValueError, i, f"run length {int(runs.counts[negative[0]])} at index "
                                      f"{int(negative[0] - runs.offsets[i])} is negative (corrupt counts)")
    totals = segment_sum(runs.counts, runs.offsets)
    expected = runs.sizes[:, 0] * runs.sizes[:, 1]
    wrong = np.nonzero(totals != expected)[0]
    if len(wrong):
        i = int(wrong[0])
        h, w = (int(v) for v in runs.sizes[i])
        raise _Invalid(ValueError, i, f"run lengths sum to {int(totals[i])}, expected "
                                      f"height * width = {h} * {w} = {h * w}")


def to_dicts(runs: Runs) -> list[dict]:
    """COCO RLE dicts with compressed ``counts`` (bytes, as pycocotools returns them)."""
    strings = _counts_string.to_strings(runs.counts, runs.offsets)
    return [{"size": [int(h), int(w)], "counts": s} for (h, w), s in zip(runs.sizes, strings)]


def from_pieces(pieces: list[np.ndarray], sizes: np.ndarray) -> Runs:
    """Runs from a list of per-RLE run-length arrays."""
    counts = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, dtype=np.int64)
    return Runs(counts, offsets_of(np.array([len(p) for p in pieces], dtype=np.int64)),
                np.asarray(sizes, dtype=np.int64).reshape(-1, 2))
