"""Input validation shared by the ops: raise clear errors before any launch."""
from __future__ import annotations

from typing import Callable, Sequence

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


def assert_all_zero_async(flags: Tensor, message: str) -> None:
    """A device-side assertion that every entry of the CUDA tensor ``flags`` is zero: no host sync.

    As torch's own ``cross_entropy`` asserts its targets on a GPU: a failure surfaces at the
    next synchronising call as "CUDA error: device-side assert triggered" and leaves the CUDA
    context unusable (the process must restart). ``message`` is for CPU and meta tensors;
    the CUDA kernel prints only its own assertion text."""
    torch._assert_async(flags.any().logical_not(), message)


def check_labels(labels: Tensor, num_classes: int, ignored: Tensor | None,
                 error: Callable[[int], Exception]) -> None:
    """Fail if a label outside [0, num_classes) sits in a pixel not ``ignored`` (bool mask or None).

    Off the GPU: raises ``error(label)`` for the first such label (one reduction, and the label is
    looked up only when there is one). On CUDA, where reading anything back is a host sync in every
    step: :func:`assert_all_zero_async`, whose failure names no label -- run the batch on CPU to
    get ``error``'s message."""
    bad = (labels < 0) | (labels >= num_classes)
    if ignored is not None:
        bad &= ~ignored
    if labels.is_cuda:
        assert_all_zero_async(bad, f"labels outside [0, {num_classes}) that are not ignored "
                                   f"(run on CPU to see which)")
    elif bool(bad.any()):
        raise error(int(labels[bad].reshape(-1)[0]))
