"""Transposed convolution fused with its skip connection: ``deconv_skip`` and ``deconv_concat``.

Three custom ops carry the family:

* ``tritonvision::deconv_skip(x, weight, bias, skip, stride, padding, output_padding, activation)``
  -- ``act(conv_transpose2d(x, weight, bias) + skip)`` in one pass (the FCN-8s / U-Net "add"
  skip); differentiable in x, weight, bias and skip.
* ``tritonvision::deconv_concat(...)`` -- ``cat([act(conv_transpose2d(x, weight, bias)), skip], 1)``
  (the U-Net "concat" skip): the kernel writes straight into the first channels of the
  preallocated concat buffer and the skip is copied into the rest; differentiable.
* ``tritonvision::deconv_backward(grad, x, weight, ...)`` -- grad_x and grad_weight of the
  transposed convolution.

Which implementation runs (groups 1, dilation 1, square kernels only):

* CUDA (and CPU in kernel-test mode), float16/bfloat16/float32, stride >= 2 and
  kernel_size <= 2 * stride (2x2/s2, 3x3/s2, 4x4/s2, FCN's 16x16/s8 and 64x64/s32):
  forward is the sub-pixel (phase) implicit-GEMM Triton kernel with bias + skip + ReLU
  fused in its epilogue; backward is Triton too (grad_x: strided-conv implicit GEMM,
  grad_weight: split-K GEMM over pixels), grad_bias / grad_skip are torch reductions of the
  ReLU-masked gradient.
* Other shapes (stride 1, kernel_size > 2 * stride) and float64: forward is
  ``F.conv_transpose2d`` (cuDNN) followed by the fused add/ReLU Triton kernel, backward
  is ``aten.convolution_backward``.
* CPU (normal mode): ``F.conv_transpose2d`` + add / cat in torch, backward
  ``aten.convolution_backward``.

float32 dots use TF32 on the GPU exactly when ``torch.backends.cudnn.allow_tf32`` is set
(torch's default for convolutions), so the fused op rounds like the cuDNN baseline.
The output is channels-last when x is (strictly) channels-last, contiguous otherwise.

Autocast: the public functions (not the raw ``torch.ops`` entries) cast x, weight, bias
and skip to the autocast dtype when autocast is enabled for x's device, as
``conv_transpose2d`` is on autocast's lower-precision list; the output is in that dtype.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
import triton
from torch import Tensor

from tritonvision.kernels import deconv as kernels

from ._checks import check_float, check_same_device
from ._dtypes import tl_compute_dtype
from ._launch import LaunchConfig, multiprocessor_count, needs_int64
from ._op import KERNEL_TEST_MODE, fused_op

ACTIVATIONS = ("none", "relu")
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


# ----------------------------------------------------------------------------- shapes & layout
def output_size(size: int, kernel_size: int, stride: int, padding: int, output_padding: int) -> int:
    """Spatial size of conv_transpose2d's output: (size - 1) * stride - 2 * padding + k + output_padding."""
    return (size - 1) * stride - 2 * padding + kernel_size + output_padding


def _memory_format(x: Tensor) -> torch.memory_format:
    strictly_cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if strictly_cl else torch.contiguous_format


def _new_output(x: Tensor, channels: int, kernel_size: int, stride: int, padding: int,
                output_padding: int) -> Tensor:
    b, _, h, w = x.shape
    shape = (b, channels, output_size(h, kernel_size, stride, padding, output_padding),
             output_size(w, kernel_size, stride, padding, output_padding))
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=_memory_format(x))


def triton_gemm_supported(dtype: torch.dtype, kernel_size: int, stride: int) -> bool:
    """True when the phase-GEMM Triton kernels run (else cuDNN + the fused add/act kernel)."""
    return dtype in TRITON_DTYPES and stride >= 2 and kernel_size <= 2 * stride


def _pixels_fit_int32(*tensors: Tensor) -> bool:
    """The GEMM kernels index pixels (B * H * W of each [B, C, H, W] tensor) in int32."""
    return all(t.shape[0] * t.shape[2] * t.shape[3] < 2 ** 31 for t in tensors)


