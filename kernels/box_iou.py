"""Pairwise box-overlap kernels: IoU, GIoU, DIoU, CIoU and the thresholded IoU bitmask.

All boxes are (x1, y1, x2, y2). Arithmetic runs in COMPUTE (float32, or float64
for float64 boxes); the union is ``area_a + area_b - inter`` in that order, as in
torchvision, so thresholds compare bit-for-bit alike. Where the union (or the
enclosing box) is empty the overlap term is 0, never NaN; NaN coordinates give NaN.
"""
import triton
import triton.language as tl

IOU, GIOU, DIOU, CIOU = 0, 1, 2, 3
"""The VARIANT constexpr of the kernels below."""


@triton.jit
def _aspect(w, h):
    """w / h, and 0 where both are 0."""
    return tl.where((w == 0.0) & (h == 0.0), 0.0, w / h)


@triton.jit
def _atan(x):
    """arctan(x), |error| < 1e-15 (libdevice.atan does not run in the interpreter).

    Reduces |x| > 1 by atan(x) = pi/2 - atan(1/x), then t > tan(pi/12) by
    atan(t) = pi/6 + atan((t - 1/sqrt3) / (1 + t/sqrt3)), leaving |t| <= 0.268 for
    the odd Taylor polynomial up to t**23 (next term < 0.268**25 / 25 = 2e-16).
    """
    ax = tl.abs(x)
    invert = ax > 1.0
    t = tl.where(invert, 1.0 / ax, ax)
    shift = t > 0.2679491924311227
    t = tl.where(shift, (t - 0.5773502691896258) / (1.0 + t * 0.5773502691896258), t)
    s = t * t
    # Horner form of sum_k (-1)^k t^(2k+1) / (2k+1), k = 0..11
    p = -1.0 / 23
    p = 1.0 / 21 + s * p
    p = -1.0 / 19 + s * p
    p = 1.0 / 17 + s * p
    p = -1.0 / 15 + s * p
    p = 1.0 / 13 + s * p
    p = -1.0 / 11 + s * p
    p = 1.0 / 9 + s * p
    p = -1.0 / 7 + s * p
    p = 1.0 / 5 + s * p
    p = -1.0 / 3 + s * p
    p = t * (1.0 + s * p)
    p = tl.where(shift, 0.5235987755982988 + p, p)
    p = tl.where(invert, 1.5707963267948966 - p, p)
    return tl.where(x < 0.0, -p, p)


@triton.jit
def _div_rn(a, b):
    """a / b correctly rounded: Triton's float32 '/' may compile to an approximate divide."""
    if a.dtype == tl.float32:
        return tl.math.div_rn(a, b)
    else:
        return a / b


@triton.jit
def box_overlap(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, VARIANT: tl.constexpr, eps):
    """IoU (VARIANT 0), GIoU (1), DIoU (2) or CIoU (3) of broadcastable box coordinates."""
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    inter_w = tl.maximum(tl.minimum(ax2, bx2) - tl.maximum(ax1, bx1), 0.0)
    inter_h = tl.maximum(tl.minimum(ay2, by2) - tl.maximum(ay1, by1), 0.0)
    inter = inter_w * inter_h
    union = area_a + area_b - inter
    iou = tl.where(union == 0.0, 0.0, _div_rn(inter, union))
    if VARIANT == 0:
        result = iou
    else:
        # enclosing box
        encl_w = tl.maximum(tl.maximum(ax2, bx2) - tl.minimum(ax1, bx1), 0.0)
        encl_h = tl.maximum(tl.maximum(ay2, by2) - tl.minimum(ay1, by1), 0.0)
        if VARIANT == 1:
            encl = encl_w * encl_h
            result = iou - tl.where(encl == 0.0, 0.0, (encl - union) / encl)
        else:
            diag2 = encl_w * encl_w + encl_h * encl_h + eps
            dx = (ax1 + ax2) * 0.5 - (bx1 + bx2) * 0.5
            dy = (ay1 + ay2) * 0.5 - (by1 + by2) * 0.5
            result = iou - (dx * dx + dy * dy) / diag2
            if VARIANT == 3:
                # aspect-ratio term atan(w / h), taken as 0 for an empty box (0 / 0)
                da = _atan(_aspect(ax2 - ax1, ay2 - ay1)) - _atan(_aspect(bx2 - bx1, by2 - by1))
                v = (4.0 / (3.141592653589793 * 3.141592653589793)) * da * da
                alpha = v / (1.0 - iou + v + eps)
                result = result - alpha * v
    return result


@triton.jit
def _load_box(ptr, idx, mask, COMPUTE: tl.constexpr):
    """Coordinates of the boxes ``idx`` of a contiguous [*, 4] array, cast to COMPUTE."""
    x1 = tl.load(ptr + idx * 4 + 0, mask=mask, other=0.0).to(COMPUTE)
    y1 = tl.load(ptr + idx * 4 + 1, mask=mask, other=0.0).to(COMPUTE)
    x2 = tl.load(ptr + idx * 4 + 2, mask=mask, other=0.0).to(COMPUTE)
    y2 = tl.load(ptr + idx * 4 + 3, mask=mask, other=0.0).to(COMPUTE)
    return x1, y1, x2, y2


