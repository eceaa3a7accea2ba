"""COCO's compressed RLE ``counts`` string, as pycocotools' ``rleToString`` / ``rleFrString``.

Each run length is written as a signed number in 5-bit groups, least significant first,
one character (ASCII 48 + group) per group, with bit 0x20 set on every character but a
number's last; bit 0x10 of the last character is the sign. From the fourth run on, the
number written is the difference with the run two places before (a quirk kept for
byte-identical strings: pycocotools starts the differences at index 3, not 2).

Both directions work on a whole batch at once (a segmented layout, see _segments.py).
"""
from __future__ import annotations

import numpy as np

from ._segments import local_index, offsets_of, segment_sum, segment_sum_reduceat

FIRST_CHAR, LAST_CHAR = 48, 111        # '0' .. 'o': 6 bits per character
MAX_GROUPS = 12                        # 60 bits: far beyond any image (counts are uint32 in COCO)


class CountsStringError(ValueError):
    """A malformed compressed string: ``index`` is its position in the batch."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"RLE {index}: {reason}")
        self.index, self.reason = index, reason


def _differences(counts: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """counts[i] - counts[i - 2] for i >= 3 inside each segment, counts[i] otherwise."""
    local = local_index(offsets)
    out = counts.copy()
    later = np.nonzero(local > 2)[0]
    out[later] -= counts[later - 2]
    return out


def to_strings(counts: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    """Compressed strings of the RLEs whose run lengths are ``counts[offsets[i]:offsets[i+1]]``."""
    x = _differences(counts.astype(np.int64), offsets)
    # group k of every number, and whether the number needs more groups after it
    groups, lengths = [], np.zeros(len(x), dtype=np.int64)
    done = np.zeros(len(x), dtype=bool)
    rest = x
    for _ in range(MAX_GROUPS):
        char = rest & 0x1F
        rest = rest >> 5
        more = np.where((char & 0x10) != 0, rest != -1, rest != 0)
        groups.append(np.where(more, char | 0x20, char) + FIRST_CHAR)
        lengths += ~done
        done |= ~more
        if done.all():
            break
    chars = np.stack(groups, axis=1) if groups else np.zeros((0, 1), dtype=np.int64)
    used = np.arange(chars.shape[1])[None, :] < lengths[:, None]
    flat = chars[used].astype(np.uint8).tobytes()                     # row-major: number by number
    char_offsets = offsets_of(segment_sum(lengths, offsets))
    return [flat[char_offsets[i]:char_offsets[i + 1]] for i in range(len(offsets) - 1)]


def _value_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per byte: the signed value of a number's last character (5 bits, bit 0x10 the sign;
    int16: numpy's table lookup is faster on narrow values), and the 5-bit payload of any
    character (int64, shifted into place)."""
    last_value, payload = np.zeros(256, dtype=np.int64), np.zeros(256, dtype=np.int64)
    for byte in range(FIRST_CHAR, LAST_CHAR + 1):
        c = byte - FIRST_CHAR
        payload[byte] = c & 0x1F
        last_value[byte] = (c & 0x1F) - 32 if c & 0x10 else c & 0x1F
    return last_value.astype(np.int16), payload


_LAST_VALUE, _PAYLOAD = _value_tables()
CONTINUES = FIRST_CHAR + 0x20          # bytes from here on carry the continuation bit