# ----------------------------------------------------------------------------- launch configuration
# The launch configuration of every kernel below, read by its launcher (and, through the
# launchers, by perf/resources.py and the compile-for-GPU test). Chosen for zero register spills
# on sm_90 (perf/results/sm90-static/resources.md); not yet measured on a GPU. Kernel-test mode
# runs the same tiles and departs only in DOT_FP32 (_dot_args): the interpreter's bf16 tl.dot
# gives wrong results, so there the operands are cast to float32 first.
def _stages(dtype: torch.dtype) -> int:
    """Software-pipeline depth: 3 for 16-bit operands, 2 for float32 (twice the shared memory per stage)."""
    return 3 if dtype.itemsize < 4 else 2


def gemm_config(channels: int, dtype: torch.dtype, ieee: bool, int64: bool) -> LaunchConfig:
    """Phase (forward) and grad_x implicit-GEMM tiles: BLOCK_M pixels x BLOCK_N channels (of
    ``channels``), BLOCK_K reduction channels per step, on 8 warps (two warp groups). 128 x 128
    tiles, or these on 4 warps, spill (the row offsets, masks and epilogue addresses per
    thread). ``ieee`` float32 dots run on the FMA units with both operands in registers: half
    the reduction step; 64-bit offsets (``int64``, tensors of 2**31+ elements): half the rows."""
    tiles = dict(BLOCK_M=64 if int64 else 128, BLOCK_N=32 if channels <= 32 else 64, BLOCK_K=16 if ieee else 32)
    return LaunchConfig(tiles, num_warps=8, num_stages=_stages(dtype))


def grad_weight_config(cin: int, cout: int, dtype: torch.dtype) -> LaunchConfig:
    """grad_weight tiles: BLOCK_M input x BLOCK_N output channels, BLOCK_P pixels per reduction step.

    128 output channels on 8 warps where there are that many: on the H200 (window 2,
    perf/results/nvidia-h200/window-2/sweep.json) the 512 -> 256 channel, 32x32 U-Net
    up-sampling forward+backward (fp32, TF32) took 1.03 ms with 64 x 128 tiles on 8 warps,
    1.14 ms with 128 x 64 on 8, 1.39 ms with 64 x 64 on 4."""
    wide = cout >= 128
    tiles = dict(BLOCK_M=32 if cin <= 32 else 64, BLOCK_N=128 if wide else 32 if cout <= 32 else 64, BLOCK_P=32)
    return LaunchConfig(tiles, num_warps=8 if wide else 4, num_stages=_stages(dtype))


ADD_ACT = LaunchConfig(dict(BLOCK=1024), num_warps=4)
"""The elementwise epilogue of the cuDNN fallback: 8 elements per thread."""


# ----------------------------------------------------------------------------- kernel launches
def _dot_args(dtype: torch.dtype) -> dict:
    tf32 = dtype == torch.float32 and torch.backends.cudnn.allow_tf32 and not KERNEL_TEST_MODE
    return dict(DOT_FP32=KERNEL_TEST_MODE, PRECISION="tf32" if tf32 or dtype != torch.float32 else "ieee")


def _launch_phase(x: Tensor, weight: Tensor, bias: Optional[Tensor], skip: Optional[Tensor], out: Tensor,
                  stride: int, padding: int, relu: bool) -> None:
    """out (a [B, COUT, HOUT, WOUT] tensor or view) = act(conv_transpose2d(x, weight, bias) + skip)."""
    b, cin, h, w = x.shape
    cout, k = weight.shape[1], weight.shape[2]
    hout, wout = out.shape[2], out.shape[3]
    qh, qw = triton.cdiv(hout, stride), triton.cdiv(wout, stride)
    dot = _dot_args(x.dtype)
    sk = skip if skip is not None else out
    int64 = needs_int64(x, weight, sk, out)
    config = gemm_config(cout, x.dtype, dot["PRECISION"] == "ieee", int64)
    n_tiles = triton.cdiv(cout, config.tiles["BLOCK_N"])
    grid = (triton.cdiv(b * qh * qw, config.tiles["BLOCK_M"]) * n_tiles * stride * stride,)
    kernels.deconv_phase_kernel[grid](
        x, weight, bias if bias is not None else weight, sk, out,
        b, cin, h, w, cout, hout, wout, qh, qw, n_tiles,
        *x.stride(), *weight.stride(), *sk.stride(), *out.stride(),
        S=stride, K=k, P=padding, TAPS=triton.cdiv(k, stride),
        HAS_BIAS=bias is not None, HAS_SKIP=skip is not None, RELU=relu, **dot,
        INT64=int64, **config.kwargs)


