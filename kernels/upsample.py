"""Bilinear upsampling fused with a skip addition, and its adjoint (the gradient w.r.t. x).

Convention: ``F.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)``,
as PyTorch computes it. For an output row Y of H, from an input of h rows,

    scale = h / H
    src   = max(scale * (Y + 0.5) - 0.5, 0)
    i0    = floor(src),  i1 = min(i0 + 1, h - 1)
    l1    = src - i0,    l0 = 1 - l1

and the same along the columns; out[Y, X] = sum of the four x[i, j] weighted by
l_y * l_x. Arithmetic runs in COMPUTE (float32, or float64 for float64 tensors);
tensors of any dtype are loaded, cast to COMPUTE, and the result is cast back once.

Tiling: program (n * rows + row, column block, channel block) owns a
[BLOCK_C, BLOCK_X] tile of one image row, so the row's source index and weights
are scalars and no element does an integer division. All addressing goes through
explicit strides: the host picks BLOCK_C = 1 for contiguous NCHW tensors (tiles run
along W) and BLOCK_C > 1 for channels-last ones (tiles cover contiguous channels),
so loads and stores are coalesced in both layouts, and any other strides work.
Offsets are int32 unless WIDE (some tensor spans 2**31 elements or more).
"""
import triton
import triton.language as tl


@triton.jit
def _ratio(a, b, COMPUTE: tl.constexpr):
    """a / b of two integer sizes in COMPUTE, correctly rounded as PyTorch's
    ``(float)in / out`` (fp32 ``/`` is approximate on GPU). Sizes may arrive as constexpr 1."""
    if COMPUTE == tl.float64:
        ratio = tl.cast(a, tl.float64) / tl.cast(b, tl.float64)
    else:
        ratio = tl.math.div_rn(tl.cast(a, tl.float32), tl.cast(b, tl.float32))
    return ratio


@triton.jit
def _source_index(dst, scale, in_size, COMPUTE: tl.constexpr):
    """Input neighbours (i0, i1) and their weights (l0, l1) of output positions ``dst``."""
    src = scale * (dst.to(COMPUTE) + 0.5) - 0.5
    src = tl.maximum(src, 0.0)
    i0 = tl.minimum(src.to(dst.dtype), in_size - 1)       # src >= 0: truncation is floor
    i1 = tl.where(i0 < in_size - 1, i0 + 1, i0)
    l1 = src - i0.to(COMPUTE)
    l0 = 1.0 - l1
    return i0, i1, l0, l1


@triton.jit
def _weight_to(i, dst, scale, in_size, COMPUTE: tl.constexpr):
    """Weight with which input position ``i`` enters output position ``dst`` (0 if it does not)."""
    i0, i1, l0, l1 = _source_index(dst, scale, in_size, COMPUTE)
    return tl.where(i0 == i, l0, 0.0) + tl.where(i1 == i, l1, 0.0)


@triton.jit
def _tile(ROWS, BLOCK_C: tl.constexpr, BLOCK_X: tl.constexpr, WIDE: tl.constexpr):
    """(n, row) of this program (int64 scalars) and its channel / column indices
    ([BLOCK_C, 1] and [1, BLOCK_X], int64 when WIDE)."""
    pid = tl.program_id(0)
    n = (pid // ROWS).to(tl.int64)
    row = pid % ROWS
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)[:, None]
    col = tl.program_id(1) * BLOCK_X + tl.arange(0, BLOCK_X)[None, :]
    if WIDE:
        c = c.to(tl.int64)
        col = col.to(tl.int64)
    return n, row, c, col