@triton.jit
def pairwise_box_overlap_kernel(a_ptr, b_ptr, out_ptr, N, M, eps,
                                VARIANT: tl.constexpr, COMPUTE: tl.constexpr, INT64: tl.constexpr,
                                BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
    """out[i, j] = overlap(a[i], b[j]) for A (N x 4) and B (M x 4), row-major out (N x M).

    One program computes a BLOCK_N x BLOCK_M tile, rows of the tile stored
    contiguously (coalesced along M). Reads 16 bytes per box once per tile and
    writes one element per pair: store-bound, so the roofline is
    N * M * sizeof(out) bytes / write bandwidth. Offsets are int64 with INT64 (the
    host sets it when N * M reaches 2**31), int32 otherwise.
    """
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    if INT64:
        offs_n = offs_n.to(tl.int64)
        offs_m = offs_m.to(tl.int64)
    in_n = offs_n < N
    in_m = offs_m < M
    ax1, ay1, ax2, ay2 = _load_box(a_ptr, offs_n, in_n, COMPUTE)
    bx1, by1, bx2, by2 = _load_box(b_ptr, offs_m, in_m, COMPUTE)
    result = box_overlap(ax1[:, None], ay1[:, None], ax2[:, None], ay2[:, None],
                         bx1[None, :], by1[None, :], bx2[None, :], by2[None, :], VARIANT, eps)
    out_offs = offs_n[:, None] * M + offs_m[None, :]
    tl.store(out_ptr + out_offs, result.to(out_ptr.dtype.element_ty),
             mask=in_n[:, None] & in_m[None, :])


@triton.jit
def aligned_box_overlap_kernel(a_ptr, b_ptr, out_ptr, N, eps,
                               VARIANT: tl.constexpr, COMPUTE: tl.constexpr,
                               BLOCK: tl.constexpr):
    """out[i] = overlap(a[i], b[i]) for A, B (N x 4): 32 bytes read and one element written per box pair."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    valid = offs < N
    ax1, ay1, ax2, ay2 = _load_box(a_ptr, offs, valid, COMPUTE)
    bx1, by1, bx2, by2 = _load_box(b_ptr, offs, valid, COMPUTE)
    result = box_overlap(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, VARIANT, eps)
    tl.store(out_ptr + offs, result.to(out_ptr.dtype.element_ty), mask=valid)


@triton.jit
def box_iou_threshold_kernel(a_ptr, b_ptr, mask_ptr, N, M, n_words, threshold_ptr,
                             UPPER: tl.constexpr, COMPUTE: tl.constexpr,
                             BLOCK_N: tl.constexpr, BLOCK_WORDS: tl.constexpr):
    """Bitmask of IoU(a[i], b[j]) > threshold, 32 pairs per int32 word, batched.

    a is [B, N, 4], b is [B, M, 4], mask is [B, N, n_words] int32 with
    n_words = ceil(M / 32): bit k of mask[g, i, w] is pair (i, 32 * w + k) of
    batch g. With UPPER, only pairs j > i are set (the rows NMS needs over
    score-sorted boxes). The threshold is read from a one-element tensor of the
    COMPUTE dtype (a Python float argument would reach the kernel as float32,
    too coarse for float64 IoUs). Program (i-block, word-block, g) computes a
    BLOCK_N x (32 * BLOCK_WORDS) tile. Reads 16 bytes per box per tile, writes
    1 bit per pair: 32x less store traffic than the IoU matrix, so it is bound
    by the IoU arithmetic rather than by memory.
    """
    g = tl.program_id(2).to(tl.int64)
    offs_n = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_w = tl.program_id(1).to(tl.int64) * BLOCK_WORDS + tl.arange(0, BLOCK_WORDS)
    offs_m = offs_w[:, None] * 32 + tl.arange(0, 32)[None, :]          # [BLOCK_WORDS, 32]
    in_n = offs_n < N
    in_m = offs_m < M
    ax1, ay1, ax2, ay2 = _load_box(a_ptr + g * N * 4, offs_n, in_n, COMPUTE)
    bx1, by1, bx2, by2 = _load_box(b_ptr + g * M * 4, offs_m, in_m, COMPUTE)
    iou = box_overlap(ax1[:, None, None], ay1[:, None, None], ax2[:, None, None], ay2[:, None, None],
                      bx1[None, :, :], by1[None, :, :], bx2[None, :, :], by2[None, :, :], 0, 0.0)
    threshold = tl.load(threshold_ptr)
    hit = (iou > threshold) & in_m[None, :, :]
    if UPPER:
        hit = hit & (offs_m[None, :, :] > offs_n[:, None, None])
    bits = tl.where(hit, 1, 0).to(tl.int32) << tl.arange(0, 32)[None, None, :]
    words = tl.sum(bits, axis=2)                                          # distinct bits: sum == or
    out_offs = g * N * n_words + offs_n[:, None] * n_words + offs_w[None, :]
    tl.store(mask_ptr + out_offs, words, mask=in_n[:, None] & (offs_w < n_words)[None, :])