def from_strings(strings: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Run lengths (flat int64) and segment offsets of compressed strings.

    Raises CountsStringError (a ValueError) naming the string (by position in the batch) and
    what is wrong: a character outside '0'..'o', a number cut off at the end, a number too long.
    """
    string_offsets = offsets_of(np.array([len(s) for s in strings], dtype=np.int64))
    return from_buffer(np.frombuffer(b"".join(strings), dtype=np.uint8), string_offsets)


def from_buffer(buffer: np.ndarray, string_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`from_strings` of strings laid end to end: ``buffer`` uint8 [C], string i is
    ``buffer[string_offsets[i]:string_offsets[i + 1]]``. Returns (run lengths int64, offsets)."""
    values, number_offsets = written_numbers(buffer, string_offsets)
    return undo_differences(values, number_offsets), number_offsets


def written_numbers(buffer: np.ndarray, string_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The numbers the strings hold (int64; from the fourth on, differences with the run two
    places before) and their offsets per string; checks the characters."""
    _check_characters(buffer, string_offsets)
    last = buffer < CONTINUES                                          # a number ends here
    _check_ends(last, string_offsets)
    values = np.take(_LAST_VALUE, buffer[last]).astype(np.int64)
    continuation = np.flatnonzero(~last)
    # numbers before each string start: its characters minus the continuation characters
    number_offsets = string_offsets - np.searchsorted(continuation, string_offsets)
    if continuation.size:
        _add_continuations(values, buffer, continuation, string_offsets)
    return values, number_offsets


def chain_sums(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per segment, from the written numbers without undoing the differences: (the sum of
    the run lengths at positions 1, 3, 5, ... -- a mask's foreground --, the sum of all).

    Along a chain (positions 1, 3, ... or 2, 4, ...) run j is the sum of the chain's first
    j + 1 numbers, so the chain's K runs sum to sum_j (K - j) * number_j: per parity view
    of the flat array, one plain and one index-weighted segment sum."""
    lengths = np.diff(offsets)
    sums, weighted = [], []
    for parity, first_in_view in ((0, (offsets + 1) // 2), (1, offsets // 2)):
        view = values[parity::2]
        sums.append(segment_sum_reduceat(view, first_in_view))
        weighted.append(segment_sum_reduceat(view * np.arange(view.size), first_in_view))
    starts_even = offsets[:-1] % 2 == 0
    own, other = np.where(starts_even, 0, 1), np.where(starts_even, 1, 0)     # view of positions 0 / 1
    pick = lambda arrays, view: np.where(view == 0, arrays[0], arrays[1])
    # positions 1, 3, ...: K = L // 2 numbers from view index q0
    k_odd = lengths // 2
    q0_odd = (offsets[:-1] + 1) // 2
    fg = (k_odd + q0_odd) * pick(sums, other) - pick(weighted, other)
    # positions 2, 4, ...: the view of position 0 without position 0 itself
    head = np.where(lengths > 0, values[np.minimum(offsets[:-1], max(values.size - 1, 0))] if values.size else 0, 0)
    q_head = offsets[:-1] // 2
    k_even = np.maximum(lengths - 1, 0) // 2
    even_sum = pick(sums, own) - head
    even_weighted = pick(weighted, own) - head * q_head
    background = (k_even + q_head + 1) * even_sum - even_weighted
    return fg, fg + background + head


def _check_characters(buffer: np.ndarray, string_offsets: np.ndarray) -> None:
    if buffer.size == 0 or (buffer.min() >= FIRST_CHAR and buffer.max() <= LAST_CHAR):
        return
    bad = int(np.flatnonzero((buffer < FIRST_CHAR) | (buffer > LAST_CHAR))[0])
    which = int(np.searchsorted(string_offsets, bad, side="right") - 1)
    raise CountsStringError(which, f"compressed counts has character {chr(buffer[bad])!r} at position "
                                   f"{bad - int(string_offsets[which])}, outside '0'..'o' (not a COCO "
                                   f"compressed RLE string)")


def _check_ends(last: np.ndarray, string_offsets: np.ndarray) -> None:
    nonempty = np.flatnonzero(np.diff(string_offsets))
    cut = nonempty[~last[string_offsets[nonempty + 1] - 1]]
    if len(cut):
        raise CountsStringError(int(cut[0]), "compressed counts ends in the middle of a number (its "
                                "last character has the continuation bit 0x20): the string is truncated")


def _add_continuations(values: np.ndarray, buffer: np.ndarray, continuation: np.ndarray,
                       string_offsets: np.ndarray) -> None:
    """Finish the numbers written in more than one character, in place: ``values`` holds
    each number's last-character value; ``continuation`` the positions of the others."""
    number = continuation - np.arange(continuation.size)              # the number each belongs to
    first = np.flatnonzero(np.concatenate([[True], number[1:] != number[:-1]]))
    more = np.diff(np.concatenate([first, [continuation.size]]))      # continuation characters
    too_long = np.flatnonzero(more >= MAX_GROUPS)
    if too_long.size:
        at = continuation[first[too_long[0]]]
        which = int(np.searchsorted(string_offsets, at, side="right") - 1)
        raise CountsStringError(which, f"compressed counts has a number of {int(more[too_long[0]]) + 1} "
                                       f"characters (at most {MAX_GROUPS}): the string is corrupt")
    group = np.arange(continuation.size) - np.repeat(first, more)
    parts = _PAYLOAD[buffer[continuation]] << (5 * group)
    target = number[first]
    values[target] = (values[target] << (5 * more)) + np.add.reduceat(parts, first)


def undo_differences(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Run lengths from the written numbers: ``counts[i] = values[i] + counts[i - 2]`` for
    i >= 3 within each segment, ``values[i]`` below.

    Each parity of the flat array (``values[p::2]``) is a chain of running sums: per
    segment, position 0 alone, then positions 2, 4, ... in one view and 1, 3, ... in the
    other. Per view: each chain's first value less the sum of the chain before it, then
    one cumulative sum."""
    lengths = np.diff(offsets)
    starts_even = offsets[:-1] % 2 == 0
    head = np.minimum(lengths, 1)                                      # position 0
    evens, odds = (lengths + 1) // 2 - head, lengths // 2              # 2, 4, ... and 1, 3, ...
    counts = np.empty_like(values)
    for parity in (0, 1):
        mine = starts_even == (parity == 0)                            # segments starting in this view
        # chains of this view, two slots per segment: (head, evens) or (odds, none)
        chains = np.stack([np.where(mine, head, odds), np.where(mine, evens, 0)], axis=1).ravel()
        chains = chains[chains > 0]
        view = np.ascontiguousarray(values[parity::2])
        if chains.size > 1:
            chain_start = offsets_of(chains)[:-1]
            view[chain_start[1:]] -= np.add.reduceat(view, chain_start)[:-1]
        counts[parity::2] = np.cumsum(view)
    return counts
