"""Semantic segmentation metrics from one accumulated confusion matrix.

Every metric of the lecture is a function of the [K, K] confusion matrix M
(row = target class, column = predicted class), counted by the fused kernel of
:func:`tritonvision.ops.confusion_matrix`. With TP_c = M[c, c], FP_c = sum_t M[t, c] - TP_c,
FN_c = sum_p M[c, p] - TP_c and n_c = sum_p M[c, p] the ground-truth pixels of class c:

* pixel accuracy = sum_c TP_c / sum_c n_c
* accuracy_c     = TP_c / n_c              (mean_accuracy: its mean over classes)
* IoU_c          = TP_c / (TP_c + FP_c + FN_c)   (miou: its mean over classes)
* FWIoU          = sum_c n_c / sum_c' n_c' * IoU_c
* Dice_c         = 2 TP_c / (2 TP_c + FP_c + FN_c)  (mean_dice: its mean over classes)
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from tritonvision.ops.confusion_matrix import confusion_matrix, confusion_matrix_from_logits

from ._metric import Metric


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den, NaN where den == 0 (the metric is undefined there)."""
    return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, float("nan")))


def metrics_from_confusion_matrix(confmat: Tensor) -> dict[str, Tensor]:
    """Every segmentation metric of a [K, K] confusion matrix (row = target, column = prediction).

    Returns float64 tensors: ``pixel_accuracy``, ``mean_accuracy``, ``miou``, ``fwiou``,
    ``mean_dice`` (scalars), ``accuracy``, ``iou``, ``dice`` (per class, [K]). A class
    absent from both prediction and target has NaN IoU and Dice; a class absent from
    the target has NaN accuracy; NaN classes are left out of the means. With no pixels
    counted at all every entry is NaN.
    """
    m = confmat.to(torch.float64)
    tp = m.diagonal()
    n_target = m.sum(dim=1)                # n_c: ground-truth pixels of class c (TP + FN)
    n_pred = m.sum(dim=0)                  # TP + FP
    total = m.sum()
    union = n_target + n_pred - tp         # TP + FP + FN
    iou = _ratio(tp, union)
    dice = _ratio(2 * tp, n_target + n_pred)
    accuracy = _ratio(tp, n_target)
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=m.device)
    has_pixels = total > 0
    return {
        "pixel_accuracy": torch.where(has_pixels, tp.sum() / total.clamp(min=1), nan),
        "accuracy": accuracy,
        "mean_accuracy": accuracy.nanmean(),
        "iou": iou,
        "miou": iou.nanmean(),
        # classes with NaN IoU have n_c = 0, so they carry no weight
        "fwiou": torch.where(has_pixels, (n_target / total.clamp(min=1) * iou.nan_to_num(0.0)).sum(), nan),
        "dice": dice,
        "mean_dice": dice.nanmean(),
    }