@triton.jit
def upsample_bilinear_add_kernel(
        x_ptr, skip_ptr, out_ptr, C, h, w, H, W,
        sx_n, sx_c, sx_h, sx_w, ss_n, ss_c, ss_h, ss_w, so_n, so_c, so_h, so_w,
        COMPUTE: tl.constexpr, WIDE: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_X: tl.constexpr):
    """out = bilinear_upsample(x [N, C, h, w] -> [N, C, H, W]) + skip [N, C, H, W].

    Grid (N * H, cdiv(W, BLOCK_X), cdiv(C, BLOCK_C)). Per output element: 4 gathered
    reads of x (each x element is reused by ~(H/h) * (W/w) outputs, so from cache
    rather than DRAM), one read of skip, one write. Minimum DRAM traffic is
    |x| + |skip| + |out| bytes, against |x| + 2|up| + |skip| + |out| for eager
    interpolate-then-add (which writes and re-reads the upsampled tensor).
    """
    n, oy, c, ox = _tile(H, BLOCK_C, BLOCK_X, WIDE)
    valid = (c < C) & (ox < W)
    y0, y1, ly0, ly1 = _source_index(oy, _ratio(h, H, COMPUTE), h, COMPUTE)     # scalars
    x0, x1, lx0, lx1 = _source_index(ox, _ratio(w, W, COMPUTE), w, COMPUTE)     # [1, BLOCK_X]
    row0 = x_ptr + n * sx_n + y0.to(tl.int64) * sx_h + c * sx_c
    row1 = x_ptr + n * sx_n + y1.to(tl.int64) * sx_h + c * sx_c
    v00 = tl.load(row0 + x0 * sx_w, mask=valid, other=0.0).to(COMPUTE)
    v01 = tl.load(row0 + x1 * sx_w, mask=valid, other=0.0).to(COMPUTE)
    v10 = tl.load(row1 + x0 * sx_w, mask=valid, other=0.0).to(COMPUTE)
    v11 = tl.load(row1 + x1 * sx_w, mask=valid, other=0.0).to(COMPUTE)
    s = tl.load(skip_ptr + n * ss_n + oy.to(tl.int64) * ss_h + c * ss_c + ox * ss_w,
                mask=valid, other=0.0).to(COMPUTE)
    up = ly0 * (lx0 * v00 + lx1 * v01) + ly1 * (lx0 * v10 + lx1 * v11)
    tl.store(out_ptr + n * so_n + oy.to(tl.int64) * so_h + c * so_c + ox * so_w,
             (up + s).to(out_ptr.dtype.element_ty), mask=valid)


@triton.jit
def upsample_bilinear_backward_kernel(
        grad_ptr, gx_ptr, C, h, w, H, W,
        sg_n, sg_c, sg_h, sg_w, sx_n, sx_c, sx_h, sx_w,
        steps_y, steps_x,
        COMPUTE: tl.constexpr, WIDE: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_X: tl.constexpr):
    """grad_x [N, C, h, w] = adjoint of bilinear upsampling applied to grad [N, C, H, W].

    A deterministic gather (no atomics), grid (N * h, cdiv(w, BLOCK_X), cdiv(C, BLOCK_C)):
    one program owns a tile of one row i of grad_x. Input row i feeds exactly the
    output rows Y whose source lies in [i - 1, i + 1), i.e. Y in [lo, lo + 2H/h) with
    lo = (i - 0.5) * H / h - 0.5 (rows clamped to source 0 are in that range too);
    starting at floor(lo), steps_y = floor(2H/h) + 2 candidates cover it, with float
    rounding of lo. Same for columns. Each candidate's weight is recomputed with the
    forward's own formula, so the result is the exact transpose of the forward;
    candidate rows of weight 0 are skipped and candidate columns of weight 0 are
    masked out of the loads, so they cost no memory traffic. The candidate counts are
    runtime loop bounds, not unrolled: compile time and code size do not grow with the
    scale (unrolled, scale 8 took 50 s to compile). Reads each grad element about 4
    times (from cache), writes grad_x once.
    """
    n, iy, c, ix = _tile(h, BLOCK_C, BLOCK_X, WIDE)
    valid = (c < C) & (ix < w)
    scale_y = _ratio(h, H, COMPUTE)
    scale_x = _ratio(w, W, COMPUTE)
    start_y = tl.maximum(tl.floor((iy.to(COMPUTE) - 0.5) * _ratio(H, h, COMPUTE) - 0.5).to(tl.int32), 0)
    start_x = tl.maximum(tl.floor((ix.to(COMPUTE) - 0.5) * _ratio(W, w, COMPUTE) - 0.5).to(ix.dtype), 0)
    base = grad_ptr + n * sg_n + c * sg_c
    acc = tl.zeros([BLOCK_C, BLOCK_X], dtype=COMPUTE)
    for dy in range(steps_y):
        oy = start_y + dy
        wy = _weight_to(iy, oy, scale_y, h, COMPUTE)                            # scalar
        if (oy < H) & (wy != 0.0):
            row = base + oy.to(tl.int64) * sg_h
            row_acc = tl.zeros([BLOCK_C, BLOCK_X], dtype=COMPUTE)
            for dx in range(steps_x):
                ox = start_x + dx
                wx = _weight_to(ix, ox, scale_x, w, COMPUTE)                    # [1, BLOCK_X]
                ok = valid & (ox < W) & (wx != 0.0)
                g = tl.load(row + ox * sg_w, mask=ok, other=0.0).to(COMPUTE)
                row_acc += tl.where(ok, wx * g, 0.0)
            acc += wy * row_acc
    tl.store(gx_ptr + n * sx_n + iy.to(tl.int64) * sx_h + c * sx_c + ix * sx_w,
             acc.to(gx_ptr.dtype.element_ty), mask=valid)
