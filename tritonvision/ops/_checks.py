"""Input validation shared by the ops: raise clear errors before any launch."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_tensor(t: object, op: str, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def check_float(t: Tensor, op: str, name: str) -> None:
    check_tensor(t, op, name)
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be a floating tensor (float16, bfloat16, float32 "
                        f"or float64), got {t.dtype}; convert it with .float()")


def check_integer(t: Tensor, op: str, name: str) -> None:
    check_tensor(t, op, name)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{op}: {name} must be an integer tensor of class indices, got {t.dtype}; "
                        f"convert it with .long()")


def check_boxes(boxes: Tensor, op: str, name: str = "boxes") -> None:
    """boxes must be a floating Tensor[N, 4]."""
    check_float(boxes, op, name)
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{op}: {name} must have shape [N, 4], got {list(boxes.shape)}")


def check_same_device(op: str, **tensors: Tensor) -> None:
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{name} on {d}" for name, d in devices.items())
        raise ValueError(f"{op}: all tensors must be on the same device, got {where}")


def check_shape(t: Tensor, expected: Sequence[int | None], op: str, name: str) -> None:
    """Check ``t.shape`` against ``expected``; ``None`` matches any size."""
    ok = t.dim() == len(expected) and all(e is None or e == s for e, s in zip(expected, t.shape))
    if not ok:
        want = "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"
        raise ValueError(f"{op}: {name} must have shape {want}, got {list(t.shape)}")


def first_bad_label(labels: Tensor, num_classes: int, ignored: Tensor | None = None) -> int | None:
    """The first label outside [0, num_classes) among the pixels not ``ignored``, or None.

    One reduction and, on a GPU, one host sync: call it before launching a kernel."""
    bad = (labels < 0) | (labels >= num_classes)
    if ignored is not None:
        bad &= ~ignored
    return int(labels[bad].reshape(-1)[0]) if bool(bad.any()) else None