def _launch_add_act(y: Tensor, skip: Optional[Tensor], out: Tensor, relu: bool) -> None:
    """out = act(y + skip) elementwise (the epilogue of the cuDNN fallback)."""
    n = y.numel()
    sk = skip if skip is not None else y
    kernels.add_act_kernel[(triton.cdiv(n, ADD_ACT.tiles["BLOCK"]),)](
        y, sk, out, n, *y.shape[1:], *y.stride(), *sk.stride(), *out.stride(),
        HAS_SKIP=skip is not None, RELU=relu, COMPUTE=tl_compute_dtype(y.dtype), INT64=needs_int64(y, sk, out),
        **ADD_ACT.kwargs)


def _like_x(x: Tensor, *tensors: Optional[Tensor]) -> list[Optional[Tensor]]:
    """The other operands in x's dtype (the public functions already cast them; the raw
    ``torch.ops`` entries may be called with mixed dtypes)."""
    return [t if t is None or t.dtype == x.dtype else t.to(x.dtype) for t in tensors]


def _forward_into(x: Tensor, weight: Tensor, bias: Optional[Tensor], skip: Optional[Tensor], out: Tensor,
                  stride: int, padding: int, output_padding: int, relu: bool) -> None:
    if out.numel() == 0:
        return
    weight, bias = _like_x(x, weight, bias)
    if triton_gemm_supported(x.dtype, weight.shape[2], stride) and _pixels_fit_int32(x, out):
        _launch_phase(x, weight, bias, skip, out, stride, padding, relu)
    else:
        y = F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)
        _launch_add_act(y, skip, out, relu)


# ----------------------------------------------------------------------------- deconv_skip
def _skip_torch(x: Tensor, weight: Tensor, bias: Optional[Tensor], skip: Optional[Tensor], stride: int,
                padding: int, output_padding: int, activation: str) -> Tensor:
    weight, bias = _like_x(x, weight, bias)
    y = F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)
    if skip is not None:
        y = y + skip
    if activation == "relu":
        y = torch.relu(y)
    out = _new_output(x, weight.shape[1], weight.shape[2], stride, padding, output_padding)
    return out.copy_(y)


def _skip_triton(x: Tensor, weight: Tensor, bias: Optional[Tensor], skip: Optional[Tensor], stride: int,
                 padding: int, output_padding: int, activation: str) -> Tensor:
    out = _new_output(x, weight.shape[1], weight.shape[2], stride, padding, output_padding)
    _forward_into(x, weight, bias, skip, out, stride, padding, output_padding, activation == "relu")
    return out


def _example(device: torch.device, concat: bool = False) -> tuple:
    x = torch.randn(2, 8, 5, 6, device=device)
    weight = torch.randn(8, 4, 2, 2, device=device)
    skip = torch.randn(2, 3 if concat else 4, 10, 12, device=device)
    return x, weight, torch.randn(4, device=device), skip, 2, 0, 0, "relu"


deconv_skip_op = fused_op("deconv_skip", _skip_torch, _skip_triton, example=_example)


@deconv_skip_op.register_fake
def _(x, weight, bias, skip, stride, padding, output_padding, activation):
    return _new_output(x, weight.shape[1], weight.shape[2], stride, padding, output_padding)


# ----------------------------------------------------------------------------- deconv_concat
def _concat_torch(x: Tensor, weight: Tensor, bias: Optional[Tensor], skip: Tensor, stride: int,
                  padding: int, output_padding: int, activation: str) -> Tensor:
    cout = weight.shape[1]
    weight, bias = _like_x(x, weight, bias)
    y = F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)
    out = _new_output(x, cout + skip.shape[1], weight.shape[2], stride, padding, output_padding)
    out[:, :cout] = torch.relu(y) if activation == "relu" else y
    out[:, cout:] = skip
    return out


def _concat_triton(x: Tensor, weight: Tensor, bias: Optional[Tensor], skip: Tensor, stride: int,
                   padding: int, output_padding: int, activation: str) -> Tensor:
    cout = weight.shape[1]
    out = _new_output(x, cout + skip.shape[1], weight.shape[2], stride, padding, output_padding)
    _forward_into(x, weight, bias, None, out[:, :cout], stride, padding, output_padding, activation == "relu")
    out[:, cout:].copy_(skip)
    return out


