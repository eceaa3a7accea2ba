"""The YOLOv1 loss, fully vectorised (the target grid is built with scatters, no loop over boxes).

For each ground-truth object, the cell containing its centre is responsible for it, and
within that cell the predictor whose box has the highest IoU with it (YOLOv1; with anchors,
the anchor whose shape has the highest IoU with the object's shape, as YOLOv2 assigns).
With ``1obj`` the responsible slots and ``1noobj`` the others (Redmon et al. 2016, eq. 3)::

    loss = lambda_coord * sum 1obj [(x - x^)^2 + (y - y^)^2]
         + lambda_coord * sum 1obj [(sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
         + sum 1obj (C - C^)^2 + lambda_noobj * sum 1noobj (C - C^)^2
         + sum_{cells with an object} sum_c (p(c) - p^(c))^2

divided by the batch size. ``x, y`` are offsets in the cell; ``w, h`` fractions of the
image; the confidence target ``C^`` is the IoU of the responsible predicted box with the
object (detached; ``rescore=False`` uses 1). With anchors the size terms regress ``tw`` on
``log(w / anchor_w)`` (YOLOv2) and the class term is per responsible anchor.

If two objects fall on the same responsible slot (or, for the v1 class term, the same
cell), the one listed last in its image keeps it -- deterministically, on every device.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from tritonvision.ops import box_convert, box_overlap

Targets = Union[Sequence[dict], "tuple[Tensor, Tensor]"]


def pad_targets(targets: Sequence[dict], device: Optional[torch.device] = None
                ) -> tuple[Tensor, Tensor]:
    """A list of per-image ``{"boxes": [K_i, 4], "labels": [K_i]}`` -> padded
    ``boxes`` float32 [N, K, 4] and ``labels`` int64 [N, K] with -1 in padding rows
    (K = max K_i, at least 1)."""
    k = max([1] + [int(t["labels"].shape[0]) for t in targets])
    n = len(targets)
    device = device or (targets[0]["boxes"].device if n else None)
    boxes = torch.zeros(n, k, 4, dtype=torch.float32, device=device)
    labels = torch.full((n, k), -1, dtype=torch.int64, device=device)
    for i, t in enumerate(targets):
        count = t["labels"].shape[0]
        boxes[i, :count] = t["boxes"].to(device=device, dtype=torch.float32)
        labels[i, :count] = t["labels"].to(device)
    return boxes, labels


def _divide_xy(t: Tensor, x: float, y: float) -> Tensor:
    """``t`` [..., 2P] of (x, y) pairs with x / ``x`` and y / ``y``; Python divisors, so no tensor is
    copied from the host (a sync in every training step)."""
    pairs = t.unflatten(-1, (-1, 2))
    return torch.stack([pairs[..., 0] / x, pairs[..., 1] / y], -1).flatten(-2)


def _scatter_last(size: int, index: Tensor, valid: Tensor) -> Tensor:
    """For each target, whether it is the last valid target written to its ``index``
    (so every scatter below agrees on one winner). index [M] in [0, size)."""
    order = torch.arange(index.numel(), device=index.device)
    winner = torch.full((size,), -1, dtype=torch.int64, device=index.device)
    winner = winner.scatter_reduce(0, index, torch.where(valid, order, -1), reduce="amax")
    return valid & (winner[index] == order)


def yolo_loss(outputs: Tensor, targets: Targets, lambda_coord: float = 5.0,
              lambda_noobj: float = 0.5, *, num_classes: int, boxes_per_cell: int = 2,
              anchors: Optional[Tensor] = None, image_size: Optional[Sequence[int]] = None,
              rescore: bool = True) -> Tensor:
    """YOLOv1 sum-squared loss (see the module docstring), averaged over the batch.

    Args:
        outputs: raw Tensor[N, Sy, Sx, D] from :class:`~tritonvision.models.YOLO` (D =
            B*5 + C, or A*(5 + C) with anchors).
        targets: a list of N dicts with ``boxes`` float [K_i, 4] xyxy and ``labels`` int64
            [K_i] in [0, C); or a pair (boxes [N, K, 4], labels [N, K]) padded with label -1.
            Boxes are in pixels of an ``image_size`` image, or fractions of the image when
            ``image_size`` is None.
        lambda_coord, lambda_noobj: the YOLOv1 weights (5 and 0.5).
        num_classes: C. boxes_per_cell: B (ignored with anchors).
        anchors: Tensor[A, 2] (w, h) priors in grid-cell units, for the YOLOv2 head.
        image_size: (H, W) of the input images in pixels.
        rescore: confidence target = IoU with the object (YOLOv1) rather than 1.
    Returns:
        scalar float32 loss.
    """
    from .yolo import decode

    if outputs.dim() != 4:
        raise ValueError(f"yolo_loss: outputs must be [N, Sy, Sx, D], got {list(outputs.shape)}")
    n, sy, sx, depth = outputs.shape
    b = boxes_per_cell if anchors is None else anchors.shape[0]
    expected = b * 5 + num_classes if anchors is None else b * (5 + num_classes)
    if depth != expected:
        raise ValueError(f"yolo_loss: outputs have {depth} channels per cell but B={b}, "
                         f"C={num_classes} need {expected}")
    if isinstance(targets, (tuple, list)) and len(targets) == 2 and isinstance(targets[0], Tensor):
        gt_boxes, gt_labels = targets
    else:
        if len(targets) != n:
            raise ValueError(f"yolo_loss: got {len(targets)} targets for a batch of {n}")
        gt_boxes, gt_labels = pad_targets(targets, outputs.device)
    gt_boxes = gt_boxes.to(device=outputs.device, dtype=torch.float32)
    gt_labels = gt_labels.to(outputs.device)
    if image_size is not None:
        height, width = image_size
        gt_boxes = _divide_xy(gt_boxes, width, height)

    pred_box, pred_conf, pred_probs = decode(outputs, num_classes, b, anchors)
    out = outputs.float()
    raw = (out[..., :b * 5].reshape(n, sy, sx, b, 5) if anchors is None
           else out.reshape(n, sy, sx, b, 5 + num_classes))

    # ---- ground truth: centre cell and responsible predictor, for all N*K (padded) objects
    k = gt_boxes.shape[1]
    gt = box_convert(gt_boxes.reshape(-1, 4), "xyxy", "cxcywh")               # [M, 4]
    gt_labels = gt_labels.reshape(-1)
    valid = (gt_labels >= 0) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    col = (gt[:, 0] * sx).floor().clamp(0, sx - 1).long()
    row = (gt[:, 1] * sy).floor().clamp(0, sy - 1).long()
    image = torch.arange(n, device=outputs.device).repeat_interleave(k)
    cell = (image * sy + row) * sx + col                                       # [M]

    pred_at = pred_box.reshape(n * sy * sx, b, 4)[cell]                        # [M, B, 4]
    gt_xyxy = box_convert(gt, "cxcywh", "xyxy")
    pred_iou = box_overlap(box_convert(pred_at.reshape(-1, 4), "cxcywh", "xyxy"),
                           gt_xyxy.repeat_interleave(b, dim=0), aligned=True
                           ).view(-1, b).detach()                              # [M, B]
    if anchors is None:
        responsible = pred_iou.argmax(1)
    else:  # YOLOv2: best anchor shape, both boxes centred at the origin
        anchor_wh = _divide_xy(anchors.to(gt), sx, sy)
        gt_wh = gt[:, None, 2:].expand(-1, b, -1)
        a_wh = anchor_wh[None].expand(gt.shape[0], -1, -1)
        shape_iou = box_overlap(torch.cat([-gt_wh / 2, gt_wh / 2], -1).reshape(-1, 4),
                                torch.cat([-a_wh / 2, a_wh / 2], -1).reshape(-1, 4),
                                aligned=True).view(-1, b)
        responsible = shape_iou.argmax(1)
    slot = cell * b + responsible                                              # [M]
    slots = n * sy * sx * b
    keep = _scatter_last(slots, slot, valid)
    slot = torch.where(keep, slot, slots)              # losers and padding -> a trash slot

    # ---- the target grid, by scatter (one extra trash row, dropped afterwards)
    obj = torch.zeros(slots + 1, device=outputs.device).index_put_((slot,), keep.float())[:-1]
    offset_x = gt[:, 0] * sx - col
    offset_y = gt[:, 1] * sy - row
    if anchors is None:
        size_t = gt[:, 2:].clamp(min=0).sqrt()
    else:
        a = _divide_xy(anchors.to(gt)[responsible], sx, sy)
        size_t = (gt[:, 2:] / a).clamp(min=1e-9).log()
    box_t = torch.stack([offset_x, offset_y, size_t[:, 0], size_t[:, 1]], 1)
    box_t = torch.zeros(slots + 1, 4, device=outputs.device).index_put_((slot,), box_t)[:-1]
    iou_t = pred_iou.gather(1, responsible[:, None]).squeeze(1) if rescore else keep.float()
    conf_t = torch.zeros(slots + 1, device=outputs.device).index_put_((slot,), iou_t)[:-1]

    raw = raw.reshape(slots, -1)
    pred_xy = raw[:, :2].sigmoid()
    pred_size = raw[:, 2:4].sigmoid() if anchors is None else raw[:, 2:4]
    pred_conf = pred_conf.reshape(slots)
    coord = ((pred_xy - box_t[:, :2]).square().sum(1)
             + (pred_size - box_t[:, 2:]).square().sum(1))
    loss = (lambda_coord * (obj * coord).sum()
            + (obj * (pred_conf - conf_t).square()).sum()
            + lambda_noobj * ((1 - obj) * pred_conf.square()).sum())

    # ---- class probabilities: per cell (v1) or per responsible anchor (v2)
    if anchors is None:
        cells = n * sy * sx
        cell_keep = _scatter_last(cells, cell, valid)
        where = torch.where(cell_keep, cell, cells)
        has = torch.zeros(cells + 1, device=outputs.device).index_put_((where,), cell_keep.float())
        onehot = torch.zeros(cells + 1, num_classes, device=outputs.device).index_put_(
            (where, gt_labels.clamp(min=0)), cell_keep.float())
        probs = pred_probs.reshape(cells, num_classes)
        class_err = (probs - onehot[:-1]).square().sum(1)
        loss = loss + (has[:-1] * class_err).sum()
    else:
        onehot = torch.zeros(slots + 1, num_classes, device=outputs.device).index_put_(
            (slot, gt_labels.clamp(min=0)), keep.float())
        probs = pred_probs.reshape(slots, num_classes)
        loss = loss + (obj * (probs - onehot[:-1]).square().sum(1)).sum()
    return loss / max(n, 1)
