"""Benchmark cases of deconv_skip / deconv_concat, the decoder step of FCN-8s and U-Net:
``conv_transpose2d(x, weight, bias) + skip`` and ``cat([conv_transpose2d(...), skip], 1)``.

Shapes ("full", a 512x512 input): U-Net's up-convolutions 2x2/s2 512->256 at 32->64 and
128->64 at 256->512 (add and concat), FCN-8s-style 4x4/s2/p1 upsampling 512->256 at 32->64
and its class-score upsampling 21->21 at 32->64. "small" (CPU smoke): B=1, 16->8 channels, 8->16.
fp32 and bf16, forward and forward + backward (grads of x, weight, bias, skip).

Baselines: "eager" (``F.conv_transpose2d`` -- cuDNN on a GPU -- then add / cat: the upsampled
tensor is written, read back and written again) and "compile" (``torch.compile`` of the same
lines). The anchor library is cuDNN itself, inside "eager".

flops = 2 * B * H_in * W_in * C_in * C_out * k^2 (x3 for forward + backward); minimum traffic,
forward: read x, weight, skip, write out (concat: out has C_out + C_skip channels).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from perf.harness import BenchCase, compiled

# name, B, C_in, C_out, H_in, k, stride, padding, mode
SHAPES = {
    "tiny": [("unet_up", 1, 4, 4, 3, 2, 2, 0, "concat"), ("fcn8s_up", 1, 4, 4, 3, 4, 2, 1, "add")],
    "small": [("unet_up", 1, 16, 8, 8, 2, 2, 0, "concat"), ("fcn8s_up", 1, 16, 8, 8, 4, 2, 1, "add")],
    "full": [
        ("unet_up1", 4, 512, 256, 32, 2, 2, 0, "concat"),
        ("unet_up4", 4, 128, 64, 256, 2, 2, 0, "concat"),
        ("unet_up1_add", 4, 512, 256, 32, 2, 2, 0, "add"),
        ("unet_up4_add", 4, 128, 64, 256, 2, 2, 0, "add"),
        ("fcn8s_up_features", 4, 512, 256, 32, 4, 2, 1, "add"),
        ("fcn8s_upscore2", 8, 21, 21, 32, 4, 2, 1, "add"),
    ],
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _eager(mode: str, stride: int, padding: int):
    if mode == "add":
        def eager_deconv_add(x, weight, bias, skip):
            return F.conv_transpose2d(x, weight, bias, stride, padding) + skip
        return eager_deconv_add

    def eager_deconv_concat(x, weight, bias, skip):
        return torch.cat([F.conv_transpose2d(x, weight, bias, stride, padding), skip], dim=1)
    return eager_deconv_concat


def _ours(mode: str, stride: int, padding: int):
    import tritonvision.ops as ops

    if mode == "add":
        return lambda x, weight, bias, skip: ops.deconv_skip(x, weight, bias, skip, stride, padding)
    return lambda x, weight, bias, skip: ops.deconv_concat(x, weight, bias, skip, stride, padding)


def _fwd_bwd(fn):
    def run(x, weight, bias, skip, grad):
        return torch.autograd.grad(fn(x, weight, bias, skip), (x, weight, bias, skip), grad)
    run.__name__ = f"{getattr(fn, '__name__', 'fn')}_fwd_bwd"
    return run


def cases(device: torch.device, size: str) -> list[BenchCase]:
    found = []
    for name, b, cin, cout, h, k, stride, padding, mode in SHAPES[size]:
        hout = (h - 1) * stride - 2 * padding + k
        cskip = cout
        cfinal = cout + cskip if mode == "concat" else cout
        for dtype_name, dtype in DTYPES.items():
            item = torch.empty((), dtype=dtype).element_size()

            def make_inputs(n: int, b=b, cin=cin, cout=cout, h=h, k=k, hout=hout, cskip=cskip, cfinal=cfinal,
                            dtype=dtype, grad=False) -> tuple:
                generator = torch.Generator().manual_seed(3000 + n)
                x = torch.randn(b, cin, h, h, generator=generator)
                weight = torch.randn(cin, cout, k, k, generator=generator) / (cin * (k // stride) ** 2) ** 0.5
                bias = torch.randn(cout, generator=generator)
                skip = torch.randn(b, cskip, hout, hout, generator=generator)
                tensors = [t.to(device=device, dtype=dtype) for t in (x, weight, bias, skip)]
                if not grad:
                    return tuple(tensors)
                g = torch.randn(b, cfinal, hout, hout, generator=generator).to(device=device, dtype=dtype)
                return (*[t.requires_grad_() for t in tensors], g)

            flops = 2 * b * h * h * cin * cout * k * k
            in_bytes = (b * cin * h * h + cin * cout * k * k + cout + b * cskip * hout * hout) * item
            out_bytes = b * cfinal * hout * hout * item
            shape = f"B={b} {cin}->{cout} {h}->{hout} k={k} s={stride} p={padding} {mode}"
            eager, ours = _eager(mode, stride, padding), _ours(mode, stride, padding)
            found.append(BenchCase(
                family="deconv", name=f"{name}_fwd", shape=shape, dtype=dtype_name, make_inputs=make_inputs,
                ours=ours, baselines={"eager": eager, "compile": compiled(eager)},
                bytes_moved=in_bytes + out_bytes, flops=flops))
            found.append(BenchCase(
                family="deconv", name=f"{name}_fwd_bwd", shape=shape, dtype=dtype_name,
                make_inputs=lambda n, mi=make_inputs: mi(n, grad=True),
                ours=_fwd_bwd(ours), baselines={"eager": _fwd_bwd(eager), "compile": _fwd_bwd(compiled(eager))},
                # + read grad, write grad_x / grad_weight / grad_skip, re-read x
                bytes_moved=2 * (in_bytes + out_bytes) + in_bytes, flops=3 * flops))
    return found
