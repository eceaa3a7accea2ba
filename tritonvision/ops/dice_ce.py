"""Fused softmax cross-entropy + Dice loss (MONAI's DiceCELoss conventions, plus ignore_index).

One custom op carries the heavy part:

* ``tritonvision::dice_ce_stats(logits, target, ignore_index, squared_pred)`` --
  reads logits [B, C, *spatial] and integer labels [B, *spatial] once and returns
  the per-(sample, class) sums ``[B, 5, C]`` (intersection, prediction, ground
  truth, label NLL, all-class NLL; see ``kernels/dice_ce.py``); differentiable,
  its backward ``tritonvision::dice_ce_stats_backward`` writes d loss / d logits in
  one more pass over the logits. No one-hot tensor is ever built.

:func:`dice_ce_loss` finishes the loss from those sums with ordinary torch ops on
[B, C] tensors, so every option (Dice reduction, class weights, label smoothing,
batch Dice, include_background, lambdas) is differentiated by autograd on the tiny
tensors and the per-pixel work stays in the two kernels. (We register the sums,
not the loss, as the op: one schema serves every option, and the backward kernel
receives exactly the per-class coefficients it needs as the sums' gradient.)

Semantics and choices (MONAI's DiceCELoss unless stated):

* softmax over dim 1; Dice per (sample, class) over the spatial dims, or per class
  over batch and spatial dims with ``batch=True``;
  ``f = 1 - (2 I + smooth_nr) / (P + G + smooth_dr)`` with I = sum p g,
  P = sum p (sum p^2 with ``squared_pred``), G = sum g.
* ``include_background=False`` drops class 0 from the Dice after the softmax over
  all classes (ignored, as MONAI, when C == 1); the cross-entropy keeps all classes.
* ``weight[C]`` weights the cross-entropy as torch's ``cross_entropy`` and multiplies
  the Dice term of each class (``weight[1:]`` without background) before the reduction.
* ``reduction`` ('mean', 'sum', 'none') reduces the Dice terms as MONAI's DiceLoss
  ('none' gives [B, C'] or, with ``batch``, [C'] -- without MONAI's trailing
  singleton spatial dims). The cross-entropy is always torch's ``cross_entropy``
  with ``reduction='mean'`` (weighted mean over non-ignored pixels, label smoothing
  as torch) -- unlike MONAI, which also sums the CE for reduction='sum'. With
  'none' the CE scalar is added to every Dice term.
* ``ignore_index`` pixels count in neither term and get zero gradient. Where no
  pixel counts (or their weights sum to 0) the CE term is 0, not torch's NaN.
* Labels outside [0, C) other than ``ignore_index`` fail when the op runs, on every
  backend (eager, compiled, exported). On CPU: a ValueError naming the label, checked
  before the computation. On CUDA, without a host sync (no value is read back in a
  training step, and the loss can be captured in a CUDA graph): the forward kernel
  counts them in its single pass over the labels (and masks them: it never indexes with
  a label), and a device-side assertion on the counts fails, as torch's cross_entropy
  does on a GPU -- "CUDA error: device-side assert triggered" at the next synchronising
  call, after which the process must restart; the same batch on CPU names the label.
  The backward is only reached after a forward that passed.
* The loss is float32 (float64 for float64 logits) whatever the logits dtype;
  the gradient has the logits' dtype. NaN logits give a NaN loss.
* ``sigmoid=True``: multi-label form, ``target`` a float mask of the logits' shape;
  BCE-with-logits (mean over all elements; ``weight[C]`` is the per-class
  ``pos_weight``, broadcast along dim 1 -- MONAI passes it to BCEWithLogitsLoss,
  which broadcasts it along the last dim) plus the sigmoid Dice (P and, with
  ``squared_pred``, G squared, as MONAI); its own op pair
  ``tritonvision::sigmoid_dice_bce_stats`` (+ ``_backward``) reads logits and mask
  once each way, like the softmax form. No ignore_index here (the mask is dense).

Implementation notes:

* Memory: besides the gradient, the forward allocates ``[B, P, 5, C]`` partial sums
  (P <= 1024 / B programs per sample) and a ``[B, P]`` int32 bad-label count; the
  backward allocates nothing but the gradient. Non-contiguous logits (channels_last)
  are copied to [B, C, S] first.
* Deterministic: each program writes its own partial sums, reduced by ``torch.sum``
  over the program axis (a fixed order); no atomics, so the same input gives
  bit-identical loss and gradient run to run.
* Labels may be any integer dtype (uint8 with ignore_index=255 is fine); a target of
  shape [B, 1, *spatial] is accepted as MONAI's label maps are.
* The Triton path holds the whole class axis in one register tile; above
  ``MAX_TRITON_CLASSES`` classes CUDA tensors run the torch implementation instead.
* First-order gradients only (no double backward). Negative class weights are not
  rejected (that check would need the weight's values on the host).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import triton
import torch.nn.functional as F
from torch import Tensor

from tritonvision.kernels import dice_ce as kernels

from ._checks import (assert_all_zero_async, check_float, check_integer, check_labels, check_same_device,
                      check_tensor)
from ._dtypes import compute_dtype, tl_compute_dtype
from ._launch import LaunchConfig
from ._op import fused_op

OP = "dice_ce_loss"
REDUCTIONS = ("mean", "sum", "none")
MAX_TRITON_CLASSES = 1024
"""Above this many classes the class axis no longer fits one register tile: the torch path runs."""
TILE_ELEMENTS = {torch.float32: 2048, torch.float64: 1024}
"""Logits per register tile (BLOCK_C * BLOCK_S) of the softmax kernels by compute dtype, on
SOFTMAX_WARPS warps: 8 (float32) or 4 (float64) per thread, zero register spills and >= 16
resident warps per SM on sm_90 at every class count (perf/results/sm90-static/resources.md).
On the H200 (window 1) tiles of 1024 with a per-tile reduction of the five sums ran the loss
at 1.4x eager and 0.38x torch.compile (B=8, C=21, 512^2, fp32): the forward now keeps
element-wise accumulators and reduces once per program. Kernel-test mode runs the same."""
PROGRAMS = 1024
"""Forward programs in all (over B samples): bounds the partial-sum buffer to ~PROGRAMS * 5 * C."""
MAX_GRID_Y = 65535
SOFTMAX_WARPS = 8
"""Warps per program of the softmax kernels."""
SIGMOID = {torch.float32: LaunchConfig(dict(BLOCK=1024)), torch.float64: LaunchConfig(dict(BLOCK=512))}
"""Sigmoid-form kernels by compute dtype: 8 (float32) or 4 (float64) elements per thread of 4 warps."""


def _bad_label_error(num_classes: int, ignore_index: int) -> Callable[[int], ValueError]:
    def error(label: int) -> ValueError:
        return ValueError(f"{OP}: target has label {label} but logits have {num_classes} classes "
                          f"(labels must be in [0, {num_classes}) or equal ignore_index={ignore_index}; "
                          f"set ignore_index={label} if those pixels should be ignored)")
    return error


def _check_labels(target: Tensor, num_classes: int, ignore_index: int) -> None:
    """Labels outside [0, num_classes) other than ignore_index: ValueError naming one off the GPU,
    a device-side assertion (no host sync) on CUDA; see ``_checks.check_labels``."""
    check_labels(target, num_classes, target == ignore_index, _bad_label_error(num_classes, ignore_index))


def _flat(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    b, c = logits.shape[0], logits.shape[1]
    s = math.prod(logits.shape[2:])
    return logits.reshape(b, c, s), target.reshape(b, s)


# ----------------------------------------------------------------------------- torch path
def _labels(logits: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor, Tensor, bool]:
    """x [B, C, S] in the compute dtype, safe labels [B, S] (0 where not valid), the valid mask, all valid?"""
    x, y = _flat(logits, target)
    x = x.to(compute_dtype(logits.dtype))
    y = y.long()
    valid = (y != ignore_index) & (y >= 0) & (y < x.shape[1])  # as the kernels: never index with a bad label
    all_valid = not x.is_cuda and bool(valid.all())  # on a GPU that read is a sync: always mask there
    return x, (y if all_valid else torch.where(valid, y, 0)), valid, all_valid


def _stats_torch(logits: Tensor, target: Tensor, ignore_index: int, squared_pred: bool) -> Tensor:
    """The five sums: per-label terms scatter-added over the labels (no one-hot), the all-class
    sums as reductions over the pixels; about five passes over [B, C, S] (CPU path)."""
    num_classes = logits.shape[1]
    x, y, valid, all_valid = _labels(logits, target, ignore_index)
    if not all_valid:  # some pixel is ignored or out of range: find out which before computing
        _check_labels(target, num_classes, ignore_index)
    logp = x.log_softmax(1)
    p = logp.exp()
    vf = valid.to(x.dtype)
    p_y = p.gather(1, y[:, None])[:, 0] * vf
    nll_y = logp.gather(1, y[:, None])[:, 0].neg_() * vf
    per_label = torch.stack([p_y, vf, nll_y], 1)                        # [B, 3, S]
    by_label = x.new_zeros(x.shape[0], 3, num_classes).scatter_add_(2, y[:, None].expand_as(per_label), per_label)
    pred = p * p if squared_pred else p
    if all_valid:
        pred_sum, nll_sum = pred.sum(2), logp.sum(2).neg_()
    else:
        pred_sum = torch.bmm(pred, vf[:, :, None])[:, :, 0]
        nll_sum = logp.masked_fill_(~valid[:, None], 0.0).sum(2).neg_()  # -inf logits of ignored pixels stay out
    return torch.stack([by_label[:, 0], pred_sum, by_label[:, 1], by_label[:, 2], nll_sum], 1)


def _stats_backward_torch(logits: Tensor, target: Tensor, grad_stats: Tensor, ignore_index: int,
                          squared_pred: bool) -> Tensor:
    """dL/dlogits from dL/dstats, the kernel's chain rule regrouped for few passes (CPU path):

        dL/dx_c = p_c (gP_c' + K) - gL_c + [c == y] (p_y gI_y - gN_y),
        K = sum_k gL_k + gN_y - sum_k p_k gP_k' - p_y gI_y,

    with gP_c' = gP_c (2 p_c gP_c with squared_pred), zero on pixels that are not valid.
    """
    x, y, valid, all_valid = _labels(logits, target, ignore_index)
    p = x.softmax(1)
    g = grad_stats.to(x.dtype)
    g_i, g_p, g_n, g_l = g[:, 0], g[:, 1], g[:, 3], g[:, 4]             # [B, C]
    p_y = p.gather(1, y[:, None])[:, 0]
    g_i_y, g_n_y = g_i.gather(1, y), g_n.gather(1, y)                    # [B, S]
    if squared_pred:
        p_gp = p * g_p[:, :, None]
        sum_pdp = 2.0 * (p_gp * p).sum(1)
    else:
        sum_pdp = torch.bmm(g_p[:, None, :], p)[:, 0]
    k = g_l.sum(1, keepdim=True) + g_n_y - sum_pdp - p_y * g_i_y
    grad = p * k[:, None]
    if squared_pred:
        grad.addcmul_(p_gp, p, value=2.0)
    else:
        grad.addcmul_(p, g_p[:, :, None])
    grad.sub_(g_l[:, :, None])
    grad.scatter_add_(1, y[:, None], (p_y * g_i_y - g_n_y)[:, None])
    if not all_valid:
        grad.masked_fill_(~valid[:, None], 0.0)
    return grad.to(logits.dtype).reshape(logits.shape)


# ----------------------------------------------------------------------------- triton path
def softmax_config(num_classes: int, dtype: torch.dtype) -> LaunchConfig:
    """The softmax kernels' tile: every class (BLOCK_C >= C) times BLOCK_S pixels."""
    block_c = max(triton.next_power_of_2(num_classes), 2)
    block_s = max(TILE_ELEMENTS[compute_dtype(dtype)] // block_c, 1)
    return LaunchConfig(dict(BLOCK_C=block_c, BLOCK_S=block_s), num_warps=SOFTMAX_WARPS)


def _stats_triton(logits: Tensor, target: Tensor, ignore_index: int, squared_pred: bool) -> Tensor:
    num_classes = logits.shape[1]
    if num_classes > MAX_TRITON_CLASSES:
        return _stats_torch(logits, target, ignore_index, squared_pred)
    x, y = _flat(logits, target)
    x, y = x.contiguous(), y.contiguous()
    b, c, s = x.shape
    if b * s == 0:
        return x.new_zeros((b, kernels.NUM_STATS, c), dtype=compute_dtype(logits.dtype))
    config = softmax_config(c, logits.dtype)
    num_tiles = triton.cdiv(s, config.tiles["BLOCK_S"])
    per_sample = min(num_tiles, max(1, PROGRAMS // b))
    part = torch.empty((b, per_sample, kernels.NUM_STATS, c), dtype=compute_dtype(logits.dtype),
                       device=x.device)
    bad = torch.empty((b, per_sample), dtype=torch.int32, device=x.device)
    for b0 in range(0, b, MAX_GRID_Y):
        b1 = min(b, b0 + MAX_GRID_Y)
        kernels.dice_ce_stats_kernel[(per_sample, b1 - b0)](
            x[b0:b1], y[b0:b1], part[b0:b1], bad[b0:b1], c, s, ignore_index, per_sample,
            SQUARED=squared_pred, COMPUTE=tl_compute_dtype(logits.dtype), **config.kwargs)
    # The kernel counted (and skipped) bad labels in the same pass. On CUDA a device-side
    # assertion on the counts (no host sync); in kernel-test mode (CPU) the counts are read and,
    # only on failure, the target again, to name the label in the error.
    if x.is_cuda:
        assert_all_zero_async(bad, f"{OP}: target has labels outside [0, {num_classes}) other than "
                                   f"ignore_index={ignore_index} (run on CPU to see which)")
    elif bool(bad.any()):
        _check_labels(target, num_classes, ignore_index)
        raise AssertionError("dice_ce_stats: kernel counted bad labels the host check did not find")
    return part.sum(1)  # fixed-order reduction over the programs: deterministic


def _stats_backward_triton(logits: Tensor, target: Tensor, grad_stats: Tensor, ignore_index: int,
                           squared_pred: bool) -> Tensor:
    num_classes = logits.shape[1]
    if num_classes > MAX_TRITON_CLASSES:
        return _stats_backward_torch(logits, target, grad_stats, ignore_index, squared_pred)
    x, y = _flat(logits, target)
    x, y = x.contiguous(), y.contiguous()
    b, c, s = x.shape
    grad = torch.empty_like(x)
    if grad.numel() == 0:
        return grad.reshape(logits.shape)
    g = grad_stats.to(compute_dtype(logits.dtype)).contiguous()
    config = softmax_config(c, logits.dtype)
    for b0 in range(0, b, MAX_GRID_Y):
        b1 = min(b, b0 + MAX_GRID_Y)
        kernels.dice_ce_stats_backward_kernel[(triton.cdiv(s, config.tiles["BLOCK_S"]), b1 - b0)](
            x[b0:b1], y[b0:b1], g[b0:b1], grad[b0:b1], c, s, ignore_index,
            SQUARED=squared_pred, COMPUTE=tl_compute_dtype(logits.dtype), **config.kwargs)
    return grad.reshape(logits.shape)


# ----------------------------------------------------------------------------- registration
def _example(device: torch.device) -> tuple:
    logits = torch.randn(2, 4, 6, 5, device=device)
    target = torch.randint(0, 4, (2, 6, 5), device=device)
    target[0, 0, :2] = -100
    return logits, target, -100, False


dice_ce_stats_op = fused_op("dice_ce_stats", _stats_torch, _stats_triton, example=_example)


@dice_ce_stats_op.register_fake
def _(logits: Tensor, target: Tensor, ignore_index: int, squared_pred: bool) -> Tensor:
    return logits.new_empty((logits.shape[0], kernels.NUM_STATS, logits.shape[1]),
                            dtype=compute_dtype(logits.dtype))


dice_ce_stats_backward_op = fused_op(
    "dice_ce_stats_backward", _stats_backward_torch, _stats_backward_triton,
    example=lambda d: (*_example(d)[:2], torch.randn(2, kernels.NUM_STATS, 4, device=d), -100, False))


@dice_ce_stats_backward_op.register_fake
def _(logits: Tensor, target: Tensor, grad_stats: Tensor, ignore_index: int, squared_pred: bool) -> Tensor:
    return torch.empty_like(logits)


def _setup_context(ctx, inputs, output):
    logits, target, ignore_index, squared_pred = inputs
    ctx.save_for_backward(logits, target)
    ctx.args = (ignore_index, squared_pred)


def _backward(ctx, grad_stats):
    logits, target = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad = dice_ce_stats_backward_op(logits, target, grad_stats, *ctx.args)
    return grad, None, None, None


dice_ce_stats_op.register_autograd(_backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------- sigmoid form

def _sigmoid_parts(logits: Tensor, target: Tensor):
    x = logits.to(compute_dtype(logits.dtype))
    return x, target.to(x.dtype), torch.sigmoid(x)


def _sigmoid_stats_torch(logits: Tensor, target: Tensor, squared_pred: bool) -> Tensor:
    x, t, p = _sigmoid_parts(logits, target)
    dims = list(range(2, x.dim()))
    return torch.stack([(p * t).sum(dims), (p * p if squared_pred else p).sum(dims),
                        (t * t if squared_pred else t).sum(dims), (t * F.softplus(-x)).sum(dims),
                        ((1 - t) * F.softplus(x)).sum(dims)], 1)


def _sigmoid_stats_backward_torch(logits: Tensor, target: Tensor, grad_stats: Tensor,
                                  squared_pred: bool) -> Tensor:
    x, t, p = _sigmoid_parts(logits, target)
    g = grad_stats.to(x.dtype).reshape(grad_stats.shape + (1,) * (x.dim() - 2))
    g_i, g_p, g_pos, g_neg = g[:, 0], g[:, 1], g[:, 3], g[:, 4]
    d_p = g_i * t + (2 * p * g_p if squared_pred else g_p)
    grad = d_p * p * (1 - p) - g_pos * t * (1 - p) + g_neg * (1 - t) * p
    return grad.to(logits.dtype)


def _rows(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    rows = logits.shape[0] * logits.shape[1]
    s = math.prod(logits.shape[2:])
    return logits.reshape(rows, s).contiguous(), target.reshape(rows, s).contiguous()


def _sigmoid_stats_triton(logits: Tensor, target: Tensor, squared_pred: bool) -> Tensor:
    b, c = logits.shape[0], logits.shape[1]
    x, t = _rows(logits, target)
    rows, s = x.shape
    if rows * s == 0:
        return x.new_zeros((b, kernels.NUM_STATS, c), dtype=compute_dtype(logits.dtype))
    config = SIGMOID[compute_dtype(logits.dtype)]
    per_row = min(triton.cdiv(s, config.tiles["BLOCK"]), max(1, PROGRAMS // rows))
    part = torch.empty((rows, per_row, kernels.NUM_STATS), dtype=compute_dtype(logits.dtype), device=x.device)
    for r0 in range(0, rows, MAX_GRID_Y):
        r1 = min(rows, r0 + MAX_GRID_Y)
        kernels.sigmoid_stats_kernel[(per_row, r1 - r0)](
            x[r0:r1], t[r0:r1], part[r0:r1], s, per_row, SQUARED=squared_pred,
            COMPUTE=tl_compute_dtype(logits.dtype), **config.kwargs)
    return part.sum(1).reshape(b, c, kernels.NUM_STATS).transpose(1, 2).contiguous()


def _sigmoid_stats_backward_triton(logits: Tensor, target: Tensor, grad_stats: Tensor,
                                   squared_pred: bool) -> Tensor:
    x, t = _rows(logits, target)
    rows, s = x.shape
    grad = torch.empty_like(x)
    if grad.numel() == 0:
        return grad.reshape(logits.shape)
    g = grad_stats.to(compute_dtype(logits.dtype)).transpose(1, 2).reshape(rows, kernels.NUM_STATS).contiguous()
    config = SIGMOID[compute_dtype(logits.dtype)]
    for r0 in range(0, rows, MAX_GRID_Y):
        r1 = min(rows, r0 + MAX_GRID_Y)
        kernels.sigmoid_stats_backward_kernel[(triton.cdiv(s, config.tiles["BLOCK"]), r1 - r0)](
            x[r0:r1], t[r0:r1], g[r0:r1], grad[r0:r1], s, SQUARED=squared_pred,
            COMPUTE=tl_compute_dtype(logits.dtype), **config.kwargs)
    return grad.reshape(logits.shape)


def _sigmoid_example(device: torch.device) -> tuple:
    return torch.randn(2, 3, 5, 4, device=device), (torch.rand(2, 3, 5, 4, device=device) > 0.5).float(), False


sigmoid_stats_op = fused_op("sigmoid_dice_bce_stats", _sigmoid_stats_torch, _sigmoid_stats_triton,
                            example=_sigmoid_example)


@sigmoid_stats_op.register_fake
def _(logits: Tensor, target: Tensor, squared_pred: bool) -> Tensor:
    return logits.new_empty((logits.shape[0], kernels.NUM_STATS, logits.shape[1]),
                            dtype=compute_dtype(logits.dtype))


sigmoid_stats_backward_op = fused_op(
    "sigmoid_dice_bce_stats_backward", _sigmoid_stats_backward_torch, _sigmoid_stats_backward_triton,
    example=lambda d: (*_sigmoid_example(d)[:2], torch.randn(2, kernels.NUM_STATS, 3, device=d), False))


@sigmoid_stats_backward_op.register_fake
def _(logits: Tensor, target: Tensor, grad_stats: Tensor, squared_pred: bool) -> Tensor:
    return torch.empty_like(logits)


def _sigmoid_setup_context(ctx, inputs, output):
    logits, target, squared_pred = inputs
    ctx.save_for_backward(logits, target)
    ctx.squared_pred = squared_pred


def _sigmoid_backward(ctx, grad_stats):
    logits, target = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad = sigmoid_stats_backward_op(logits, target, grad_stats, ctx.squared_pred)
    return grad, None, None


sigmoid_stats_op.register_autograd(_sigmoid_backward, setup_context=_sigmoid_setup_context)


# ----------------------------------------------------------------------------- the loss
def _check_args(logits: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str,
                sigmoid: bool, label_smoothing: float, lambda_ce: float, lambda_dice: float) -> Tensor:
    """Validate everything that does not need the data; returns target as [B, *spatial] (or the mask)."""
    check_float(logits, OP, "logits")
    check_tensor(target, OP, "target")
    if logits.dim() < 3:
        raise ValueError(f"{OP}: logits must have shape [B, C, *spatial] with 1 to 3 spatial dims, "
                         f"got {list(logits.shape)}")
    if logits.shape[1] == 0:
        raise ValueError(f"{OP}: logits must have at least one class, got shape {list(logits.shape)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{OP}: reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{OP}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if lambda_ce < 0 or lambda_dice < 0:
        raise ValueError(f"{OP}: lambda_ce and lambda_dice must be >= 0, got {lambda_ce} and {lambda_dice}")
    check_same_device(OP, logits=logits, target=target, weight=weight)
    if weight is not None:
        check_float(weight, OP, "weight")
        if weight.shape != (logits.shape[1],):
            raise ValueError(f"{OP}: weight must have shape [C] = [{logits.shape[1]}] (one weight per "
                             f"class), got {list(weight.shape)}")
    if sigmoid:
        if not target.dtype.is_floating_point:
            raise TypeError(f"{OP}: with sigmoid=True target must be a float mask of the logits' shape, "
                            f"got {target.dtype}; convert it with .float()")
        if target.shape != logits.shape:
            raise ValueError(f"{OP}: with sigmoid=True target must have the logits' shape "
                             f"{list(logits.shape)}, got {list(target.shape)}")
        if label_smoothing != 0.0:
            raise ValueError(f"{OP}: label_smoothing is not supported with sigmoid=True "
                             f"(smooth the float target instead)")
        return target
    if target.dtype.is_floating_point:
        raise TypeError(f"{OP}: target must be an integer tensor of class indices [B, *spatial], got "
                        f"{target.dtype}; convert it with .long(), or pass sigmoid=True for a float "
                        f"mask of the logits' shape")
    check_integer(target, OP, "target")
    expected = (logits.shape[0],) + tuple(logits.shape[2:])
    if target.dim() == logits.dim() and target.shape[1] == 1:
        target = target.squeeze(1)                       # MONAI's [B, 1, *spatial] label maps
    if tuple(target.shape) != expected:
        raise ValueError(f"{OP}: target must have shape [B, *spatial] = {list(expected)} (or "
                         f"[B, 1, *spatial]) for logits {list(logits.shape)}, got {list(target.shape)}")
    return target


def _reduce(f: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return f.mean()
    if reduction == "sum":
        return f.sum()
    return f


def _dice_terms(inter: Tensor, pred: Tensor, truth: Tensor, include_background: bool, smooth_nr: float,
                smooth_dr: float, batch: bool, weight: Optional[Tensor]) -> Tensor:
    """MONAI's per-(sample, class) Dice loss terms from [B, C] sums."""
    if batch:
        inter, pred, truth = inter.sum(0), pred.sum(0), truth.sum(0)
    if not include_background and inter.shape[-1] > 1:
        inter, pred, truth = inter[..., 1:], pred[..., 1:], truth[..., 1:]
        weight = weight[1:] if weight is not None else None
    f = 1.0 - (2.0 * inter + smooth_nr) / (pred + truth + smooth_dr)
    if weight is not None:
        f = f * weight.to(f.dtype)
    return f


def _combine(dice: Optional[Tensor], ce: Optional[Tensor], lambda_dice: float, lambda_ce: float,
             reduction: str, like: Tensor) -> Tensor:
    """lambda_dice * reduce(dice) + lambda_ce * ce; a term whose lambda is 0 is left out (its NaNs too).

    ``dice`` (the unreduced terms) is only needed when lambda_dice != 0 or reduction is 'none'
    (for the output shape); few, small ops, as each is a launch on the GPU.
    """
    total: Optional[Tensor] = None
    if lambda_dice != 0.0:
        total = _reduce(dice, reduction)
        total = total if lambda_dice == 1.0 else total * lambda_dice
    elif reduction == "none":
        total = torch.zeros_like(dice)
    if lambda_ce != 0.0:
        term = ce if lambda_ce == 1.0 else ce * lambda_ce
        total = term if total is None else total + term
    return total if total is not None else like.new_zeros(())


def _cross_entropy(stats: Tensor, weight: Optional[Tensor], label_smoothing: float) -> Tensor:
    """torch's cross_entropy (mean, weight, label_smoothing) from the sums; 0 where no pixel counts.

    Both terms are divided by the summed weight of the valid labels, sum_c w_c G_c, as torch
    does: ((1 - eps) sum_c w_c N_c + eps / C sum_c w_c L_c) / sum_c w_c G_c.
    """
    parts = stats[:, 2:]                                                    # G, N, L: [B, 3, C]
    if weight is not None:
        parts = parts * weight.to(stats.dtype)
    truth, nll, all_nll = parts.sum((0, 2)).unbind()
    denominator = truth.clamp_min(torch.finfo(stats.dtype).tiny)
    if label_smoothing == 0.0:
        return nll / denominator          # no valid pixel: nll is 0 too, so 0
    numerator = nll * (1.0 - label_smoothing) + all_nll * (label_smoothing / stats.shape[2])
    return torch.where(truth > 0, numerator / denominator, 0.0)


def _softmax_loss(logits: Tensor, target: Tensor, include_background: bool, smooth_nr: float,
                  smooth_dr: float, squared_pred: bool, batch: bool, lambda_ce: float, lambda_dice: float,
                  weight: Optional[Tensor], reduction: str, ignore_index: int, label_smoothing: float) -> Tensor:
    stats = dice_ce_stats_op(logits, target, int(ignore_index), bool(squared_pred))
    dice = ce = None
    if lambda_dice != 0.0 or reduction == "none":
        inter, pred, truth = stats[:, 0], stats[:, 1], stats[:, 2]          # each [B, C]
        dice = _dice_terms(inter, pred, truth, include_background, smooth_nr, smooth_dr, batch, weight)
    if lambda_ce != 0.0:
        ce = _cross_entropy(stats, weight, label_smoothing)
    return _combine(dice, ce, lambda_dice, lambda_ce, reduction, stats)


def _sigmoid_loss(logits: Tensor, target: Tensor, include_background: bool, smooth_nr: float,
                  smooth_dr: float, squared_pred: bool, batch: bool, lambda_ce: float, lambda_dice: float,
                  weight: Optional[Tensor], reduction: str) -> Tensor:
    stats = sigmoid_stats_op(logits, target, bool(squared_pred))
    dice = ce = None
    if lambda_dice != 0.0 or reduction == "none":
        inter, pred, truth = stats[:, 0], stats[:, 1], stats[:, 2]          # each [B, C]
        dice = _dice_terms(inter, pred, truth, include_background, smooth_nr, smooth_dr, batch, weight)
    if lambda_ce != 0.0:
        # BCE-with-logits, mean over all B * C * S elements, pos_weight[c] on the positive term
        pos = stats[:, 3] if weight is None else stats[:, 3] * weight.to(stats.dtype)
        ce = (pos.sum() + stats[:, 4].sum()) / max(logits.numel(), 1)
    return _combine(dice, ce, lambda_dice, lambda_ce, reduction, stats)


def dice_ce_loss(logits: Tensor, target: Tensor, *, include_background: bool = True,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, squared_pred: bool = False,
                 batch: bool = False, lambda_ce: float = 1.0, lambda_dice: float = 1.0,
                 weight: Optional[Tensor] = None, reduction: str = "mean", ignore_index: int = -100,
                 label_smoothing: float = 0.0, sigmoid: bool = False) -> Tensor:
    """Dice + cross-entropy loss of segmentation logits, fused (MONAI's DiceCELoss conventions).

    ``lambda_dice * reduce(dice_terms) + lambda_ce * cross_entropy``, where
    ``dice_terms[b, c] = weight[c] * (1 - (2 I + smooth_nr) / (P + G + smooth_dr))`` over the
    spatial dims of sample b (over the batch too with ``batch``), p = softmax(logits, 1),
    g the one-hot target (never built), I = sum p g, P = sum p (p**2 with ``squared_pred``),
    G = sum g; ``cross_entropy`` is ``torch.nn.functional.cross_entropy(logits, target,
    weight, ignore_index=ignore_index, label_smoothing=label_smoothing)`` (mean). With smooth 0,
    1 - dice_terms is the Dice coefficient 2 sum(p g) / (sum p + sum g). See the module
    docstring for every convention.

    Args:
        logits: Tensor[B, C, *spatial] (1 to 3 spatial dims), float16/bfloat16/float32/float64.
        target: Tensor[B, *spatial] (or [B, 1, *spatial]) of integer class indices in [0, C)
            or ``ignore_index``; with ``sigmoid=True`` a float Tensor[B, C, *spatial] mask.
        include_background: False drops class 0 from the Dice term (not from the CE).
        smooth_nr, smooth_dr: added to the Dice numerator and denominator.
        squared_pred: P = sum p**2 (and G = sum g**2) instead of sums of p and g.
        batch: one Dice term per class over the whole batch instead of per (sample, class).
        lambda_ce, lambda_dice: the weights of the two terms (>= 0; a 0 term is not computed).
        weight: optional Tensor[C] of class weights for the CE and the Dice terms
            (the BCE ``pos_weight`` per class with ``sigmoid``).
        reduction: 'mean' | 'sum' | 'none' over the Dice terms; the CE is always a mean.
        ignore_index: label of pixels that count in neither term (softmax form only).
        label_smoothing: as torch's cross_entropy (softmax form only).
        sigmoid: multi-label form: sigmoid Dice + BCE-with-logits against a float mask.
    Returns:
        Tensor: a scalar, or [B, C'] ([C'] with ``batch``) for reduction='none' (C' = C, or
        C - 1 without background), float32 (float64 for float64 logits).
    Raises:
        TypeError: non-float logits, float targets in the softmax form, int targets with sigmoid.
        ValueError: shapes that do not match, labels outside [0, C) other than ignore_index
            (for CUDA tensors the labels fail a device-side assertion instead; no host sync).
    """
    target = _check_args(logits, target, weight, reduction, sigmoid, label_smoothing, lambda_ce, lambda_dice)
    if sigmoid:
        return _sigmoid_loss(logits, target, include_background, float(smooth_nr), float(smooth_dr),
                             squared_pred, batch, float(lambda_ce), float(lambda_dice), weight, reduction)
    return _softmax_loss(logits, target, include_background, float(smooth_nr), float(smooth_dr), squared_pred,
                         batch, float(lambda_ce), float(lambda_dice), weight, reduction, int(ignore_index),
                         float(label_smoothing))


def dice_ce_stats(logits: Tensor, target: Tensor, ignore_index: int = -100, squared_pred: bool = False) -> Tensor:
    """The per-(sample, class) sums the fused loss is built from.

    Args:
        logits: Tensor[B, C, *spatial], any float dtype.
        target: Tensor[B, *spatial] of integer labels in [0, C) or ``ignore_index``.
    Returns:
        Tensor[B, 5, C] (float32, float64 for float64 logits): over the non-ignored pixels,
        [:, 0] = sum p [y == c], [:, 1] = sum p (p**2 with ``squared_pred``),
        [:, 2] = sum [y == c], [:, 3] = sum -log p [y == c], [:, 4] = sum -log p;
        p = softmax(logits, 1). Differentiable with respect to ``logits``.
    """
    target = _check_args(logits, target, None, "mean", False, 0.0, 1.0, 1.0)
    return dice_ce_stats_op(logits, target, int(ignore_index), bool(squared_pred))