deconv_concat_op = fused_op("deconv_concat", _concat_torch, _concat_triton,
                            example=lambda d: _example(d, concat=True))


@deconv_concat_op.register_fake
def _(x, weight, bias, skip, stride, padding, output_padding, activation):
    return _new_output(x, weight.shape[1] + skip.shape[1], weight.shape[2], stride, padding, output_padding)


# ----------------------------------------------------------------------------- backward
def _backward_torch(grad: Tensor, x: Tensor, weight: Tensor, stride: int, padding: int, output_padding: int,
                    need_input: bool, need_weight: bool) -> tuple[Tensor, Tensor]:
    grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
        *_like_x(x, grad), x, *_like_x(x, weight), None, [stride] * 2, [padding] * 2, [1, 1], True,
        [output_padding] * 2, 1,
        [need_input, need_weight, False])
    grad_x = grad_x.contiguous(memory_format=_memory_format(x)) if need_input else x.new_empty(0)
    grad_w = grad_w.contiguous().to(weight.dtype) if need_weight else weight.new_empty(0)
    return grad_x, grad_w


def _backward_triton(grad: Tensor, x: Tensor, weight: Tensor, stride: int, padding: int, output_padding: int,
                     need_input: bool, need_weight: bool) -> tuple[Tensor, Tensor]:
    k = weight.shape[2]
    if not (triton_gemm_supported(x.dtype, k, stride) and grad.dtype == weight.dtype == x.dtype
            and _pixels_fit_int32(x, grad)):
        return _backward_torch(grad, x, weight, stride, padding, output_padding, need_input, need_weight)
    b, cin, h, w = x.shape
    cout, hout, wout = weight.shape[1], grad.shape[2], grad.shape[3]
    grad_x = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=_memory_format(x)) \
        if need_input else x.new_empty(0)
    grad_w = torch.zeros_like(weight, memory_format=torch.contiguous_format) if need_weight else weight.new_empty(0)
    if x.numel() == 0 or grad.numel() == 0 or weight.numel() == 0:
        return grad_x.zero_(), grad_w
    dot = _dot_args(x.dtype)
    if need_input:
        int64 = needs_int64(grad, weight, grad_x)
        config = gemm_config(cin, x.dtype, dot["PRECISION"] == "ieee", int64)
        grid = (triton.cdiv(b * h * w, config.tiles["BLOCK_M"]), triton.cdiv(cin, config.tiles["BLOCK_N"]))
        kernels.deconv_grad_input_kernel[grid](
            grad, weight, grad_x, b, cin, h, w, cout, hout, wout,
            *grad.stride(), *weight.stride(), *grad_x.stride(),
            S=stride, K=k, P=padding, **dot, INT64=int64, **config.kwargs)
    if need_weight:
        config = grad_weight_config(cin, cout, x.dtype)
        block_m, block_n, block_p = config.tiles["BLOCK_M"], config.tiles["BLOCK_N"], config.tiles["BLOCK_P"]
        npix = b * h * w
        tiles = triton.cdiv(cin, block_m) * triton.cdiv(cout, block_n) * k * k
        # split the pixel reduction until ~4 programs per SM, each with >= 4 pixel blocks
        split = max(1, min(triton.cdiv(4 * multiprocessor_count(x.device), tiles), triton.cdiv(npix, 4 * block_p)))
        chunk = triton.cdiv(triton.cdiv(npix, split), block_p) * block_p
        split = triton.cdiv(npix, chunk)
        part = torch.empty((split, cin, cout, k, k), dtype=torch.float32, device=x.device)
        grid = (triton.cdiv(cin, block_m), triton.cdiv(cout, block_n), k * k * split)
        kernels.deconv_grad_weight_kernel[grid](
            x, grad, part, b, cin, h, w, cout, hout, wout, chunk, split,
            *x.stride(), *grad.stride(),
            S=stride, K=k, P=padding, **dot, INT64=needs_int64(x, grad, part), **config.kwargs)
        grad_w = part.sum(0).to(weight.dtype)
    return grad_x, grad_w


