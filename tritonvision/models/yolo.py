"""YOLO (Redmon et al. 2016), with the YOLOv2 options (anchors, passthrough, multi-scale).

YOLOv1 formulation: the image is divided into an S x S grid; each cell predicts B boxes
``(x, y, w, h, confidence)`` and C class scores, so the output is Tensor[N, S, S, B*5 + C].
With ``anchors`` (YOLOv2) each of the A anchors has its own class scores: Tensor[N, S, S,
A*(5 + C)], laid out per anchor as ``(tx, ty, tw, th, to, class_0..class_{C-1})``.

The backbone is a small configurable conv net (conv3x3 + BatchNorm + LeakyReLU(0.1), 2x2
max-pool per stage) and the head a 1x1 convolution, so the network is fully convolutional:
any input whose sides are multiples of ``stride`` works (YOLOv2's multi-scale training),
and the grid is ``(H / stride, W / stride)``. ``grid_size`` fixes the default input size
``image_size = grid_size * stride``. (YOLOv1's fully connected head is replaced by the
1x1 conv head, as in YOLOv2, so that the same weights run at every scale.)

Raw outputs are decoded (:func:`decode`) as follows, coordinates as fractions of the image:

* v1: ``cx = (col + sigmoid(tx)) / S``, ``w = sigmoid(tw)**2`` -- the network predicts
  ``sqrt(w)`` in (0, 1), the quantity the YOLOv1 loss regresses; ``confidence =
  sigmoid(to)``; class probabilities ``softmax`` over the cell's C scores.
* v2 (anchors ``(w, h)`` in grid-cell units, as in the YOLOv2 config files): ``cx = (col +
  sigmoid(tx)) / S``, ``w = anchor_w * exp(tw) / S``; per-anchor softmax class scores.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import tritonvision.ops  # noqa: F401  (registers torch.ops.tritonvision.batched_nms_padded)
from tritonvision.ops.nms import PRE_NMS_TOP_K


def _conv_block(c_in: int, c_out: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1, inplace=True))


def decode(outputs: Tensor, num_classes: int, boxes_per_cell: int,
           anchors: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
    """Raw YOLO outputs -> boxes, confidences and class probabilities.

    Args:
        outputs: Tensor[N, Sy, Sx, D] raw network output (D = B*5 + C, or A*(5 + C)).
        num_classes: C.
        boxes_per_cell: B (the number of anchors A when ``anchors`` is given).
        anchors: optional Tensor[A, 2] anchor (w, h) in grid-cell units (YOLOv2).
    Returns:
        boxes Tensor[N, Sy, Sx, B, 4] as (cx, cy, w, h) fractions of the image;
        confidence Tensor[N, Sy, Sx, B]; class probabilities Tensor[N, Sy, Sx, C] (v1: one
        per cell) or Tensor[N, Sy, Sx, B, C] (v2: one per anchor). All float32.
    """
    n, sy, sx, _ = outputs.shape
    out = outputs.float()
    cols = torch.arange(sx, device=out.device, dtype=out.dtype).view(1, 1, sx, 1)
    rows = torch.arange(sy, device=out.device, dtype=out.dtype).view(1, sy, 1, 1)
    if anchors is None:
        box = out[..., :boxes_per_cell * 5].reshape(n, sy, sx, boxes_per_cell, 5)
        probs = out[..., boxes_per_cell * 5:].softmax(-1)
        w = box[..., 2].sigmoid().square()
        h = box[..., 3].sigmoid().square()
    else:
        box = out.reshape(n, sy, sx, boxes_per_cell, 5 + num_classes)
        probs = box[..., 5:].softmax(-1)
        anchors = anchors.to(out.dtype)
        w = anchors[:, 0] * box[..., 2].clamp(max=10.0).exp() / sx
        h = anchors[:, 1] * box[..., 3].clamp(max=10.0).exp() / sy
    cx = (cols + box[..., 0].sigmoid()) / sx
    cy = (rows + box[..., 1].sigmoid()) / sy
    confidence = box[..., 4].sigmoid()
    return torch.stack([cx, cy, w, h], dim=-1), confidence, probs


def detections(outputs: Tensor, num_classes: int, boxes_per_cell: int,
               anchors: Optional[Tensor], image_height: int, image_width: int
               ) -> tuple[Tensor, Tensor]:
    """Candidate boxes [N, M, 4] (xyxy pixels, clipped) and class scores [N, M, C] (M = S*S*B).

    The image size scales the coordinates as Python numbers (no tensor copied from the host:
    no sync, capturable in a CUDA graph)."""
    boxes, confidence, probs = decode(outputs, num_classes, boxes_per_cell, anchors)
    n = outputs.shape[0]
    if anchors is None:
        scores = confidence.unsqueeze(-1) * probs.unsqueeze(-2)      # [N, Sy, Sx, B, C]
    else:
        scores = confidence.unsqueeze(-1) * probs
    cx, cy = boxes[..., 0] * image_width, boxes[..., 1] * image_height
    half_w, half_h = boxes[..., 2] * image_width / 2, boxes[..., 3] * image_height / 2
    xyxy = torch.stack([(cx - half_w).clamp(0, image_width), (cy - half_h).clamp(0, image_height),
                        (cx + half_w).clamp(0, image_width), (cy + half_h).clamp(0, image_height)], dim=-1)
    return xyxy.reshape(n, -1, 4), scores.reshape(n, -1, num_classes)


def nms_padded_reference(boxes: Tensor, scores: Tensor, iou_threshold: float,
                         score_threshold: float, max_detections: int, pre_nms_top_k: int = PRE_NMS_TOP_K
                         ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-class NMS, one image at a time with ``torchvision.ops.batched_nms`` (plain torch).

    The ``fused=False`` path of :meth:`YOLO.postprocess`; same padded outputs as
    ``tritonvision.ops.batched_nms_padded`` (the same ``pre_nms_top_k`` best candidates).
    Syncs with the host (data-dependent sizes).
    """
    from torchvision.ops import batched_nms

    n, m, c = scores.shape
    out_boxes = boxes.new_zeros(n, max_detections, 4)
    out_scores = scores.new_zeros(n, max_detections)
    out_labels = torch.full((n, max_detections), -1, dtype=torch.int64, device=boxes.device)
    counts = torch.zeros(n, dtype=torch.int64, device=boxes.device)
    for i in range(n):
        flat = scores[i].reshape(-1)
        keep = (flat > score_threshold).nonzero().squeeze(1)
        keep = keep[flat[keep].sort(descending=True, stable=True).indices[:pre_nms_top_k]]
        cand_boxes = boxes[i][keep // c]
        labels = keep % c
        kept = batched_nms(cand_boxes, flat[keep], labels, iou_threshold)[:max_detections]
        k = kept.numel()
        out_boxes[i, :k] = cand_boxes[kept]
        out_scores[i, :k] = flat[keep][kept]
        out_labels[i, :k] = labels[kept]
        counts[i] = k
    return out_boxes, out_scores, out_labels, counts


@torch.jit.ignore
def _nms(fused: bool, boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float,
         max_detections: int, pre_nms_top_k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The eager NMS of :meth:`YOLO.postprocess` (the public op, or torchvision per image)."""
    if not fused:
        return nms_padded_reference(boxes, scores, iou_threshold, score_threshold, max_detections,
                                    pre_nms_top_k)
    from tritonvision.ops import batched_nms_padded
    out_boxes, out_scores, labels, _, counts = batched_nms_padded(
        boxes, scores, iou_threshold, score_threshold, max_detections, pre_nms_top_k=pre_nms_top_k)
    return out_boxes, out_scores, labels, counts


class YOLO(nn.Module):
    """YOLO detector (v1 formulation; v2 anchors / passthrough / multi-scale as options).

    Args:
        num_classes: C.
        grid_size: S at the default input size ``image_size = grid_size * stride``.
        boxes_per_cell: B, boxes per cell (v1); ignored when ``anchors`` is given (A =
            ``len(anchors)``).
        width: channels of the first backbone stage; stage i has ``width * 2**i`` (capped
            at ``16 * width``).
        anchors: optional list of (w, h) priors in grid-cell units (YOLOv2 decoding).
        passthrough: YOLOv2's passthrough layer: the stride/2 feature map, reduced by a 1x1
            conv and reorganised space-to-depth (2x2 -> channels), is concatenated with
            the final map before the last conv.
        fused: True runs :meth:`postprocess` through ``tritonvision.ops.batched_nms_padded``
            (one sync-free graph); False through ``torchvision.ops.batched_nms`` per image.
            The network itself has no fused layer: both settings share all parameters.
        stride: total downsampling (a power of two >= 2): the input sides must be multiples.
        in_channels: image channels.

    ``forward(images [N, 3, H, W])`` -> raw Tensor[N, H/stride, W/stride, D].
    """

    def __init__(self, num_classes: int, grid_size: int = 7, boxes_per_cell: int = 2,
                 width: int = 16, anchors: Optional[Sequence[Sequence[float]]] = None,
                 passthrough: bool = False, fused: bool = True, stride: int = 32,
                 in_channels: int = 3):
        super().__init__()
        if stride < 2 or stride & (stride - 1):
            raise ValueError(f"YOLO: stride must be a power of two >= 2, got {stride}")
        if num_classes < 1 or grid_size < 1:
            raise ValueError(f"YOLO: num_classes and grid_size must be >= 1, got "
                             f"{num_classes} and {grid_size}")
        self.num_classes = num_classes
        self.grid_size = grid_size
        self.stride = stride
        self.fused = fused
        self.use_anchors = anchors is not None
        if anchors is not None:
            anchor_t = torch.tensor([[float(a), float(b)] for a, b in anchors], dtype=torch.float32)
            if anchor_t.numel() == 0 or (anchor_t <= 0).any():
                raise ValueError("YOLO: anchors must be a non-empty list of positive (w, h) pairs")
            self.boxes_per_cell = anchor_t.shape[0]
            out_channels = self.boxes_per_cell * (5 + num_classes)
        else:
            anchor_t = torch.zeros(0, 2)
            self.boxes_per_cell = boxes_per_cell
            out_channels = boxes_per_cell * 5 + num_classes
        self.register_buffer("anchors", anchor_t, persistent=False)

        stages = int(math.log2(stride))
        chans = [min(width * 2 ** i, 16 * width) for i in range(stages + 1)]
        self.stages = nn.ModuleList(
            _conv_block(in_channels if i == 0 else chans[i - 1], chans[i]) for i in range(stages))
        self.neck = nn.Sequential(_conv_block(chans[stages - 1], chans[stages]),
                                  _conv_block(chans[stages], chans[stages], 1),
                                  _conv_block(chans[stages], chans[stages]))
        self.passthrough = passthrough
        fine = max(chans[stages - 1] // 8, 4)
        self.reduce = _conv_block(chans[stages - 1], fine, 1) if passthrough else nn.Identity()
        merged = chans[stages] + (4 * fine if passthrough else 0)
        self.merge = _conv_block(merged, chans[stages])
        self.head = nn.Conv2d(chans[stages], out_channels, 1)

    @property
    def image_size(self) -> int:
        """The default input side, ``grid_size * stride``."""
        return self.grid_size * self.stride

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % self.stride or x.shape[-2] % self.stride:
            raise ValueError("YOLO: input H and W must be multiples of the model stride; "
                             "resize the image")
        fine = x
        for stage in self.stages:
            fine = stage(x)
            x = F.max_pool2d(fine, 2)
        x = self.neck(x)
        if self.passthrough:
            x = torch.cat([x, F.pixel_unshuffle(self.reduce(fine), 2)], dim=1)
        x = self.head(self.merge(x))
        return x.permute(0, 2, 3, 1)

    def loss(self, outputs: Tensor, targets, lambda_coord: float = 5.0,
             lambda_noobj: float = 0.5) -> Tensor:
        """:func:`tritonvision.models.yolo_loss` with this model's configuration."""
        from .yolo_loss import yolo_loss
        return yolo_loss(outputs, targets, lambda_coord, lambda_noobj,
                         num_classes=self.num_classes, boxes_per_cell=self.boxes_per_cell,
                         anchors=self.anchors if self.use_anchors else None,
                         image_size=(outputs.shape[1] * self.stride, outputs.shape[2] * self.stride))

    def postprocess(self, outputs: Tensor, score_threshold: float = 0.25,
                    iou_threshold: float = 0.5, max_detections: int = 100,
                    pre_nms_top_k: int = PRE_NMS_TOP_K) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Decode and run per-class NMS: padded, fixed-shape detections.

        Args:
            outputs: raw Tensor[N, Sy, Sx, D] from :meth:`forward`.
            score_threshold: keep candidates with ``confidence * class probability`` above.
            iou_threshold: NMS suppresses a box with IoU > this against a kept box of the
                same class.
            max_detections: K, detections kept per image (highest scores).
            pre_nms_top_k: the most (box, class) candidates per image NMS considers, the
                highest-scored (see ``tritonvision.ops.batched_nms_padded``): exact whenever
                at most this many pass ``score_threshold``. For mAP evaluation at a very low
                threshold on a large head (64,000 candidates at 640 px with 80 classes) raise
                it, memory allowing: ~K^2 / 8 bytes per image.
        Returns:
            boxes Tensor[N, K, 4] xyxy pixels of the input, scores Tensor[N, K], labels
            int64 Tensor[N, K] (-1 in padding rows), counts int64 Tensor[N] (valid rows).
            With ``fused=True`` this is one sync-free graph (``batched_nms_padded``); under
            ``torch.jit.script`` the op is called directly whatever ``fused`` says.
        """
        anchors: Optional[Tensor] = self.anchors if self.use_anchors else None
        boxes, scores = detections(outputs, self.num_classes, self.boxes_per_cell, anchors,
                                   outputs.shape[1] * self.stride, outputs.shape[2] * self.stride)
        if torch.jit.is_scripting():  # TorchScript: the op itself, positional arguments
            result = torch.ops.tritonvision.batched_nms_padded(
                boxes, scores, iou_threshold, score_threshold, max_detections, False, pre_nms_top_k)
            return result[0], result[1], result[2], result[4]
        else:
            return _nms(self.fused, boxes, scores, iou_threshold, score_threshold, max_detections,
                        pre_nms_top_k)


class YOLOInference(nn.Module):
    """``images -> postprocess(model(images))`` as one module (for compile / export / script)."""

    def __init__(self, model: YOLO, score_threshold: float = 0.25, iou_threshold: float = 0.5,
                 max_detections: int = 100, pre_nms_top_k: int = PRE_NMS_TOP_K):
        super().__init__()
        self.model = model
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self.pre_nms_top_k = pre_nms_top_k

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.model.postprocess(self.model(images), self.score_threshold,
                                      self.iou_threshold, self.max_detections, self.pre_nms_top_k)
