"""Softmax statistics for the fused Dice + cross-entropy loss, forward and backward.

Logits are viewed as [B, C, S] (S = the product of the spatial sizes, contiguous),
labels as [B, S] of any integer dtype. A pixel is *valid* when its label is in
[0, C) and differs from ``ignore_index``; other pixels count nowhere and get a zero
gradient (the host rejects labels outside [0, C) before launch; the kernels mask
them anyway, so no input makes them read or write out of bounds).

With p = softmax(x) over the classes and logp = log_softmax(x), the forward kernel
produces, per sample b and class c, five sums over the valid pixels s:

    STAT_I  intersection   I[b, c] = sum_s p[b, c, s] * [y[b, s] == c]
    STAT_P  prediction     P[b, c] = sum_s p[b, c, s]        (p**2 with SQUARED)
    STAT_G  ground truth   G[b, c] = sum_s [y[b, s] == c]
    STAT_N  label NLL      N[b, c] = sum_s -logp[b, c, s] * [y[b, s] == c]
    STAT_L  all-class NLL  L[b, c] = sum_s -logp[b, c, s]

Every Dice / weighted, label-smoothed cross-entropy variant is a function of these
[B, 5, C] numbers, so the loss itself is finished on the host on tiny tensors and
the one-hot target is never built. The backward kernel takes the gradient of the
loss with respect to these sums, gS[b, k, c], and applies the chain rule per pixel:

    dL/dp_c    = gP_c * (1, or 2 p_c with SQUARED) + gI_c [y == c]
    dL/dlogp_c = -gL_c - gN_c [y == c]
    dL/dx_c    = p_c (dL/dp_c - sum_k p_k dL/dp_k) + dL/dlogp_c - p_c sum_k dL/dlogp_k

(the last line is the softmax and log-softmax Jacobians; both class sums are made
in registers over the whole class tile).
"""
import triton
import triton.language as tl

STAT_I, STAT_P, STAT_G, STAT_N, STAT_L = 0, 1, 2, 3, 4
NUM_STATS = 5


@triton.jit
def _softmax_tile(x_ptr, y_ptr, b, offs_s, C, S, ignore_index,
                  COMPUTE: tl.constexpr, BLOCK_C: tl.constexpr):
    """Load a [BLOCK_C, BLOCK_S] tile of logits of sample b and its labels.

    Returns p, logp (padded classes: p = 0, logp = -inf), the label-hit mask
    ``hit[c, s] = valid[s] & (y[s] == c)``, the valid mask over [BLOCK_C, BLOCK_S] and
    the [BLOCK_S] mask of labels outside [0, C) that are not ignore_index.
    """
    offs_c = tl.arange(0, BLOCK_C)
    in_c = offs_c < C
    in_s = offs_s < S
    y = tl.load(y_ptr + b * S + offs_s, mask=in_s, other=0).to(tl.int64)
    counted = in_s & (y != ignore_index)
    valid = counted & (y >= 0) & (y < C)
    tile_in = in_c[:, None] & in_s[None, :]
    x = tl.load(x_ptr + b * C * S + offs_c[:, None].to(tl.int64) * S + offs_s[None, :], mask=tile_in, other=0.0)
    x = tl.where(in_c[:, None], x.to(COMPUTE), float("-inf"))
    x_max = tl.max(x, axis=0)
    shifted = x - x_max[None, :]
    e = tl.exp(shifted)
    denom = tl.sum(e, axis=0)
    p = e / denom[None, :]
    logp = shifted - tl.log(denom)[None, :]
    valid2d = valid[None, :] & in_c[:, None]
    hit = valid2d & (offs_c[:, None] == y[None, :])
    return p, logp, hit, valid2d, counted & ~valid