def _backward_example(device: torch.device) -> tuple:
    x, weight = torch.randn(2, 8, 5, 6, device=device), torch.randn(8, 4, 2, 2, device=device)
    return torch.randn(2, 4, 10, 12, device=device), x, weight, 2, 0, 0, True, True


deconv_backward_op = fused_op("deconv_backward", _backward_torch, _backward_triton, example=_backward_example)


@deconv_backward_op.register_fake
def _(grad, x, weight, stride, padding, output_padding, need_input, need_weight):
    grad_x = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=_memory_format(x)) \
        if need_input else x.new_empty(0)
    grad_w = torch.empty(weight.shape, dtype=weight.dtype, device=weight.device) \
        if need_weight else weight.new_empty(0)
    return grad_x, grad_w


# ----------------------------------------------------------------------------- autograd
def _setup_context(ctx, inputs, output):
    x, weight, bias, skip, stride, padding, output_padding, activation = inputs
    ctx.args = (stride, padding, output_padding)
    ctx.relu = activation == "relu"
    ctx.cout = weight.shape[1]
    ctx.save_for_backward(x, weight, output if ctx.relu else None)


def _grads(ctx, grad_pre: Tensor) -> tuple:
    """Grads of x, weight, bias from the gradient of conv_transpose2d's output."""
    x, weight, _ = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    grad_x = grad_w = grad_b = None
    if need_x or need_w:
        gx, gw = deconv_backward_op(grad_pre, x, weight, *ctx.args, need_x, need_w)
        grad_x = gx if need_x else None
        grad_w = gw if need_w else None
    if need_b:
        grad_b = grad_pre.sum((0, 2, 3))
    return grad_x, grad_w, grad_b


def _skip_backward(ctx, grad):
    _, _, out = ctx.saved_tensors
    grad_pre = grad * (out > 0) if ctx.relu else grad
    grad_x, grad_w, grad_b = _grads(ctx, grad_pre)
    grad_skip = grad_pre if ctx.needs_input_grad[3] else None
    return grad_x, grad_w, grad_b, grad_skip, None, None, None, None


def _concat_backward(ctx, grad):
    _, _, out = ctx.saved_tensors
    grad_y = grad[:, :ctx.cout]
    grad_pre = grad_y * (out[:, :ctx.cout] > 0) if ctx.relu else grad_y
    grad_x, grad_w, grad_b = _grads(ctx, grad_pre)
    grad_skip = grad[:, ctx.cout:] if ctx.needs_input_grad[3] else None
    return grad_x, grad_w, grad_b, grad_skip, None, None, None, None


