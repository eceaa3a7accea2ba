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
from ._segments import offsets_of, parity_sums
from ._threads import thread_map


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

    def slice(self, start: int, stop: int) -> "Runs":
        """RLEs start..stop - 1 (views, no copy)."""
        first, last = self.offsets[start], self.offsets[stop]
        return Runs(self.counts[first:last], self.offsets[start:stop + 1] - first, self.sizes[start:stop])

    def fg_areas(self) -> np.ndarray:
        """[n] int64: pixels in the 1-runs (odd positions) of each RLE."""
        return parity_sums(self.counts, self.offsets)[1]

    def take(self, index: np.ndarray) -> "Runs":
        """The RLEs ``index`` (int array), in that order."""
        index = np.asarray(index, dtype=np.int64)
        lengths = np.diff(self.offsets)[index]
        offsets = offsets_of(lengths)
        flat = np.arange(int(offsets[-1])) - np.repeat(offsets[:-1] - self.offsets[index], lengths)
        return Runs(self.counts[flat], offsets, self.sizes[index])

    @staticmethod
    def concatenate(parts: list["Runs"]) -> "Runs":
        """The RLEs of every part, one after the other."""
        if not parts:
            return Runs(np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros((0, 2), dtype=np.int64))
        lengths = np.concatenate([np.diff(p.offsets) for p in parts])
        return Runs(np.concatenate([p.counts for p in parts]).astype(np.int64, copy=False), offsets_of(lengths),
                    np.concatenate([p.sizes for p in parts]).reshape(-1, 2).astype(np.int64, copy=False))


@dataclass
class CompressedRuns:
    """n RLEs kept as their compressed ``counts`` strings laid end to end and decoded on
    demand (most detections of a COCO result file are never compared pixel-wise):
    ``chars`` uint8 [C], string i is ``chars[offsets[i]:offsets[i + 1]]``; ``sizes`` [n, 2].

    Malformed strings raise ``CountsStringError`` (a ValueError) whose ``index`` is the RLE's
    position in this batch."""
    chars: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray

    CHUNK_CHARS = 1 << 22      # decode about 4 MB of strings at a time (arrays stay in cache)

    def __len__(self) -> int:
        return len(self.sizes)

    def runs(self, index: np.ndarray) -> Runs:
        """The RLEs ``index`` (int array) decoded and checked, in that order."""
        index = np.asarray(index, dtype=np.int64)
        lengths = np.diff(self.offsets)[index]
        return Runs.concatenate(thread_map(lambda part: self._decode_gathered(index[part], lengths[part]),
                                           self._chunks(lengths)))

    def fg_areas(self) -> np.ndarray:
        """[n] int64 foreground pixels of every RLE, decoded chunk by chunk without undoing
        the differences (see ``_counts_string.chain_sums``). Checks every string's characters
        and that its runs sum to h * w; negative runs are caught by :meth:`runs` only."""
        areas = np.zeros(len(self), dtype=np.int64)

        def decode(part: slice) -> None:
            first, last = self.offsets[part.start], self.offsets[part.stop]
            try:
                numbers, offsets = _counts_string.written_numbers(
                    self.chars[first:last], self.offsets[part.start:part.stop + 1] - first)
            except _counts_string.CountsStringError as error:
                raise _counts_string.CountsStringError(part.start + error.index, error.reason) from None
            areas[part], totals = _counts_string.chain_sums(numbers, offsets)
            _check_totals(totals, self.sizes[part], part.start)
        thread_map(decode, self._chunks(np.diff(self.offsets)))
        return areas

    def _chunks(self, lengths: np.ndarray) -> list[slice]:
        """Consecutive slices of ``lengths`` of about CHUNK_CHARS characters each."""
        ends = np.searchsorted(np.cumsum(lengths), np.arange(1, 1 + int(lengths.sum()) // self.CHUNK_CHARS)
                               * self.CHUNK_CHARS)
        bounds = np.unique(np.concatenate([[0], ends + 1, [len(lengths)]]).clip(0, len(lengths)))
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

    def _decode_gathered(self, index: np.ndarray, lengths: np.ndarray) -> Runs:
        offsets = offsets_of(lengths)
        flat = np.arange(int(offsets[-1])) - np.repeat(offsets[:-1] - self.offsets[index], lengths)
        return self._decode(self.chars[flat], offsets, index)

    def _decode(self, chars: np.ndarray, offsets: np.ndarray, index: np.ndarray) -> Runs:
        try:
            runs = Runs(*_counts_string.from_buffer(chars, offsets), self.sizes[index])
            _check(runs)
        except (_counts_string.CountsStringError, _Invalid) as error:
            raise _counts_string.CountsStringError(int(index[error.index]), error.reason) from None
        return runs


def _size(rle: Mapping, i: int) -> tuple[int, int]:
    size = rle["size"]
    if not (isinstance(size, (list, tuple, np.ndarray)) and len(size) == 2
            and all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 0 for v in size)):
        raise _Invalid(ValueError, i, f"'size' is {size!r}; it must be [height, width], two ints >= 0")
    return int(size[0]), int(size[1])


def parse(rles: list, op: str, single: bool = False) -> Runs:
    """Read and check a list of RLE dicts (compressed or uncompressed counts).

    Raises ValueError (or TypeError) naming the RLE (its position in ``rles``, unless
    ``single``) and what is wrong; the error's ``index`` and ``reason`` hold both.
    """
    try:
        return _parse(rles)
    except _Invalid as error:
        where = "RLE" if single else f"RLE {error.index}"
        raised = error.kind(f"{op}: {where}: {error.reason}")
        raised.index, raised.reason = error.index, error.reason
        raise raised from None


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
    if runs.counts.size and runs.counts.min() < 0:
        first = int(np.flatnonzero(runs.counts < 0)[0])
        i = int(np.searchsorted(runs.offsets, first, side="right") - 1)
        raise _Invalid(ValueError, i, f"run length {int(runs.counts[first])} at index "
                                      f"{first - int(runs.offsets[i])} is negative (corrupt counts)")
    try:
        _check_totals(sum(parity_sums(runs.counts, runs.offsets)), runs.sizes, 0)
    except _counts_string.CountsStringError as error:
        raise _Invalid(ValueError, error.index, error.reason) from None


def _check_totals(totals: np.ndarray, sizes: np.ndarray, first_index: int) -> None:
    wrong = np.flatnonzero(totals != sizes[:, 0] * sizes[:, 1])
    if len(wrong):
        i = int(wrong[0])
        h, w = (int(v) for v in sizes[i])
        raise _counts_string.CountsStringError(first_index + i, f"run lengths sum to {int(totals[i])}, "
                                                                f"expected height * width = {h} * {w} = {h * w}")


def to_dicts(runs: Runs) -> list[dict]:
    """COCO RLE dicts with compressed ``counts`` (bytes, as pycocotools returns them)."""
    strings = _counts_string.to_strings(runs.counts, runs.offsets)
    return [{"size": [int(h), int(w)], "counts": s} for (h, w), s in zip(runs.sizes, strings)]


def from_pieces(pieces: list[np.ndarray], sizes: np.ndarray) -> Runs:
    """Runs from a list of per-RLE run-length arrays."""
    counts = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, dtype=np.int64)
    return Runs(counts, offsets_of(np.array([len(p) for p in pieces], dtype=np.int64)),
                np.asarray(sizes, dtype=np.int64).reshape(-1, 2))
