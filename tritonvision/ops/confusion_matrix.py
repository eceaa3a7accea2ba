"""The segmentation confusion matrix, from class-index maps or straight from logits.

Two custom ops (integer outputs, not differentiable):

* ``tritonvision::confusion_matrix(preds, target, num_classes, ignore_index)`` -- flat
  integer labels;
* ``tritonvision::confusion_matrix_from_logits(logits, target, ignore_index)`` -- logits
  [B, C, S] with the argmax over C fused into the counting kernel (the [B, S] label
  map is never written).

Both return ``Tensor[K, K]`` int64, row = target, column = prediction. Pixels whose
target equals ``ignore_index`` are skipped; labels outside [0, K) are rejected by
the public functions (a ValueError naming the label on CPU, a device-side assertion
without a host sync on CUDA) and never counted by the kernels.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
from torch import Tensor

from tritonvision.kernels import confusion_matrix as kernels

from ._checks import check_integer, check_labels, check_same_device, check_tensor
from ._launch import LaunchConfig
from ._op import fused_op

COUNT = LaunchConfig(dict(BLOCK=1024))
"""confusion_matrix_kernel: 8 pixels per thread of 4 warps (>= 20 resident warps per SM on sm_90 at
every histogram size: perf/results/sm90-static/resources.md; not yet measured on a GPU).
Kernel-test mode runs the same."""
MAX_LOCAL_BINS = 4096
NO_IGNORE = -1
"""ignore_index passed to the kernels when nothing is ignored: negative labels are never counted."""


def _count_torch(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    k = num_classes
    t, p = target.reshape(-1).long(), pred.reshape(-1).long()
    ok = (t != ignore_index) & (t >= 0) & (t < k) & (p >= 0) & (p < k)
    pairs = torch.where(ok, t * k + p, k * k)
    return torch.bincount(pairs, minlength=k * k + 1)[:k * k].reshape(k, k)


def _launch(target: Tensor, pred_or_logits: Tensor, num_classes: int, ignore_index: int,
            from_logits: bool) -> Tensor:
    k = num_classes
    out = torch.zeros((k, k), dtype=torch.int64, device=target.device)
    n_pixels = target.numel()
    if n_pixels == 0 or k == 0:
        return out
    if from_logits:
        rows, s = target.shape                                  # target [B, S], logits [B, C, S]
        c, strides = pred_or_logits.shape[1], pred_or_logits.stride()
    else:
        rows, s = 1, n_pixels
        pred_or_logits = pred_or_logits.reshape(-1).contiguous()
        c, strides = 1, (0, 0, 0)
    target = target.reshape(-1).contiguous()
    num_bins = triton.next_power_of_2(k * k + 1)
    local = num_bins <= MAX_LOCAL_BINS
    # long rows get more blocks per program, hence fewer global atomics
    block = COUNT.tiles["BLOCK"]
    iters = 16 if s >= 16 * 64 * block else 4 if s >= 4 * 16 * block else 1
    chunks = triton.cdiv(s, iters * block)
    kernels.confusion_matrix_kernel[(rows * chunks,)](
        target, pred_or_logits, out, s, chunks, k, ignore_index, c, *strides, iters,
        FROM_LOGITS=from_logits, LOCAL_HIST=local, NUM_BINS=num_bins if local else 1, **COUNT.kwargs)
    return out


# ----------------------------------------------------------------------------- labels
def _labels_torch(preds: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    return _count_torch(preds, target, num_classes, ignore_index)


def _labels_triton(preds: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    return _launch(target, preds, num_classes, ignore_index, from_logits=False)


confusion_matrix_op = fused_op(
    "confusion_matrix", _labels_torch, _labels_triton,
    example=lambda d: (torch.randint(0, 4, (2, 8, 8), device=d), torch.randint(0, 4, (2, 8, 8), device=d),
                       4, NO_IGNORE))


@confusion_matrix_op.register_fake
def _(preds: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    return target.new_empty((num_classes, num_classes), dtype=torch.int64)


# ----------------------------------------------------------------------------- logits
def _logits_torch(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    return _count_torch(logits.argmax(dim=1), target, logits.shape[1], ignore_index)


def _logits_triton(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    return _launch(target, logits, logits.shape[1], ignore_index, from_logits=True)


confusion_matrix_from_logits_op = fused_op(
    "confusion_matrix_from_logits", _logits_torch, _logits_triton,
    example=lambda d: (torch.randn(2, 4, 64, device=d), torch.randint(0, 4, (2, 64), device=d), NO_IGNORE))


@confusion_matrix_from_logits_op.register_fake
def _(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    return target.new_empty((logits.shape[1], logits.shape[1]), dtype=torch.int64)


# ----------------------------------------------------------------------------- public API
def _check_label_range(op: str, labels: Tensor, name: str, num_classes: int,
                       ignored: Optional[Tensor]) -> None:
    """Fail if ``labels`` (outside the ignored pixels) leave [0, num_classes): a ValueError naming
    the label off the GPU, a device-side assertion (no host sync) on CUDA. Eager only."""
    if labels.numel() == 0 or torch.compiler.is_compiling():
        return

    def error(value: int) -> ValueError:
        hint = (f" (set ignore_index={value} if those pixels should be ignored)"
                if name == "target" else " (predictions must be class indices in [0, num_classes))")
        return ValueError(f"{op}: {name} has label {value} but num_classes is {num_classes}{hint}")
    check_labels(labels, num_classes, ignored, error)


def _check_ignore_index(op: str, ignore_index: Optional[int]) -> int:
    if ignore_index is None:
        return NO_IGNORE
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"{op}: ignore_index must be an int or None, got {ignore_index!r}")
    return ignore_index


def confusion_matrix(preds: Tensor, target: Tensor, num_classes: int,
                     ignore_index: Optional[int] = -100) -> Tensor:
    """Confusion matrix of a segmentation (or classification) prediction.

    Args:
        preds: Tensor[B, *spatial] of integer class indices (any integer dtype), or
            logits Tensor[B, C, *spatial] (floating; argmax over C, fused -- see
            :func:`confusion_matrix_from_logits`).
        target: Tensor[B, *spatial] of integer class indices (e.g. uint8 masks with 255).
        num_classes: K; labels must lie in [0, K) (ValueError otherwise, naming the label; on
            CUDA a device-side assertion, as torch's cross_entropy, so that nothing syncs).
        ignore_index: target pixels with this value are not counted; None ignores nothing.
    Returns:
        Tensor[K, K] int64: entry [t, p] counts pixels with target t predicted as p
        (row = target, column = prediction). Deterministic.
    """
    op = "confusion_matrix"
    check_tensor(preds, op, "preds")
    check_integer(target, op, "target")
    if preds.dtype.is_floating_point:
        if preds.dim() != target.dim() + 1:
            raise TypeError(f"{op}: preds must be integer class indices [B, *spatial] or floating logits "
                            f"[B, C, *spatial], got {preds.dtype} {list(preds.shape)} for target "
                            f"{list(target.shape)}; convert labels with .long()")
        if preds.shape[1] != num_classes:
            raise ValueError(f"{op}: logits have {preds.shape[1]} classes but num_classes is {num_classes}")
        return confusion_matrix_from_logits(preds, target, ignore_index)
    check_integer(preds, op, "preds")
    check_same_device(op, preds=preds, target=target)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{op}: num_classes must be a positive int, got {num_classes!r}")
    if preds.shape != target.shape:
        raise ValueError(f"{op}: preds and target must have the same shape [B, *spatial], "
                         f"got {list(preds.shape)} and {list(target.shape)} (pass logits as [B, C, *spatial])")
    ignore = _check_ignore_index(op, ignore_index)
    ignored = target == ignore if ignore_index is not None else None
    _check_label_range(op, target, "target", num_classes, ignored)
    _check_label_range(op, preds, "preds", num_classes, ignored)
    return confusion_matrix_op(preds, target, num_classes, ignore)


def confusion_matrix_from_logits(logits: Tensor, target: Tensor, ignore_index: Optional[int] = -100) -> Tensor:
    """Confusion matrix of ``logits.argmax(1)`` against ``target``, the argmax fused in the kernel.

    Args:
        logits: Tensor[B, C, *spatial], float16/bfloat16/float32/float64, any strides
            (contiguous and channels-last are read in place). Ties go to the lower class
            index and NaN counts as the largest value, as ``torch.argmax``.
        target: Tensor[B, *spatial] integer class indices in [0, C) or ``ignore_index``.
        ignore_index: as in :func:`confusion_matrix`.
    Returns:
        Tensor[C, C] int64, row = target, column = predicted class.
    """
    op = "confusion_matrix_from_logits"
    check_tensor(logits, op, "logits")
    if not logits.dtype.is_floating_point:
        raise TypeError(f"{op}: logits must be a floating tensor, got {logits.dtype}; "
                        f"pass class indices to confusion_matrix instead")
    check_integer(target, op, "target")
    check_same_device(op, logits=logits, target=target)
    if logits.dim() < 2 or logits.dim() != target.dim() + 1 or logits.shape[0] != target.shape[0] \
            or logits.shape[2:] != target.shape[1:]:
        raise ValueError(f"{op}: logits must be [B, C, *spatial] and target [B, *spatial], "
                         f"got {list(logits.shape)} and {list(target.shape)}")
    if logits.shape[1] < 1:
        raise ValueError(f"{op}: logits must have at least one class, got {list(logits.shape)}")
    num_classes = logits.shape[1]
    ignore = _check_ignore_index(op, ignore_index)
    ignored = target == ignore if ignore_index is not None else None
    _check_label_range(op, target, "target", num_classes, ignored)
    flat = logits.flatten(2) if logits.dim() > 2 else logits.unsqueeze(-1)      # [B, C, S], a view
    flat_target = target.flatten(1) if target.dim() > 1 else target.unsqueeze(-1)
    return confusion_matrix_from_logits_op(flat, flat_target, ignore)
