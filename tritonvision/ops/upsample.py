"""Bilinear upsampling fused with a skip connection: FCN-8s's decoder step.

Two custom ops:

* ``tritonvision::upsample_bilinear_add(x, skip)`` --
  ``F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip``
  in one pass (the upsampled tensor is never written to memory); differentiable.
* ``tritonvision::upsample_bilinear_backward(grad, in_h, in_w)`` -- the adjoint of
  that interpolation (the gradient w.r.t. x), a deterministic gather, no atomics.

Arithmetic is float32 (float64 for float64 tensors) whatever the input dtype;
the result is rounded once to the input dtype. The output has skip's layout
(contiguous or channels-last).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
from torch import Tensor

from tritonvision.kernels import upsample as kernels

from ._checks import check_float, check_same_device
from ._dtypes import compute_dtype, tl_compute_dtype
from ._launch import needs_int64
from ._op import fused_op

MAX_TILE = 1024
"""Elements per program (a [BLOCK_C, BLOCK_X] tile)."""


def _channels_last(t: Tensor) -> bool:
    """Walk ``t`` in NHWC order (its memory order) rather than NCHW."""
    return (not t.is_contiguous()) and t.is_contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------- forward
def _forward_torch(x: Tensor, skip: Tensor) -> Tensor:
    compute = compute_dtype(x.dtype)
    up = F.interpolate(x.to(compute), size=skip.shape[-2:], mode="bilinear", align_corners=False)
    out = torch.empty_like(skip)
    out.copy_(up + skip.to(compute))
    return out


def _tiles(channels: int, width: int, channels_last: bool) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_X) of a [BLOCK_C, BLOCK_X] tile of up to MAX_TILE elements: led by
    the contiguous axis (W for NCHW, channels for channels-last), the rest of the tile
    spent on the other axis, so narrow maps still fill a program."""
    if channels_last:
        block_c = min(triton.next_power_of_2(channels), 64)
        block_x = min(triton.next_power_of_2(width), MAX_TILE // block_c)
    else:
        block_x = min(triton.next_power_of_2(width), MAX_TILE)
        block_c = min(triton.next_power_of_2(channels), MAX_TILE // block_x)
    # CUDA grid axes 1 and 2 stop at 65535
    block_c = max(block_c, triton.next_power_of_2(triton.cdiv(channels, 65535)))
    return block_c, block_x


def _forward_triton(x: Tensor, skip: Tensor) -> Tensor:
    out = torch.empty_like(skip)
    if out.numel() == 0:
        return out
    n, c, h, w = x.shape
    H, W = skip.shape[-2:]
    block_c, block_x = _tiles(c, W, _channels_last(out))
    grid = (n * H, triton.cdiv(W, block_x), triton.cdiv(c, block_c))
    kernels.upsample_bilinear_add_kernel[grid](
        x, skip, out, c, h, w, H, W, *x.stride(), *skip.stride(), *out.stride(),
        COMPUTE=tl_compute_dtype(x.dtype), WIDE=needs_int64(x, skip, out), BLOCK_C=block_c, BLOCK_X=block_x)
    return out


upsample_bilinear_add_op = fused_op(
    "upsample_bilinear_add", _forward_torch, _forward_triton,
    example=lambda d: (torch.randn(2, 3, 5, 4, device=d), torch.randn(2, 3, 10, 8, device=d)))


@upsample_bilinear_add_op.register_fake
def _(x: Tensor, skip: Tensor) -> Tensor:
    return torch.empty_like(skip)


# ----------------------------------------------------------------------------- backward
def _backward_layout(grad: Tensor) -> torch.memory_format:
    return torch.channels_last if _channels_last(grad) else torch.contiguous_format


def _backward_torch(grad: Tensor, in_h: int, in_w: int) -> Tensor:
    n, c, H, W = grad.shape
    compute = compute_dtype(grad.dtype)
    grad_x = torch.ops.aten.upsample_bilinear2d_backward(
        grad.to(compute), [H, W], [n, c, in_h, in_w], False)
    return grad_x.to(grad.dtype).contiguous(memory_format=_backward_layout(grad))


def _backward_triton(grad: Tensor, in_h: int, in_w: int) -> Tensor:
    n, c, H, W = grad.shape
    grad_x = torch.empty((n, c, in_h, in_w), dtype=grad.dtype, device=grad.device,
                         memory_format=_backward_layout(grad))
    if grad_x.numel() == 0:
        return grad_x
    if grad.numel() == 0:
        return grad_x.zero_()
    # candidate output rows / columns per input one (see the kernel's docstring)
    steps_y = 2 * H // in_h + 2
    steps_x = 2 * W // in_w + 2
    block_c, block_x = _tiles(c, in_w, _channels_last(grad_x))
    grid = (n * in_h, triton.cdiv(in_w, block_x), triton.cdiv(c, block_c))
    kernels.upsample_bilinear_backward_kernel[grid](
        grad, grad_x, c, in_h, in_w, H, W, *grad.stride(), *grad_x.stride(), steps_y, steps_x,
        COMPUTE=tl_compute_dtype(grad.dtype), WIDE=needs_int64(grad, grad_x), BLOCK_C=block_c, BLOCK_X=block_x)
    return grad_x


upsample_bilinear_backward_op = fused_op(
    "upsample_bilinear_backward", _backward_torch, _backward_triton,
    example=lambda d: (torch.randn(2, 3, 10, 8, device=d), 5, 4))


@upsample_bilinear_backward_op.register_fake
def _(grad: Tensor, in_h: int, in_w: int) -> Tensor:
    n, c = grad.shape[:2]
    return torch.empty((n, c, in_h, in_w), dtype=grad.dtype, device=grad.device,
                       memory_format=_backward_layout(grad))


def _setup_context(ctx, inputs, output):
    x, skip = inputs
    ctx.in_size = (x.shape[-2], x.shape[-1])
    ctx.x_dtype = x.dtype


def _backward(ctx, grad):
    grad_x = None
    if ctx.needs_input_grad[0]:
        grad_x = upsample_bilinear_backward_op(grad, *ctx.in_size).to(ctx.x_dtype)
    return grad_x, grad if ctx.needs_input_grad[1] else None


upsample_bilinear_add_op.register_autograd(_backward, setup_context=_setup_context)


def _backward_of_backward_setup(ctx, inputs, output):
    grad, in_h, in_w = inputs
    ctx.out_size = (grad.shape[-2], grad.shape[-1])


def _backward_of_backward(ctx, grad_grad_x):
    # the adjoint of the adjoint is the interpolation itself (double backward)
    up = F.interpolate(grad_grad_x, size=ctx.out_size, mode="bilinear", align_corners=False)
    return up, None, None


upsample_bilinear_backward_op.register_autograd(_backward_of_backward,
                                                setup_context=_backward_of_backward_setup)


# ----------------------------------------------------------------------------- public API
def upsample_bilinear_add(x: Tensor, skip: Tensor, scale_factor: int = 2) -> Tensor:
    """Bilinear upsampling of ``x`` to ``skip``'s size, plus ``skip``, in one kernel.

    Equals ``F.interpolate(x, size=(H, W), mode="bilinear", align_corners=False) + skip``
    (the source position of output pixel Y is ``(Y + 0.5) * h / H - 0.5``, clamped at 0:
    the interpolation ratio comes from the two sizes, as with ``size=`` in PyTorch).

    Args:
        x: Tensor[B, C, h, w], float16/bfloat16/float32/float64, contiguous or channels-last
            (any strides work).
        skip: Tensor[B, C, H, W], the same dtype family and device.
        scale_factor: the nominal integer factor between the two; used to check that
            ``skip`` is ``x`` upsampled by it with floor or ceil rounding
            (``s * (h - 1) < H < s * (h + 1)``, likewise W), as after a stride-s pooling.
    Returns:
        Tensor[B, C, H, W] in the promoted dtype of x and skip, laid out like ``skip``.
        Differentiable w.r.t. both: grad_skip = grad, grad_x = the exact adjoint of the
        interpolation (computed by a gather, deterministic).
    """
    op = "upsample_bilinear_add"
    check_float(x, op, "x")
    check_float(skip, op, "skip")
    check_same_device(op, x=x, skip=skip)
    if x.dim() != 4 or skip.dim() != 4:
        raise ValueError(f"{op}: x and skip must be 4-D [B, C, h, w] and [B, C, H, W], "
                         f"got {list(x.shape)} and {list(skip.shape)}")
    if x.shape[:2] != skip.shape[:2]:
        raise ValueError(f"{op}: x and skip must agree in batch and channels, "
                         f"got {list(x.shape)} and {list(skip.shape)}")
    if isinstance(scale_factor, bool) or not isinstance(scale_factor, int) or scale_factor < 1:
        raise ValueError(f"{op}: scale_factor must be a positive int, got {scale_factor!r}")
    for axis, small, big in (("height", x.shape[2], skip.shape[2]), ("width", x.shape[3], skip.shape[3])):
        if small < 1 or big < 1:
            raise ValueError(f"{op}: x and skip must have non-empty spatial sizes, "
                             f"got {list(x.shape)} and {list(skip.shape)}")
        if not scale_factor * (small - 1) < big < scale_factor * (small + 1):
            raise ValueError(f"{op}: skip {axis} {big} is not x {axis} {small} upsampled by "
                             f"scale_factor={scale_factor} (expected between "
                             f"{scale_factor * (small - 1) + 1} and {scale_factor * (small + 1) - 1}); "
                             f"pass the factor between the two feature maps")
    dtype = torch.promote_types(x.dtype, skip.dtype)
    return upsample_bilinear_add_op(x.to(dtype), skip.to(dtype))
