"""Confusion-matrix kernels for segmentation metrics: counts of (target, prediction) pairs.

Row = target class, column = predicted class; pixels whose target is ``ignore_index``
or whose target / prediction lies outside [0, K) are not counted (the host rejects
such labels before launch; the kernel masks them anyway, so nothing is ever read
or written out of bounds).

Two ways to accumulate, both deterministic (integer additions commute):

* LOCAL_HIST: each program walks ``iters`` blocks of BLOCK pixels and bins the pair
  index ``t * K + p`` into a private histogram of NUM_BINS >= K*K + 1 bins
  (``tl.histogram``; invalid pixels go to the spare bin K*K), then adds its non-zero
  bins to the global [K, K] int64 matrix with one atomic per bin. Global atomics:
  at most K*K per program instead of one per pixel. Used when K*K is small
  (NUM_BINS <= 4096, K <= 63).
* otherwise: one int64 atomic add per valid pixel into the global matrix.

Traffic: one read of each label (or of C logits per pixel, with the argmax fused),
nothing written but the K*K counts: read-bound, roofline = input bytes / bandwidth.
"""
import triton
import triton.language as tl


@triton.jit
def _argmax_over_classes(logits_ptr, b, s, valid, C, stride_b, stride_c, stride_s):
    """Index of the largest of the C logits of pixels (b, s); first index on ties, NaN
    counts as the largest (as torch.argmax)."""
    base = logits_ptr + b * stride_b + s * stride_s
    best = tl.load(base, mask=valid, other=0.0).to(tl.float32)
    best_idx = tl.zeros(best.shape, dtype=tl.int64)
    for c in range(1, C):
        v = tl.load(base + c * stride_c, mask=valid, other=0.0).to(tl.float32)
        take = (v > best) | ((v != v) & (best == best))
        best = tl.where(take, v, best)
        best_idx = tl.where(take, c, best_idx)
    return best_idx


@triton.jit
def confusion_matrix_kernel(
        target_ptr, pred_ptr, out_ptr, S, chunks_per_row, K, ignore_index,
        C, stride_b, stride_c, stride_s, iters,
        FROM_LOGITS: tl.constexpr, LOCAL_HIST: tl.constexpr, NUM_BINS: tl.constexpr, BLOCK: tl.constexpr):
    """out[t, p] += number of pixels with target t and prediction p.

    target: [B, S] integer labels, contiguous. Prediction: [B, S] integer labels,
    contiguous (FROM_LOGITS=False; the host passes B = 1, S = all pixels), or logits
    [B, C, S] with strides (stride_b, stride_c, stride_s) (FROM_LOGITS=True, argmax
    over C fused). Program (b * chunks_per_row + chunk) counts iters * BLOCK pixels
    of row b: one scalar division per program, none per pixel.
    """
    pid = tl.program_id(0)
    b = (pid // chunks_per_row).to(tl.int64)
    start = (pid % chunks_per_row).to(tl.int64) * iters * BLOCK
    if LOCAL_HIST:
        hist = tl.zeros([NUM_BINS], dtype=tl.int32)
    for it in range(iters):
        offs = start + it * BLOCK + tl.arange(0, BLOCK)
        in_range = offs < S
        t = tl.load(target_ptr + b * S + offs, mask=in_range, other=0).to(tl.int64)
        if FROM_LOGITS:
            p = _argmax_over_classes(pred_ptr, b, offs, in_range, C, stride_b, stride_c, stride_s)
        else:
            p = tl.load(pred_ptr + b * S + offs, mask=in_range, other=0).to(tl.int64)
        ok = in_range & (t != ignore_index) & (t >= 0) & (t < K) & (p >= 0) & (p < K)
        pair = t * K + p
        if LOCAL_HIST:
            bins = tl.where(ok, pair, K * K).to(tl.int32)
            hist += tl.histogram(bins, NUM_BINS)
        else:
            tl.atomic_add(out_ptr + tl.where(ok, pair, 0), tl.full(pair.shape, 1, tl.int64), mask=ok)
    if LOCAL_HIST:
        bin_ids = tl.arange(0, NUM_BINS)
        keep = (bin_ids < K * K) & (hist != 0)
        tl.atomic_add(out_ptr + bin_ids, hist.to(tl.int64), mask=keep)
