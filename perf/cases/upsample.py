"""Benchmark cases of upsample_bilinear_add, FCN-8s's decoder step
(``F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip``).

Shapes: B = 8, C = 21 (VOC classes) and 64, 256 -> 512 ("full"); B = 1, C = 3, 16 -> 32
("small", CPU smoke). fp32 and bf16, forward and forward + backward.

Baselines: "eager" (interpolate, then add: the upsampled tensor is written and read
back) and "compile" (``torch.compile`` of the same two lines). No anchor library
fuses this step.

Minimum traffic, forward: read x + read skip + write out. Forward + backward adds
read grad + write grad_x (grad_skip is grad itself, no traffic).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from perf.harness import BenchCase, compiled

SHAPES = {"tiny": [(1, 2, 4)], "small": [(1, 3, 16)], "full": [(8, 21, 256), (8, 64, 256)]}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def eager_upsample_add(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip


def _fwd_bwd(fn):
    def run(x: torch.Tensor, skip: torch.Tensor, grad: torch.Tensor):
        return torch.autograd.grad(fn(x, skip), (x, skip), grad)
    run.__name__ = f"{getattr(fn, '__name__', 'fn')}_fwd_bwd"
    return run


def cases(device: torch.device, size: str) -> list[BenchCase]:
    import tritonvision.ops as ops

    def ours(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return ops.upsample_bilinear_add(x, skip, scale_factor=2)

    found = []
    for b, c, h in SHAPES[size]:
        H = 2 * h
        for dtype_name, dtype in DTYPES.items():
            item = torch.empty((), dtype=dtype).element_size()
            x_bytes, big_bytes = b * c * h * h * item, b * c * H * H * item

            def make_inputs(k: int, b=b, c=c, h=h, H=H, dtype=dtype, grad=False) -> tuple:
                generator = torch.Generator().manual_seed(2000 + k)
                x = torch.randn(b, c, h, h, generator=generator).to(device=device, dtype=dtype)
                skip = torch.randn(b, c, H, H, generator=generator).to(device=device, dtype=dtype)
                if not grad:
                    return x, skip
                g = torch.randn(b, c, H, H, generator=generator).to(device=device, dtype=dtype)
                return x.requires_grad_(), skip.requires_grad_(), g

            shape = f"B={b} C={c} {h}->{H}"
            found.append(BenchCase(
                family="upsample", name="upsample_bilinear_add", shape=shape, dtype=dtype_name,
                make_inputs=make_inputs, ours=ours,
                baselines={"eager": eager_upsample_add, "compile": compiled(eager_upsample_add)},
                bytes_moved=x_bytes + 2 * big_bytes))
            found.append(BenchCase(
                family="upsample", name="upsample_bilinear_add_fwd_bwd", shape=shape, dtype=dtype_name,
                make_inputs=lambda k, mk=make_inputs: mk(k, grad=True), ours=_fwd_bwd(ours),
                baselines={"eager": _fwd_bwd(eager_upsample_add),
                           "compile": compiled(_fwd_bwd(eager_upsample_add))},
                bytes_moved=2 * x_bytes + 4 * big_bytes))
    return found