class SegmentationMetrics(Metric):
    """Accumulates a confusion matrix over batches and computes the lecture's metrics,
    torchmetrics-style (``update`` / ``compute`` / ``reset`` / ``merge``; an ``nn.Module``
    whose ``confmat`` buffer moves with ``.to(device)``).

    Args:
        num_classes: K.
        ignore_index: target value whose pixels are not counted (default -100, as torch's
            cross-entropy: no real label; 255 for VOC's borders). None counts every pixel,
            and then every target label must be in [0, K).
        drop_ignored_class: what to do when ``ignore_index`` is itself a class in [0, K).
            False (default): it stays a class -- its target pixels are not counted, but
            predicting it elsewhere counts as its false positives, so it enters the means
            (with IoU 0 when it is predicted). True: torchmetrics' convention -- it is left
            out of the means and its per-class results are NaN (predicting it on another
            class's pixels still counts as that class's false negatives).
        sync_on_compute: under ``torch.distributed``, ``compute()`` sums the confusion
            matrices of every rank (``all_reduce``) without changing this rank's counts.
        process_group: the group to sum over (default: the whole world).
        device: where the accumulated matrix lives (or move it with ``.to(device)``); give
            the device the predictions are on: otherwise the matrix moves there at the first
            ``update`` (one host-to-device copy, a sync). On CUDA ``update`` then never syncs
            and can be captured in a CUDA graph (out-of-range labels fail a device-side
            assertion instead of raising a ValueError).

    ``compute()`` returns a dict of float64 tensors: ``pixel_accuracy``, ``mean_accuracy``,
    ``iou`` ([K], per class), ``miou``, ``fwiou``, ``dice`` ([K], per class), ``mean_dice``,
    plus ``accuracy`` ([K], per-class recall) and ``confusion_matrix`` (the int64 [K, K]
    counts they come from, summed over the ranks). Definitions (TP/FP/FN per class from the
    matrix, n_c = ground-truth pixels of class c): IoU_c = TP/(TP+FP+FN); mIoU = mean of
    IoU_c; pixel accuracy = correct / total; FWIoU = sum_c n_c/total * IoU_c;
    Dice_c = 2TP/(2TP+FP+FN). **A class absent from both the predictions and the targets
    has NaN IoU and Dice and is left out of miou and mean_dice** (likewise a class
    absent from the targets for the per-class accuracy and mean_accuracy), so rare
    classes that never appear do not drag the means to 0 or 1.

    Example::

        metric = SegmentationMetrics(num_classes=21, ignore_index=255).to(device)
        for images, masks in loader:
            metric.update(model(images), masks)      # logits [B, C, H, W] or labels [B, H, W]
        print(metric.compute()["miou"])              # under torch.distributed: every rank's pixels
    """

    confmat: Tensor

    def __init__(self, num_classes: int, ignore_index: Optional[int] = -100, drop_ignored_class: bool = False,
                 sync_on_compute: bool = True, process_group=None, device: torch.device | str | None = None):
        super().__init__(sync_on_compute, process_group)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"SegmentationMetrics: num_classes must be a positive int, got {num_classes!r}")
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
            raise TypeError(f"SegmentationMetrics: ignore_index must be an int or None, got {ignore_index!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.drop_ignored_class = drop_ignored_class
        self.register_buffer("confmat", torch.zeros((num_classes, num_classes), dtype=torch.int64, device=device))

    def reset(self) -> None:
        """Forget everything counted so far."""
        self.confmat.zero_()

    @torch.no_grad()
    def update(self, preds: Tensor, target: Tensor) -> None:
        """Count one batch.

        Args:
            preds: class indices Tensor[B, *spatial] (integer) or logits Tensor[B, K, *spatial]
                (floating; argmax over K fused into the counting kernel).
            target: Tensor[B, *spatial] integer class indices in [0, K) or ``ignore_index``.
        """
        if preds.dtype.is_floating_point:
            if preds.dim() != target.dim() + 1 or preds.shape[1] != self.num_classes:
                raise ValueError(f"SegmentationMetrics.update: logits must be [B, {self.num_classes}, *spatial] "
                                 f"for target {list(target.shape)}, got {list(preds.shape)}")
            counts = confusion_matrix_from_logits(preds, target, self.ignore_index)
        else:
            counts = confusion_matrix(preds, target, self.num_classes, self.ignore_index)
        if self.confmat.device != counts.device:  # not built on / moved to their device: moves once
            self.confmat = self.confmat.to(counts.device)
        self.confmat += counts

    def merge(self, other: "SegmentationMetrics") -> "SegmentationMetrics":
        """Add another accumulator's counts into this one (e.g. from another worker); returns self."""
        if not isinstance(other, SegmentationMetrics) or other.num_classes != self.num_classes \
                or other.ignore_index != self.ignore_index:
            raise ValueError("SegmentationMetrics.merge: the other metric must be a SegmentationMetrics "
                             "with the same num_classes and ignore_index")
        self.confmat += other.confmat.to(self.confmat.device)
        return self

    def _local_state(self) -> Tensor:
        return self.confmat

    def _gather(self, state: Tensor, group) -> list[Tensor]:
        import torch.distributed as dist
        total = state.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
        return [total]

    def _reduce(self, states: list[Tensor]) -> Tensor:
        return states[0]

    def _load_state(self, state: Tensor) -> None:
        self.confmat.copy_(state)

    def compute(self) -> dict[str, Tensor]:
        """The metrics of everything counted so far (see the class docstring)."""
        confmat = self._state_for_compute()
        result = metrics_from_confusion_matrix(confmat)
        result["confusion_matrix"] = confmat.clone()
        dropped = self.ignore_index if self.drop_ignored_class and self.ignore_index is not None \
            and 0 <= self.ignore_index < self.num_classes else None
        if dropped is not None:
            for per_class, mean in (("iou", "miou"), ("dice", "mean_dice"), ("accuracy", "mean_accuracy")):
                result[per_class] = result[per_class].clone()
                result[per_class][dropped] = float("nan")
                result[mean] = result[per_class].nanmean()
        return result

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
                f"pixels={int(self.confmat.sum())}")
