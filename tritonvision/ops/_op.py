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
"""
from __future__ import annotations

import os
from typing import Callable

import torch

NAMESPACE = "tritonvision"

KERNEL_TEST_MODE: bool = os.environ.get("TRITON_INTERPRET", "0") == "1"
"""True when Triton's interpreter runs the kernels on CPU tensors (tests only)."""

ExampleInputs = Callable[[torch.device], tuple]
"""Makes small valid arguments for an op on a device (for ``tritonvision info`` and smoke tests)."""

REGISTERED: dict[str, tuple[torch.library.CustomOpDef, ExampleInputs]] = {}
"""Every fused op by name, with its example-input maker."""


def fused_op(name: str, torch_impl: Callable, triton_impl: Callable, example: ExampleInputs,
             mutates_args: tuple[str, ...] = ()) -> torch.library.CustomOpDef:
    """Register ``tritonvision::name``: Triton on CUDA, torch on CPU (Triton in kernel-test mode).

    ``example(device)`` returns a small tuple of valid arguments for the op.
    """
    op = torch.library.custom_op(f"{NAMESPACE}::{name}", torch_impl, mutates_args=mutates_args)
    op.register_kernel("cuda", triton_impl)
    if KERNEL_TEST_MODE:
        op.register_kernel("cpu", triton_impl)
    REGISTERED[name] = (op, example)
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
