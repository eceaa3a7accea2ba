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
def nms_scan_kernel(mask_ptr, removed_ptr, seg_end_ptr, keep_ptr, N, n_words,
                    SEGMENTED: tl.constexpr, BLOCK_WORDS: tl.constexpr):
    """Greedy NMS over an upper-triangle IoU bitmask of score-sorted boxes.

    mask is [B, N, n_words] int32 (bit k of mask[g, i, w]: box 32 * w + k overlaps
    box i above the threshold, only for j > i); removed is [B, n_words] int32,
    on entry the boxes that are out from the start (below the score threshold,
    padding; bits beyond N set), on exit the suppressed ones; seg_end is [B, N]
    int32 (read only when SEGMENTED; otherwise every box may suppress every later
    one); keep is [B, N] int8 out (1 = kept).

    One program per image walks the 32-box blocks in order. For block b it first
    resolves the block itself sequentially from the diagonal words mask[32b:32b+32, b]
    (32 steps on one word), then ORs the rows of the kept boxes of the block into
    the removal words of every later block, BLOCK_WORDS words at a time (32 row
    loads unrolled, masked off for suppressed rows); a block with no kept box
    reads nothing more. Work O(N * kept / 32) word ORs; memory
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
        first_row = tl.zeros((), dtype=tl.int64) + blk * 32
        rows_left = N - blk * 32
        n_in = tl.minimum(rows_left, 32)
        in_bits = tl.where(n_in >= 32, -1, (1 << tl.minimum(n_in, 31)) - 1)
        # in-block resolution, unrolled: each step reads one diagonal word (the loads do
        # not depend on the scan, so all 32 are in flight together); only bits of box
        # k's segment count: the lowest clamp(seg_end - 32 b, 0, 32) of word b
        removed = tl.load(removed_ptr + blk)
        for k in tl.static_range(32):
            in_k = k < rows_left
            word = tl.load(mask_ptr + (first_row + k) * n_words + blk, mask=in_k, other=0)
            if SEGMENTED:
                seg_k = tl.load(seg_end_ptr + first_row + k, mask=in_k, other=0)
                n_seg = tl.minimum(tl.maximum(seg_k - blk * 32, 0), 32)
                word = word & tl.where(n_seg >= 32, -1, (1 << tl.minimum(n_seg, 31)) - 1)
            alive = ((removed >> k) & 1) == 0
            removed = tl.where(alive, removed | word, removed)
        kept = ~removed & in_bits
        kept_rows = ((kept >> lanes) & 1) != 0
        tl.store(keep_ptr + first_row + lanes, kept_rows.to(tl.int8), mask=lanes < rows_left)
        tl.store(removed_ptr + blk, removed)
        # the kept rows of this block remove their overlaps from every later block
        # (row by row, unrolled so the 32 loads are in flight together)
        if kept != 0:
            for w0 in range(blk + 1, n_words, BLOCK_WORDS):
                words = w0 + offs_bw
                in_w = words < n_words
                hits = tl.zeros((BLOCK_WORDS,), dtype=tl.int32)
                for k in tl.static_range(32):
                    kept_k = ((kept >> k) & 1) != 0
                    row = tl.load(mask_ptr + (first_row + k) * n_words + words,
                                  mask=in_w & kept_k, other=0)
                    if SEGMENTED:
                        row_seg_end = tl.load(seg_end_ptr + first_row + k, mask=kept_k, other=0)
                        row_n_seg = tl.minimum(tl.maximum(row_seg_end - words * 32, 0), 32)
                        row = row & tl.where(row_n_seg >= 32, -1, (1 << tl.minimum(row_n_seg, 31)) - 1)
                    hits |= row
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
