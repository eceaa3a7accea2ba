"""The op pattern, written once: register a fused op and route it by device.

Every op in ``tritonvision.ops`` is a ``torch.library.custom_op`` in the
``tritonvision`` namespace, built by :func:`fused_op` from two implementations
with the same signature:

* ``torch_impl`` -- vectorised PyTorch, used for CPU tensors (fast, and the
  default implementation for any other device);
* ``triton_impl`` -- launches the Triton kernel; used for CUDA tensors, and
  for CPU tensors too in *kernel-test mode* (``TRITON_INTERPRET=1`` set before
  import), where Triton's interpreter runs the kernel on the host.

The schema is inferred from ``torch_impl``'s type annotations. The caller adds
``register_fake`` / ``register_autograd`` on the returned op as usual.
The Triton implementation runs with its tensors' GPU as the current device, so
kernels and the allocations they make land there whatever ``torch.cuda.current_device()`` is.
"""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from typing import Callable

import torch

NAMESPACE = "tritonvision"

KERNEL_TEST_MODE: bool = os.environ.get("TRITON_INTERPRET", "0") == "1"
"""True when Triton's interpreter runs the kernels on CPU tensors (tests only)."""

ExampleInputs = Callable[[torch.device], tuple]
"""Makes small valid arguments for an op on a device (for ``tritonvision info`` and smoke tests)."""


@dataclass(frozen=True)
class FusedOp:
    """A registered op with both implementations and its example-input maker."""
    op: torch.library.CustomOpDef
    torch_impl: Callable
    triton_impl: Callable
    example: ExampleInputs


REGISTERED: dict[str, FusedOp] = {}
"""Every fused op by name."""

_REFERENCE = False


@contextlib.contextmanager
def reference():
    """Run every public op function in this block as its plain-torch reference math.

    The one switch that overrides the device routing: inside it no custom op and no Triton
    kernel runs, on any device; ``torch.compile`` sees ordinary torch code. Used for
    baselines ("eager", "compile" in perf/), the fused-vs-reference tests and the CLI's
    ``--reference`` flag. Process-wide (a plain global, which ``torch.compile`` guards on); nests.
    """
    global _REFERENCE
    previous, _REFERENCE = _REFERENCE, True
    try:
        yield
    finally:
        _REFERENCE = previous


def is_reference() -> bool:
    """True inside :func:`reference`."""
    return _REFERENCE


def tensor_device(args: tuple) -> torch.device | None:
    """The device of the first tensor among ``args`` (lists of tensors included), or None."""
    for arg in args:
        if isinstance(arg, torch.Tensor):
            return arg.device
        if isinstance(arg, (list, tuple)) and arg and isinstance(arg[0], torch.Tensor):
            return arg[0].device
    return None


def on_tensor_device(impl: Callable) -> Callable:
    """``impl`` run with its first tensor argument's GPU as the current CUDA device."""
    @functools.wraps(impl)
    def guarded(*args, **kwargs):
        device = tensor_device(args)
        guard = torch.cuda.device(device) if device is not None and device.type == "cuda" \
            else contextlib.nullcontext()
        with guard:
            return impl(*args, **kwargs)
    return guarded


def fused_op(name: str, torch_impl: Callable, triton_impl: Callable, example: ExampleInputs,
             mutates_args: tuple[str, ...] = ()) -> torch.library.CustomOpDef:
    """Register ``tritonvision::name``: Triton on CUDA, torch on CPU (Triton in kernel-test mode).

    ``example(device)`` returns a small tuple of valid arguments for the op.
    """
    op = torch.library.custom_op(f"{NAMESPACE}::{name}", torch_impl, mutates_args=mutates_args)
    guarded = on_tensor_device(triton_impl)
    op.register_kernel("cuda", guarded)
    if KERNEL_TEST_MODE:
        op.register_kernel("cpu", guarded)
    REGISTERED[name] = FusedOp(op, torch_impl, guarded, example)
    return op


def backend(device: torch.device | str) -> str:
    """Which implementation a fused op runs for tensors on ``device``."""
    device_type = torch.device(device).type
    if device_type == "cuda":
        return "triton"
    if device_type == "cpu" and KERNEL_TEST_MODE:
        return "triton-interpreter"
    return "torch"


def uses_triton(tensor: torch.Tensor) -> bool:
    """True when a fused op on ``tensor`` launches a Triton kernel."""
    return backend(tensor.device) != "torch"
