"""Transposed convolution (ConvTranspose2d, groups 1, dilation 1, square kernel) fused with
its skip connection, forward and backward.

Notation: x [B, CIN, H, W], weight [CIN, COUT, K, K], stride S, padding P, output
[B, COUT, HOUT, WOUT] with HOUT = (H - 1) * S - 2P + K + output_padding. Input pixel
(h, w) scatters weight tap (kh, kw) onto output pixel (h*S - P + kh, w*S - P + kw).

Forward, sub-pixel (phase) decomposition: an output row oh only receives taps kh with
kh = (oh + P) mod S (+ multiples of S), so the output splits into S*S phases
(rh, rw) = ((oh + P) mod S, (ow + P) mod S), and each phase is an ordinary convolution
of x with the TAPS x TAPS sub-kernel weight[:, :, rh::S, rw::S] (TAPS = ceil(K / S)):
an implicit GEMM [B*QH*QW, CIN*TAPS^2] x [CIN*TAPS^2, COUT] with no wasted zero
multiplications and every output pixel written exactly once (output_padding pixels
that no input reaches get bias + skip). For K == S (the FCN / U-Net 2x2 stride-2 case)
every phase has one tap and the whole op is the per-pixel product
[B*H*W, CIN] x [CIN, COUT*K*K] with non-overlapping outputs.

Every kernel takes explicit element strides, so contiguous and channels-last tensors
(and channel slices of a concat buffer) are read and written in place. Pixel indices are
int32 (the host runs these kernels only for fewer than 2**31 pixels per tensor), and so are
element offsets unless INT64 (set by the host when some tensor spans 2**31 elements or more):
64-bit [BLOCK_M, BLOCK_N] offset tiles and 64-bit divisions cost registers the tiles need.
Addresses are built from row and column offset vectors at each load and store.
Accumulation is float32; DOT_FP32 casts the operands to float32 before tl.dot (used in
Triton's interpreter, where bf16 dots are wrong).
"""
import triton
import triton.language as tl


@triton.jit
def _wide(index, INT64: tl.constexpr):
    """``index`` as int64 with INT64 (before it multiplies a stride), else unchanged."""
    if INT64:
        index = index.to(tl.int64)
    return index


@triton.jit
def _offsets(pid, BLOCK: tl.constexpr, INT64: tl.constexpr):
    """pid * BLOCK + [0, BLOCK): int64 with INT64, else int32."""
    if INT64:
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        offs = pid * BLOCK + tl.arange(0, BLOCK)
    return offs


