"""Box area and box format conversion (plain torch: elementwise, fused by inductor)."""
from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_tensor

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def box_area(boxes: Tensor) -> Tensor:
    """Area of each box.

    Args:
        boxes: Tensor[..., 4] in (x1, y1, x2, y2) format, any float or integer dtype.
    Returns:
        Tensor[...]: (x2 - x1) * (y2 - y1), in the dtype of ``boxes``.
    """
    check_tensor(boxes, "box_area", "boxes")
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"box_area: boxes must have shape [..., 4], got {list(boxes.shape)}")
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _to_xyxy(boxes: Tensor, fmt: str) -> Tensor:
    a, b, c, d = boxes.unbind(-1)
    if fmt == "xywh":
        return torch.stack((a, b, a + c, b + d), dim=-1)
    if fmt == "cxcywh":
        return torch.stack((a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d), dim=-1)
    return boxes


def _from_xyxy(boxes: Tensor, fmt: str) -> Tensor:
    x1, y1, x2, y2 = boxes.unbind(-1)
    if fmt == "xywh":
        return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)
    if fmt == "cxcywh":
        return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)
    return boxes


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between 'xyxy' (corners), 'xywh' (corner + size) and 'cxcywh' (centre + size).

    Args:
        boxes: Tensor[..., 4] of float boxes in ``in_fmt``.
        in_fmt, out_fmt: one of 'xyxy', 'xywh', 'cxcywh'.
    Returns:
        Tensor[..., 4] in ``out_fmt``; ``boxes`` itself when the formats are equal.
    """
    check_tensor(boxes, "box_convert", "boxes")
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"box_convert: {name} must be one of {BOX_FORMATS}, got {fmt!r}")
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"box_convert: boxes must have shape [..., 4], got {list(boxes.shape)}")
    if in_fmt == out_fmt:
        return boxes
    return _from_xyxy(_to_xyxy(boxes, in_fmt), out_fmt)
