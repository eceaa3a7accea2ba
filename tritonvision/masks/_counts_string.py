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

from ._segments import local_index, offsets_of, segment_cumsum, segment_ids, segment_sum

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


def from_strings(strings: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Run lengths (flat int64) and segment offsets of compressed strings.

    Raises CountsStringError (a ValueError) naming the string (by position in the batch) and
    what is wrong: a character outside '0'..'o', a number cut off at the end, a number too long.
    """
    string_offsets = offsets_of(np.array([len(s) for s in strings], dtype=np.int64))
    buf = np.frombuffer(b"".join(strings), dtype=np.uint8).astype(np.int64)
    bad = np.nonzero((buf < FIRST_CHAR) | (buf > LAST_CHAR))[0]
    if len(bad):
        which = int(np.searchsorted(string_offsets, bad[0], side="right") - 1)
        pos = int(bad[0] - string_offsets[which])
        raise CountsStringError(which, f"compressed counts has character {chr(buf[bad[0]])!r} at "
                                       f"position {pos}, outside '0'..'o' (not a COCO compressed RLE string)")
    c = buf - FIRST_CHAR
    last = (c & 0x20) == 0                                            # a number ends here
    nonempty = np.nonzero(np.diff(string_offsets))[0]
    cut = nonempty[~last[string_offsets[nonempty + 1] - 1]]
    if len(cut):
        raise CountsStringError(int(cut[0]), "compressed counts ends in the middle of a number (its "
                                "last character has the continuation bit 0x20): the string is truncated")
    ends = np.nonzero(last)[0]
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    n_groups = ends - starts + 1
    too_long = np.nonzero(n_groups > MAX_GROUPS)[0]
    if len(too_long):
        which = int(np.searchsorted(string_offsets, starts[too_long[0]], side="right") - 1)
        raise CountsStringError(which, f"compressed counts has a number of {int(n_groups[too_long[0]])} "
                                       f"characters (at most {MAX_GROUPS}): the string is corrupt")
    shift = 5 * local_index(offsets_of(n_groups))
    x = segment_sum((c & 0x1F) << shift, offsets_of(n_groups))
    negative = (c[ends] & 0x10) != 0
    x = np.where(negative, x | (-1 << (5 * n_groups)), x)
    # numbers per string, then undo the differences: two running sums per string (even
    # and odd positions), the even one starting at position 2
    per_string = np.searchsorted(ends, string_offsets[1:], side="left") - \
        np.searchsorted(ends, string_offsets[:-1], side="left")
    offsets = offsets_of(per_string)
    local = local_index(offsets)
    chain = 2 * segment_ids(offsets) + (local % 2)
    chain = np.where(local == 0, -1, chain)                           # position 0: its own value
    order = np.lexsort((np.arange(len(x)), chain))
    chain_sorted = chain[order]
    chain_offsets = np.concatenate([[0], np.nonzero(np.diff(chain_sorted))[0] + 1, [len(x)]])
    summed = segment_cumsum(x[order], chain_offsets)
    counts = np.empty_like(x)
    counts[order] = np.where(chain_sorted == -1, x[order], summed)
    return counts, offsets