@triton.jit
def deconv_phase_kernel(
        x_ptr, w_ptr, bias_ptr, skip_ptr, out_ptr,
        B, CIN, H, W, COUT, HOUT, WOUT, QH, QW, N_TILES,
        sxb, sxc, sxh, sxw, swi, swo, swh, sww,
        ssb, ssc, ssh, ssw, sob, soc, soh, sow,
        S: tl.constexpr, K: tl.constexpr, P: tl.constexpr, TAPS: tl.constexpr,
        HAS_BIAS: tl.constexpr, HAS_SKIP: tl.constexpr, RELU: tl.constexpr,
        DOT_FP32: tl.constexpr, PRECISION: tl.constexpr, INT64: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """out = act(conv_transpose2d(x, weight) + bias + skip), phase by phase.

    Program (m-tile, n-tile, phase) computes BLOCK_M output pixels of phase
    (rh, rw) = divmod(phase, S) (pixel m = (b, i, j) -> output (i*S + oh0, j*S + ow0),
    QH x QW the largest phase extent, smaller phases masked) times BLOCK_N output
    channels. The reduction runs over the phase's taps and CIN in BLOCK_K chunks. For K == S
    this is the tiled GEMM [B*H*W, CIN] x [CIN, K*K*COUT] with its N axis ordered (tap, c_out)
    and the epilogue scattering each tap to its output pixels.
    Traffic per output pixel: CIN * TAPS^2 input reads (cached across the n-tiles),
    one skip read and one write; the weight tile is re-read per m-tile. At decoder
    sizes (CIN >= 64) it is compute-bound: flops = 2 * B*H*W * CIN * COUT * K^2.
    """
    # 1-D grid, phase fastest: the S*S phases (and the n-tiles) of one m-tile run side by side and
    # share its input rows in L2, as the n-tiles of one GEMM row block would
    pid = tl.program_id(0)
    phase = pid % (S * S)
    pid_n = (pid // (S * S)) % N_TILES
    pid_m = pid // (S * S * N_TILES)
    rh = phase // S
    rw = phase % S
    # first output row/col of the phase ((oh0 + P) % S == rh) and the input row of its tap 0
    oh0 = (rh - P % S + S) % S
    ow0 = (rw - P % S + S) % S
    base_h = (oh0 + P - rh) // S
    base_w = (ow0 + P - rw) // S

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    qj = offs_m % QW
    qi = (offs_m // QW) % QH
    b = offs_m // (QW * QH)
    oh = oh0 + qi * S
    ow = ow0 + qj * S
    in_m = (b < B) & (oh < HOUT) & (ow < WOUT)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    in_n = offs_n < COUT

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for th in range(TAPS):
        kh = rh + th * S
        ih = base_h + qi - th
        for tw in range(TAPS):
            kw = rw + tw * S
            iw = base_w + qj - tw
            if (kh < K) & (kw < K):
                # input pixel feeding this tap for each output pixel of the tile
                in_row = in_m & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                x_row = _wide(b, INT64) * sxb + _wide(ih, INT64) * sxh + _wide(iw, INT64) * sxw
                w_tap = w_ptr + kh * swh + kw * sww
                for c0 in range(0, CIN, BLOCK_K):
                    offs_k = c0 + tl.arange(0, BLOCK_K)
                    in_k = offs_k < CIN
                    a = tl.load(x_ptr + (x_row[:, None] + _wide(offs_k, INT64)[None, :] * sxc),
                                mask=in_row[:, None] & in_k[None, :], other=0.0)
                    wt = tl.load(w_tap + (_wide(offs_k, INT64)[:, None] * swi + _wide(offs_n, INT64)[None, :] * swo),
                                 mask=in_k[:, None] & in_n[None, :], other=0.0)
                    if DOT_FP32:
                        a = a.to(tl.float32)
                        wt = wt.to(tl.float32)
                    acc = tl.dot(a, wt, acc, input_precision=PRECISION)

    # fused epilogue: bias, skip, activation, one store per output element
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=in_n, other=0.0).to(tl.float32)[None, :]
    in_out = in_m[:, None] & in_n[None, :]
    if HAS_SKIP:
        s_row = _wide(b, INT64) * ssb + _wide(oh, INT64) * ssh + _wide(ow, INT64) * ssw
        s_col = _wide(offs_n, INT64) * ssc
        acc += tl.load(skip_ptr + (s_row[:, None] + s_col[None, :]), mask=in_out, other=0.0).to(tl.float32)
    if RELU:
        acc = tl.maximum(acc, 0.0)
    o_row = _wide(b, INT64) * sob + _wide(oh, INT64) * soh + _wide(ow, INT64) * sow
    o_col = _wide(offs_n, INT64) * soc
    tl.store(out_ptr + (o_row[:, None] + o_col[None, :]), acc.to(out_ptr.dtype.element_ty), mask=in_out)


@triton.jit
def deconv_grad_input_kernel(
        g_ptr, w_ptr, gx_ptr,
        B, CIN, H, W, COUT, HOUT, WOUT,
        sgb, sgc, sgh, sgw, swi, swo, swh, sww, sxb, sxc, sxh, sxw,
        S: tl.constexpr, K: tl.constexpr, P: tl.constexpr,
        DOT_FP32: tl.constexpr, PRECISION: tl.constexpr, INT64: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """grad_x[b, ci, h, w] = sum_{co, kh, kw} g[b, co, h*S - P + kh, w*S - P + kw] * weight[ci, co, kh, kw].

    The strided convolution of grad_out with the same weight: an implicit GEMM
    [B*H*W, COUT*K^2] x [COUT*K^2, CIN]; for K == S the patches do not overlap, so every
    grad_out element is read once per n-tile. Program (m-tile, n-tile) owns BLOCK_M
    input pixels x BLOCK_N input channels.
    """
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    w_i = offs_m % W
    h_i = (offs_m // W) % H
    b = offs_m // (W * H)
    in_m = b < B
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    in_n = offs_n < CIN

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kh in range(K):
        oh = h_i * S - P + kh
        for kw in range(K):
            ow = w_i * S - P + kw
            in_row = in_m & (oh >= 0) & (oh < HOUT) & (ow >= 0) & (ow < WOUT)
            g_row = _wide(b, INT64) * sgb + _wide(oh, INT64) * sgh + _wide(ow, INT64) * sgw
            w_tap = w_ptr + kh * swh + kw * sww
            for c0 in range(0, COUT, BLOCK_K):
                offs_k = c0 + tl.arange(0, BLOCK_K)
                in_k = offs_k < COUT
                a = tl.load(g_ptr + (g_row[:, None] + _wide(offs_k, INT64)[None, :] * sgc),
                            mask=in_row[:, None] & in_k[None, :], other=0.0)
                wt = tl.load(w_tap + (_wide(offs_k, INT64)[:, None] * swo + _wide(offs_n, INT64)[None, :] * swi),
                             mask=in_k[:, None] & in_n[None, :], other=0.0)
                if DOT_FP32:
                    a = a.to(tl.float32)
                    wt = wt.to(tl.float32)
                acc = tl.dot(a, wt, acc, input_precision=PRECISION)

    gx_row = _wide(b, INT64) * sxb + _wide(h_i, INT64) * sxh + _wide(w_i, INT64) * sxw
    tl.store(gx_ptr + (gx_row[:, None] + _wide(offs_n, INT64)[None, :] * sxc), acc.to(gx_ptr.dtype.element_ty),
             mask=in_m[:, None] & in_n[None, :])


@triton.jit
def deconv_grad_weight_kernel(
        x_ptr, g_ptr, part_ptr,
        B, CIN, H, W, COUT, HOUT, WOUT, CHUNK, SPLIT,
        sxb, sxc, sxh, sxw, sgb, sgc, sgh, sgw,
        S: tl.constexpr, K: tl.constexpr, P: tl.constexpr,
        DOT_FP32: tl.constexpr, PRECISION: tl.constexpr, INT64: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_P: tl.constexpr):
    """part[split, ci, co, kh, kw] = sum over pixels p of the split of x[p, ci] * g[p -> (kh, kw), co].

    For each tap (kh, kw), grad_weight[:, :, kh, kw] is the GEMM
    [CIN, B*H*W] x [B*H*W, COUT] of the input with the grad_out pixels that tap reached.
    The pixel reduction is split SPLIT ways (CHUNK pixels each, grid z = tap * SPLIT + split)
    so that small weights still fill the GPU; the float32 partials [SPLIT, CIN, COUT, K, K]
    are summed by the host (deterministic, unlike atomics).
    """
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    in_m = offs_m < CIN
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    in_n = offs_n < COUT
    z = tl.program_id(2)
    tap = z // SPLIT
    split = z % SPLIT
    kh = tap // K
    kw = tap % K
    npix = B * H * W
    start = split * CHUNK
    end = tl.minimum(start + CHUNK, npix)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for p0 in range(start, end, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        in_p = offs_p < end
        w_i = offs_p % W
        h_i = (offs_p // W) % H
        b = offs_p // (W * H)
        oh = h_i * S - P + kh
        ow = w_i * S - P + kw
        hit = in_p & (oh >= 0) & (oh < HOUT) & (ow >= 0) & (ow < WOUT)
        x_col = _wide(b, INT64) * sxb + _wide(h_i, INT64) * sxh + _wide(w_i, INT64) * sxw
        g_row = _wide(b, INT64) * sgb + _wide(oh, INT64) * sgh + _wide(ow, INT64) * sgw
        xa = tl.load(x_ptr + (_wide(offs_m, INT64)[:, None] * sxc + x_col[None, :]),
                     mask=in_m[:, None] & in_p[None, :], other=0.0)
        gb = tl.load(g_ptr + (g_row[:, None] + _wide(offs_n, INT64)[None, :] * sgc),
                     mask=hit[:, None] & in_n[None, :], other=0.0)
        if DOT_FP32:
            xa = xa.to(tl.float32)
            gb = gb.to(tl.float32)
        acc = tl.dot(xa, gb, acc, input_precision=PRECISION)

    if INT64:
        offs = ((split * CIN + offs_m[:, None]).to(tl.int64) * COUT + offs_n[None, :]) * (K * K) + tap
    else:
        offs = ((split * CIN + offs_m[:, None]) * COUT + offs_n[None, :]) * (K * K) + tap
    tl.store(part_ptr + offs, acc, mask=in_m[:, None] & in_n[None, :])


@triton.jit
def add_act_kernel(
        y_ptr, skip_ptr, out_ptr, N, C, H, W,
        syb, syc, syh, syw, ssb, ssc, ssh, ssw, sob, soc, soh, sow,
        HAS_SKIP: tl.constexpr, RELU: tl.constexpr, COMPUTE: tl.constexpr, INT64: tl.constexpr,
        BLOCK: tl.constexpr):
    """out = act(y + skip) elementwise over [B, C, H, W] tensors of any strides.

    The epilogue of the fallback path (cuDNN's conv_transpose2d computes y, bias
    included): reads y and skip once, writes out once (or into a channel slice of
    the concat buffer).
    """
    offs = _offsets(tl.program_id(0), BLOCK, INT64)
    valid = offs < N
    w_i = offs % W
    h_i = (offs // W) % H
    c = (offs // (W * H)) % C
    b = offs // (W * H * C)
    v = tl.load(y_ptr + b * syb + c * syc + h_i * syh + w_i * syw, mask=valid, other=0.0)
    v = v.to(COMPUTE)
    if HAS_SKIP:
        s = tl.load(skip_ptr + b * ssb + c * ssc + h_i * ssh + w_i * ssw, mask=valid, other=0.0)
        v += s.to(COMPUTE)
    if RELU:
        v = tl.maximum(v, 0.0)
    tl.store(out_ptr + b * sob + c * soc + h_i * soh + w_i * sow, v.to(out_ptr.dtype.element_ty), mask=valid)
