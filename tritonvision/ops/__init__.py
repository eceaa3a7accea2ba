"""Fused ops, registered as ``torch.ops.tritonvision.*``; the public functions live here."""
from ._op import is_reference, reference
from .box_geometry import box_area, box_convert
from .upsample import upsample_bilinear_add
from .confusion_matrix import confusion_matrix, confusion_matrix_from_logits
from .dice_ce import dice_ce_loss, dice_ce_stats
from .deconv import deconv_concat, deconv_skip
from .box_iou import (box_iou, box_iou_threshold, box_overlap, complete_box_iou, distance_box_iou,
                      generalized_box_iou, unpack_bitmask)
from .nms import batched_nms, batched_nms_padded, nms

__all__ = [
    "reference", "is_reference",
    "upsample_bilinear_add", "confusion_matrix", "confusion_matrix_from_logits",
    "dice_ce_loss", "dice_ce_stats",
    "deconv_concat", "deconv_skip",
    "box_area", "box_convert", "box_iou", "box_iou_threshold", "box_overlap", "complete_box_iou",
    "distance_box_iou", "generalized_box_iou", "unpack_bitmask",
    "nms", "batched_nms", "batched_nms_padded",
]