@triton.jit
def dice_ce_stats_kernel(x_ptr, y_ptr, part_ptr, bad_ptr, C, S, ignore_index, programs_per_sample,
                         SQUARED: tl.constexpr, COMPUTE: tl.constexpr,
                         BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    """Partial sums part[b, j, k, c] (k = STAT_I..STAT_L) over the pixel tiles of program j,
    and bad[b, j], the number of labels there outside [0, C) and not ignore_index.

    Grid (programs_per_sample, B). Program j of sample b visits the BLOCK_S-pixel tiles
    j, j + programs_per_sample, ... (a fixed assignment), accumulates the five sums
    element-wise over its tiles in registers in COMPUTE precision (fp32, fp64 for fp64
    logits), reduces them over the pixels once at the end and writes them once. The host sums part over j with torch.sum, a fixed-order reduction, so the
    result is deterministic: no atomics anywhere. The host raises if any bad count is
    non-zero: the label check rides on this pass instead of another read of the labels.

    Softmax over the C classes is one pass in registers: the whole class axis is one
    tile (BLOCK_C >= C), so each logit is read exactly once. Traffic: B*C*S logits
    + B*S labels read, B * programs_per_sample * 5 * C sums written (small).
    """
    j = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    # element-wise [BLOCK_C, BLOCK_S] accumulators, reduced over the pixels once at the end:
    # a reduction per tile would cost five cross-warp reductions for every BLOCK_S pixels
    acc_i = tl.zeros((BLOCK_C, BLOCK_S), dtype=COMPUTE)
    acc_p = tl.zeros((BLOCK_C, BLOCK_S), dtype=COMPUTE)
    acc_g = tl.zeros((BLOCK_C, BLOCK_S), dtype=COMPUTE)
    acc_n = tl.zeros((BLOCK_C, BLOCK_S), dtype=COMPUTE)
    acc_l = tl.zeros((BLOCK_C, BLOCK_S), dtype=COMPUTE)
    n_bad = tl.zeros((BLOCK_S,), dtype=tl.int32)
    # loop over tile starts (not tile numbers) so the offset is int64 whenever S is
    for start in range(j * BLOCK_S, S, programs_per_sample * BLOCK_S):
        offs_s = start + tl.arange(0, BLOCK_S).to(tl.int64)
        p, logp, hit, valid2d, bad = _softmax_tile(x_ptr, y_ptr, b, offs_s, C, S, ignore_index,
                                                   COMPUTE, BLOCK_C)
        n_bad += bad.to(tl.int32)
        acc_i += tl.where(hit, p, 0.0)
        if SQUARED:
            acc_p += tl.where(valid2d, p * p, 0.0)
        else:
            acc_p += tl.where(valid2d, p, 0.0)
        acc_g += tl.where(hit, 1.0, 0.0).to(COMPUTE)
        acc_n += tl.where(hit, -logp, 0.0)
        acc_l += tl.where(valid2d, -logp, 0.0)
    acc_i = tl.sum(acc_i, axis=1)
    acc_p = tl.sum(acc_p, axis=1)
    acc_g = tl.sum(acc_g, axis=1)
    acc_n = tl.sum(acc_n, axis=1)
    acc_l = tl.sum(acc_l, axis=1)
    offs_c = tl.arange(0, BLOCK_C)
    in_c = offs_c < C
    out = part_ptr + (b * programs_per_sample + j) * 5 * C + offs_c
    dtype = part_ptr.dtype.element_ty
    tl.store(out + 0 * C, acc_i.to(dtype), mask=in_c)
    tl.store(out + 1 * C, acc_p.to(dtype), mask=in_c)
    tl.store(out + 2 * C, acc_g.to(dtype), mask=in_c)
    tl.store(out + 3 * C, acc_n.to(dtype), mask=in_c)
    tl.store(out + 4 * C, acc_l.to(dtype), mask=in_c)
    tl.store(bad_ptr + b * programs_per_sample + j, tl.sum(n_bad, axis=0))


@triton.jit
def dice_ce_stats_backward_kernel(x_ptr, y_ptr, gstats_ptr, gx_ptr, C, S, ignore_index,
                                  SQUARED: tl.constexpr, COMPUTE: tl.constexpr,
                                  BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    """gx[b, :, s] = dL/dx for one BLOCK_S-pixel tile from the gradient gS[b, 5, C] of the sums.

    Grid (cdiv(S, BLOCK_S), B). Recomputes the softmax of the tile in registers
    (cheaper than saving it), forms the two per-pixel class sums
    sum_k p_k dL/dp_k and sum_k dL/dlogp_k, and writes the gradient once (zero on
    ignored pixels). Traffic: B*C*S logits + B*S labels read, B*C*S gradients
    written, 4*C gradient sums per program (cached). With the forward, the whole
    loss reads the logits and labels twice and writes the gradient once.
    """
    offs_s = tl.program_id(0).to(tl.int64) * BLOCK_S + tl.arange(0, BLOCK_S)
    b = tl.program_id(1).to(tl.int64)
    p, logp, hit, valid2d, _ = _softmax_tile(x_ptr, y_ptr, b, offs_s, C, S, ignore_index,
                                             COMPUTE, BLOCK_C)
    offs_c = tl.arange(0, BLOCK_C)
    in_c = offs_c < C
    g_ptr = gstats_ptr + b * 5 * C + offs_c
    g_i = tl.load(g_ptr + 0 * C, mask=in_c, other=0.0).to(COMPUTE)
    g_p = tl.load(g_ptr + 1 * C, mask=in_c, other=0.0).to(COMPUTE)
    g_n = tl.load(g_ptr + 3 * C, mask=in_c, other=0.0).to(COMPUTE)
    g_l = tl.load(g_ptr + 4 * C, mask=in_c, other=0.0).to(COMPUTE)
    if SQUARED:
        d_p = 2.0 * p * g_p[:, None]
    else:
        d_p = tl.zeros_like(p) + g_p[:, None]
    d_p = tl.where(hit, d_p + g_i[:, None], d_p)
    d_p = tl.where(valid2d, d_p, 0.0)
    d_logp = tl.where(hit, -g_l[:, None] - g_n[:, None], -g_l[:, None])
    d_logp = tl.where(valid2d, d_logp, 0.0)
    sum_pdp = tl.sum(p * d_p, axis=0)
    sum_dlogp = tl.sum(d_logp, axis=0)
    gx = p * (d_p - sum_pdp[None, :]) + d_logp - p * sum_dlogp[None, :]
    tile_in = in_c[:, None] & (offs_s < S)[None, :]
    tl.store(gx_ptr + b * C * S + offs_c[:, None].to(tl.int64) * S + offs_s[None, :],
             gx.to(gx_ptr.dtype.element_ty), mask=tile_in)


# ----------------------------------------------------------------------------- sigmoid form
SIG_I, SIG_P, SIG_G, SIG_POS, SIG_NEG = 0, 1, 2, 3, 4


@triton.jit
def _softplus(x):
    """log(1 + exp(x)) without overflow (log1p does not run in the interpreter)."""
    return tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def sigmoid_stats_kernel(x_ptr, t_ptr, part_ptr, S, programs_per_row,
                         SQUARED: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """Multi-label (sigmoid) form: partial sums part[r, j, k] over row r = b * C + c of [B*C, S].

    With p = sigmoid(x) and t the float target:
    k = SIG_I sum p t, SIG_P sum p (p**2 with SQUARED), SIG_G sum t (t**2 with SQUARED),
    SIG_POS sum t softplus(-x), SIG_NEG sum (1 - t) softplus(x) -- the BCE-with-logits of
    class c is pos_weight[c] * POS + NEG, so the class weight is applied on the host.
    Grid (programs_per_row, B*C); program j visits tiles j, j + programs_per_row, ...;
    the host sums part over j in a fixed order (deterministic). Traffic: logits and
    target read once, 5 sums per program written.
    """
    j = tl.program_id(0)
    r = tl.program_id(1).to(tl.int64)
    acc_i = tl.zeros((BLOCK,), dtype=COMPUTE)
    acc_p = tl.zeros((BLOCK,), dtype=COMPUTE)
    acc_g = tl.zeros((BLOCK,), dtype=COMPUTE)
    acc_pos = tl.zeros((BLOCK,), dtype=COMPUTE)
    acc_neg = tl.zeros((BLOCK,), dtype=COMPUTE)
    for start in range(j * BLOCK, S, programs_per_row * BLOCK):
        offs = start + tl.arange(0, BLOCK).to(tl.int64)
        inside = offs < S
        x = tl.load(x_ptr + r * S + offs, mask=inside, other=0.0).to(COMPUTE)
        t = tl.load(t_ptr + r * S + offs, mask=inside, other=0.0).to(COMPUTE)
        p = tl.where(inside, 1.0 / (1.0 + tl.exp(-x)), 0.0)
        acc_i += p * t
        if SQUARED:
            acc_p += p * p
            acc_g += t * t
        else:
            acc_p += p
            acc_g += t
        acc_pos += t * _softplus(-x)
        acc_neg += tl.where(inside, (1.0 - t) * _softplus(x), 0.0)
    out = part_ptr + (r * programs_per_row + j) * 5
    dtype = part_ptr.dtype.element_ty
    tl.store(out + 0, tl.sum(acc_i, axis=0).to(dtype))
    tl.store(out + 1, tl.sum(acc_p, axis=0).to(dtype))
    tl.store(out + 2, tl.sum(acc_g, axis=0).to(dtype))
    tl.store(out + 3, tl.sum(acc_pos, axis=0).to(dtype))
    tl.store(out + 4, tl.sum(acc_neg, axis=0).to(dtype))


@triton.jit
def sigmoid_stats_backward_kernel(x_ptr, t_ptr, gstats_ptr, gx_ptr, S,
                                  SQUARED: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """gx = dL/dx of row r = b * C + c from the gradient gS[r, 5] of the sigmoid sums:

        dL/dp = gI t + gP (1, or 2 p with SQUARED);
        dL/dx = dL/dp * p (1 - p) - gPOS t (1 - p) + gNEG (1 - t) p.

    Grid (cdiv(S, BLOCK), B*C). Traffic: logits and target read, gradient written once.
    """
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    r = tl.program_id(1).to(tl.int64)
    inside = offs < S
    x = tl.load(x_ptr + r * S + offs, mask=inside, other=0.0).to(COMPUTE)
    t = tl.load(t_ptr + r * S + offs, mask=inside, other=0.0).to(COMPUTE)
    g_i = tl.load(gstats_ptr + r * 5 + 0).to(COMPUTE)
    g_p = tl.load(gstats_ptr + r * 5 + 1).to(COMPUTE)
    g_pos = tl.load(gstats_ptr + r * 5 + 3).to(COMPUTE)
    g_neg = tl.load(gstats_ptr + r * 5 + 4).to(COMPUTE)
    p = 1.0 / (1.0 + tl.exp(-x))
    if SQUARED:
        d_p = g_i * t + 2.0 * p * g_p
    else:
        d_p = g_i * t + g_p
    gx = d_p * p * (1.0 - p) - g_pos * t * (1.0 - p) + g_neg * (1.0 - t) * p
    tl.store(gx_ptr + r * S + offs, gx.to(gx_ptr.dtype.element_ty), mask=inside)
