"""Pairwise IoU of binary masks on bit-packed words: population counts of AND words.

Two launches: :func:`pack_masks_kernel` packs each mask's pixels 32 to an int32 word
(8x less to read afterwards), then :func:`mask_iou_kernel` counts, for every pair, the
set bits of ``a & b`` (the intersection) and of ``a`` and ``b`` (the areas).
"""
import triton
import triton.language as tl


@triton.jit
def popcount(x):
    """Set bits of each 32-bit word, SWAR, so it runs in the interpreter too. LLVM
    recognises this exact sequence (ending in the multiply by 0x01010101) as one popcount:
    the sm_90 PTX of mask_iou_kernel has one ``popc`` per word (seen with triton 3.8)."""
    x = x.to(tl.uint32, bitcast=True)
    x = x - ((x >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    return ((x * 0x01010101) >> 24).to(tl.int32)


@triton.jit
def pack_masks_kernel(mask_ptr, words_ptr, R, P, K, BLOCK: tl.constexpr):
    """words[r, k] = pixels 32 k .. 32 k + 31 of mask row r, bit b = pixel 32 k + b (nonzero = 1).

    mask is [R, P] uint8 (bool viewed as uint8), contiguous; words is [R, K] int32 with
    K = ceil(P / 32), the bits past P zero. Each program packs BLOCK consecutive words of
    the flattened [R, K] array (int64 offsets). Reads P bytes and writes P / 8 bytes per
    row: memory-bound, roofline R * P * 9 / 8 bytes / bandwidth.
    """
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)      # flat word index
    row = offs // K
    first_pixel = (offs - row * K) * 32
    lanes = tl.arange(0, 32)
    pixel = first_pixel[:, None] + lanes[None, :]                             # [BLOCK, 32]
    valid = (row < R)[:, None] & (pixel < P)
    pixels = tl.load(mask_ptr + row[:, None] * P + pixel, mask=valid, other=0)
    bits = tl.where(pixels != 0, 1, 0).to(tl.int32) << lanes[None, :]
    tl.store(words_ptr + offs, tl.sum(bits, axis=1), mask=row < R)          # distinct bits: sum == or


@triton.jit
def mask_iou_kernel(a_ptr, b_ptr, crowd_ptr, out_ptr, N, M, K,
                    HAS_CROWD: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
                    BLOCK_K: tl.constexpr):
    """out[g, i, j] = |a_i & b_j| / |a_i | b_j| of packed masks, batched, float32.

    a is [B, N, K] int32 words, b [B, M, K], out [B, N, M]; with HAS_CROWD, crowd [B, M]
    int8 and a crowd column's union is |a_i| alone (pycocotools' crowd rule). IoU is 0
    where the intersection is empty (so also for two empty masks). The counts are exact
    int64 and the divide is float64, rounded once to float32.

    Program (i-block, j-block, g) loops over the words BLOCK_K at a time: one AND and
    popcount per (i, j, word), plus the popcounts of its own rows for the areas. Reads
    (BLOCK_N + BLOCK_M) * 4 bytes per word step: K * 4 * (N * M / BLOCK_M + M * N / BLOCK_N)
    bytes in all; N * M * K word operations, so it is bound by integer throughput.
    """
    g = tl.program_id(2).to(tl.int64)
    offs_n = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.program_id(1).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    in_n, in_m = offs_n < N, offs_m < M
    a_rows = a_ptr + g * N * K + offs_n * K
    b_rows = b_ptr + g * M * K + offs_m * K
    inter = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.int64)
    area_a = tl.zeros((BLOCK_N,), dtype=tl.int64)
    area_b = tl.zeros((BLOCK_M,), dtype=tl.int64)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        in_k = offs_k < K
        a = tl.load(a_rows[:, None] + offs_k[None, :], mask=in_n[:, None] & in_k[None, :], other=0)
        b = tl.load(b_rows[:, None] + offs_k[None, :], mask=in_m[:, None] & in_k[None, :], other=0)
        inter += tl.sum(popcount(a[:, None, :] & b[None, :, :]), axis=2).to(tl.int64)
        area_a += tl.sum(popcount(a), axis=1).to(tl.int64)
        area_b += tl.sum(popcount(b), axis=1).to(tl.int64)
    union = area_a[:, None] + area_b[None, :] - inter
    if HAS_CROWD:
        crowd = tl.load(crowd_ptr + g * M + offs_m, mask=in_m, other=0) != 0
        union = tl.where(crowd[None, :], area_a[:, None], union)
    iou = inter.to(tl.float64) / tl.maximum(union, 1).to(tl.float64)
    out_offs = g * N * M + offs_n[:, None] * M + offs_m[None, :]
    tl.store(out_ptr + out_offs, iou.to(tl.float32), mask=in_n[:, None] & in_m[None, :])
