"""Non-maximum suppression on the GPU without a round trip to the host.

NMS runs in three launches over boxes already sorted by descending score:

1. ``box_iou_threshold_kernel`` (kernels/box_iou.py, reused as is): the upper
   triangle of the bitmask IoU(i, j) > threshold, [B, N, ceil(N / 32)] int32.
2. :func:`nms_scan_kernel`: the greedy pass over that bitmask, one program per
   image, block by block of 32 boxes.
3. :func:`nms_compact_kernel`: the kept positions, compacted by a prefix sum into
   a fixed-size [B, K] array padded with -1, and the count per image.

Nothing here needs the host to read a value back, so the whole pipeline is
sync-free and can be captured in a CUDA graph. Class-aware NMS is expressed by
*segments*: boxes sorted by (class, score) and ``seg_end[i]``, the end of box
i's class run; box i may only suppress boxes j < seg_end[i].
"""
import triton
import triton.language as tl

BITS_PER_WORD = 32


@triton.jit
def _or(a, b):
    return a | b


@triton.jit
def _bits_below(count):
    """int32 word with the lowest ``count`` bits set (count clamped to [0, 32])."""
    c = tl.minimum(tl.maximum(count, 0), 32)
    return tl.where(c >= 32, -1, (1 << tl.minimum(c, 31)) - 1)


@triton.jit
def nms_scan_kernel(mask_ptr, removed_ptr, seg_end_ptr, keep_ptr, N, n_words,
                    BLOCK_WORDS: tl.constexpr):
    """Greedy NMS over an upper-triangle IoU bitmask of score-sorted boxes.

    mask is [B, N, n_words] int32 (bit k of mask[g, i, w]: box 32 * w + k overlaps
    box i above the threshold, only for j > i); removed is [B, n_words] int32,
    on entry the boxes that are out from the start (below the score threshold,
    padding; bits beyond N set), on exit the suppressed ones; seg_end is [B, N]
    int32; keep is [B, N] int8 out (1 = kept).

    One program per image walks the 32-box blocks in order. For block b it first
    resolves the block itself sequentially from the diagonal words mask[32b:32b+32, b]
    (32 steps on one word), then ORs the rows of the kept boxes of the block into
    the removal words of every later block, BLOCK_WORDS words at a time; a block
    with no kept box reads nothing more. Work O(N * kept / 32) word ORs; memory
    traffic at most the upper triangle once, N^2 / 16 bytes, plus 4 bytes per
    word of ``removed`` per kept block. Memory O(N^2 / 32) words, the bitmask.
    """
    g = tl.program_id(0).to(tl.int64)
    mask_ptr += g * N * n_words
    removed_ptr += g * n_words
    seg_end_ptr += g * N
    keep_ptr += g * N
    lanes = tl.arange(0, 32)
    offs_bw = tl.arange(0, BLOCK_WORDS)
    for blk in range(0, n_words):
        rows = blk * 32 + lanes
        in_rows = rows < N
        row_offs = rows.to(tl.int64) * n_words
        seg = tl.load(seg_end_ptr + rows, mask=in_rows, other=0)
        # in-block resolution: row i of the block may suppress later boxes of its segment
        diag = tl.load(mask_ptr + row_offs + blk, mask=in_rows, other=0)
        diag = diag & _bits_below(seg - blk * 32)
        removed = tl.load(removed_ptr + blk)
        for k in range(32):
            row_word = tl.sum(tl.where(lanes == k, diag, 0), axis=0)
            alive = ((removed >> k) & 1) == 0
            removed = tl.where(alive, removed | row_word, removed)
        in_bits = tl.sum(tl.where(in_rows, 1 << lanes, 0), axis=0)
        kept = ~removed & in_bits
        kept_rows = ((kept >> lanes) & 1) != 0
        tl.store(keep_ptr + rows, kept_rows.to(tl.int8), mask=in_rows)
        tl.store(removed_ptr + blk, removed)
        # the kept rows of this block remove their overlaps from every later block
        if kept != 0:
            for w0 in range(blk + 1, n_words, BLOCK_WORDS):
                words = w0 + offs_bw
                in_w = words < n_words
                tile = tl.load(mask_ptr + row_offs[:, None] + words[None, :],
                               mask=(kept_rows & in_rows)[:, None] & in_w[None, :], other=0)
                tile = tile & _bits_below(seg[:, None] - words[None, :] * 32)
                hits = tl.reduce(tile, 0, _or)
                old = tl.load(removed_ptr + words, mask=in_w, other=0)
                tl.store(removed_ptr + words, old | hits, mask=in_w)
        tl.debug_barrier()


@triton.jit
def nms_compact_kernel(keep_ptr, out_ptr, count_ptr, N, K, BLOCK: tl.constexpr):
    """out[g, r] = the position of the r-th kept box of image g for r < K, -1 beyond;
    count[g] = min(kept boxes, K).

    keep is [B, N] int8, out [B, K] int64, count [B] int64. One program per image
    scans keep in BLOCK chunks with an in-block prefix sum plus a running total
    (a stream compaction). Reads N bytes, writes 8 * K + 8 bytes per image.
    """
    g = tl.program_id(0).to(tl.int64)
    keep_ptr += g * N
    out_ptr += g * K
    total = tl.zeros((), dtype=tl.int32)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        flag = tl.load(keep_ptr + offs, mask=offs < N, other=0).to(tl.int32)
        rank = total + tl.cumsum(flag, axis=0) - flag
        tl.store(out_ptr + rank, offs.to(tl.int64), mask=(flag != 0) & (rank < K))
        total += tl.sum(flag, axis=0)
    for start in range(0, K, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        tl.store(out_ptr + offs, tl.full((BLOCK,), -1, tl.int64), mask=(offs >= total) & (offs < K))
    tl.store(count_ptr + g, tl.minimum(total, K).to(tl.int64))
