"""Segmentation losses as modules, thin wrappers over :func:`tritonvision.ops.dice_ce_loss`.

All take ``loss_fn(logits, target)``: logits [B, C, *spatial], target [B, *spatial]
integer labels (or, with ``sigmoid=True``, a float mask of the logits' shape).
Class weights are a buffer, so ``.to(device)`` moves them with the module.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from tritonvision.ops.dice_ce import dice_ce_loss

WeightLike = Union[Tensor, Sequence[float], None]


def _as_weight(weight: WeightLike) -> Optional[Tensor]:
    if weight is None:
        return None
    return torch.as_tensor(weight, dtype=torch.float32) if not isinstance(weight, Tensor) else weight


class DiceCELoss(nn.Module):
    """``lambda_dice * Dice + lambda_ce * CE`` of softmax (or sigmoid) segmentation logits, fused.

    Options and conventions as :func:`tritonvision.ops.dice_ce_loss` (MONAI's DiceCELoss,
    plus ``ignore_index``). Call as ``loss_fn(logits, target)``.
    """

    def __init__(self, *, include_background: bool = True, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
                 squared_pred: bool = False, batch: bool = False, lambda_ce: float = 1.0,
                 lambda_dice: float = 1.0, weight: WeightLike = None, reduction: str = "mean",
                 ignore_index: int = -100, label_smoothing: float = 0.0, sigmoid: bool = False) -> None:
        super().__init__()
        self.include_background = include_background
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
        self.squared_pred = squared_pred
        self.batch = batch
        self.lambda_ce = float(lambda_ce)
        self.lambda_dice = float(lambda_dice)
        self.reduction = reduction
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)
        self.sigmoid = sigmoid
        self.register_buffer("weight", _as_weight(weight))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return dice_ce_loss(
            logits, target, include_background=self.include_background, smooth_nr=self.smooth_nr,
            smooth_dr=self.smooth_dr, squared_pred=self.squared_pred, batch=self.batch,
            lambda_ce=self.lambda_ce, lambda_dice=self.lambda_dice, weight=self.weight,
            reduction=self.reduction, ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
            sigmoid=self.sigmoid)

    def extra_repr(self) -> str:
        return (f"lambda_dice={self.lambda_dice}, lambda_ce={self.lambda_ce}, "
                f"include_background={self.include_background}, batch={self.batch}, "
                f"reduction={self.reduction!r}, ignore_index={self.ignore_index}, sigmoid={self.sigmoid}")


class DiceLoss(DiceCELoss):
    """The Dice term alone (MONAI's DiceLoss with softmax and a one-hot target, plus ``ignore_index``)."""

    def __init__(self, *, include_background: bool = True, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
                 squared_pred: bool = False, batch: bool = False, weight: WeightLike = None,
                 reduction: str = "mean", ignore_index: int = -100, sigmoid: bool = False) -> None:
        super().__init__(include_background=include_background, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                         squared_pred=squared_pred, batch=batch, lambda_ce=0.0, lambda_dice=1.0,
                         weight=weight, reduction=reduction, ignore_index=ignore_index, sigmoid=sigmoid)


class CrossEntropy2d(DiceCELoss):
    """Softmax cross-entropy over dim 1, mean over non-ignored pixels, from the fused kernels.

    Equals ``torch.nn.functional.cross_entropy(logits, target, weight, ignore_index=...,
    label_smoothing=...)``, except that it is 0 (not NaN) when every pixel is ignored.
    Works for any number of spatial dims despite the name.
    """

    def __init__(self, weight: WeightLike = None, ignore_index: int = -100, label_smoothing: float = 0.0) -> None:
        super().__init__(lambda_ce=1.0, lambda_dice=0.0, weight=weight, ignore_index=ignore_index,
                         label_smoothing=label_smoothing)