deconv_skip_op.register_autograd(_skip_backward, setup_context=_setup_context)
deconv_concat_op.register_autograd(_concat_backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------- public API
def _check_args(op: str, x: Tensor, weight: Tensor, bias: Optional[Tensor], skip: Optional[Tensor],
                stride: int, padding: int, output_padding: int, activation: Optional[str],
                concat: bool) -> tuple:
    """Validate, apply autocast, and return the op's arguments."""
    check_float(x, op, "x")
    check_float(weight, op, "weight")
    if x.dim() != 4:
        raise ValueError(f"{op}: x must have shape [B, C_in, H, W], got {list(x.shape)}")
    if weight.dim() != 4 or weight.shape[0] != x.shape[1] or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"{op}: weight must have shape [C_in={x.shape[1]}, C_out, k, k] "
                         f"(as nn.ConvTranspose2d.weight, square kernel), got {list(weight.shape)}")
    cout, k = weight.shape[1], weight.shape[2]
    if bias is not None:
        check_float(bias, op, "bias")
        if bias.shape != (cout,):
            raise ValueError(f"{op}: bias must have shape [C_out={cout}], got {list(bias.shape)}")
    for name, value in (("stride", stride), ("padding", padding), ("output_padding", output_padding)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{op}: {name} must be an int (square kernels and strides only), got {value!r}")
    if stride < 1 or padding < 0 or not 0 <= output_padding < stride:
        raise ValueError(f"{op}: need stride >= 1, padding >= 0 and 0 <= output_padding < stride, got "
                         f"stride={stride}, padding={padding}, output_padding={output_padding}")
    if activation not in (None, "none", "relu"):
        raise ValueError(f"{op}: activation must be None or 'relu', got {activation!r}")
    hout = output_size(x.shape[2], k, stride, padding, output_padding)
    wout = output_size(x.shape[3], k, stride, padding, output_padding)
    if hout <= 0 or wout <= 0:
        raise ValueError(f"{op}: output size {hout}x{wout} is empty for input {x.shape[2]}x{x.shape[3]}, "
                         f"kernel {k}, stride {stride}, padding {padding}; reduce padding")
    if skip is not None:
        check_float(skip, op, "skip")
        channels = skip.shape[1] if concat and skip.dim() == 4 else cout
        want = [x.shape[0], channels, hout, wout]
        if list(skip.shape) != want:
            what = "[B, C_skip, H_out, W_out]" if concat else "[B, C_out, H_out, W_out]"
            raise ValueError(f"{op}: skip must have shape {what} = {want} (the transposed convolution's "
                             f"output size), got {list(skip.shape)}; crop or pad the skip first")
    check_same_device(op, x=x, weight=weight, bias=bias, skip=skip)

    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    else:
        dtype = x.dtype
        for name, t in (("weight", weight), ("bias", bias), ("skip", skip)):
            if t is not None and t.dtype != dtype:
                raise TypeError(f"{op}: {name} has dtype {t.dtype} but x has {dtype}; convert it with "
                                f".to({dtype}) or run under torch.autocast")

    def cast(t: Optional[Tensor]) -> Optional[Tensor]:
        return None if t is None else t.to(dtype)

    return (cast(x), cast(weight), cast(bias), cast(skip), stride, padding, output_padding,
            "relu" if activation == "relu" else "none")


def deconv_skip(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, skip: Optional[Tensor] = None,
                stride: int = 2, padding: int = 0, output_padding: int = 0,
                activation: Optional[str] = None) -> Tensor:
    """Transposed convolution plus skip connection plus activation, fused:
    ``act(conv_transpose2d(x, weight, bias, stride, padding, output_padding) + skip)``.

    Args:
        x: Tensor[B, C_in, H, W], float16/bfloat16/float32/float64, contiguous or channels-last.
        weight: Tensor[C_in, C_out, k, k] (``nn.ConvTranspose2d.weight``; groups 1, dilation 1).
        bias: optional Tensor[C_out].
        skip: optional Tensor[B, C_out, H_out, W_out], H_out = (H - 1) * stride - 2 * padding
            + k + output_padding (W_out alike), added before the activation.
        stride, padding, output_padding: ints, as ``conv_transpose2d`` (output_padding < stride).
        activation: None or 'relu'.
    Returns:
        Tensor[B, C_out, H_out, W_out] in x's dtype (the autocast dtype under autocast),
        channels-last when x is. Differentiable in x, weight, bias and skip.
    """
    args = _check_args("deconv_skip", x, weight, bias, skip, stride, padding, output_padding, activation, False)
    return deconv_skip_op(*args)


def deconv_concat(x: Tensor, weight: Tensor, bias: Optional[Tensor], skip: Tensor, stride: int = 2,
                  padding: int = 0, output_padding: int = 0, activation: Optional[str] = None) -> Tensor:
    """Transposed convolution concatenated with its skip (U-Net), written once:
    ``cat([act(conv_transpose2d(x, weight, bias, stride, padding, output_padding)), skip], dim=1)``.

    Args:
        x: Tensor[B, C_in, H, W], float16/bfloat16/float32/float64, contiguous or channels-last.
        weight: Tensor[C_in, C_out, k, k] (``nn.ConvTranspose2d.weight``).
        bias: optional Tensor[C_out].
        skip: Tensor[B, C_skip, H_out, W_out] (H_out, W_out as in :func:`deconv_skip`).
        stride, padding, output_padding, activation: as :func:`deconv_skip`; the activation
            applies to the upsampled channels only.
    Returns:
        Tensor[B, C_out + C_skip, H_out, W_out]: channels [0, C_out) the activated transposed
        convolution, then the skip. Differentiable in x, weight, bias and skip.
    """
    if skip is None:
        raise ValueError("deconv_concat: skip is required (use deconv_skip for no skip)")
    args = _check_args("deconv_concat", x, weight, bias, skip, stride, padding, output_padding, activation, True)
    return deconv_concat_op(*args)
