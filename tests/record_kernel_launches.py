"""Run every fused op's example inputs in kernel-test mode and print its Triton launches as JSON.

Used by test_kernels_compile_for_gpu.py: run with TRITON_INTERPRET=1 (set by the test), so the
kernels execute in the interpreter (every kernel of an op sees real data from the previous one)
while each launch's argument types and constexprs are recorded for an ahead-of-time GPU compile.
"""
import json
import sys

import torch
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

LAUNCH_OPTIONS = ("num_warps", "num_stages", "enable_fp_fusion")


def extra_calls():
    """Kernel variants the ops' example inputs do not reach: other dtypes, flags and paths."""
    from tritonvision import ops

    def boxes(n, dtype=torch.float32):
        xy = torch.rand(n, 2) * 10
        return torch.cat([xy, xy + 1 + torch.rand(n, 2) * 5], 1).to(dtype)

    x = torch.randn(1, 4, 5, 5, dtype=torch.bfloat16)
    yield lambda: ops.box_overlap(boxes(6), boxes(6), "ciou", aligned=True)
    yield lambda: ops.complete_box_iou(boxes(5, torch.float64), boxes(3, torch.float64))
    yield lambda: ops.generalized_box_iou(boxes(5, torch.bfloat16), boxes(3, torch.bfloat16))
    yield lambda: ops.deconv_skip(x, torch.randn(4, 3, 2, 2, dtype=torch.bfloat16),
                                  skip=torch.randn(1, 3, 10, 10, dtype=torch.bfloat16), activation="relu")
    yield lambda: ops.deconv_skip(x.float(), torch.randn(4, 3, 3, 3), stride=1,
                                  skip=torch.randn(1, 3, 7, 7), activation="relu")
    yield lambda: ops.dice_ce_loss(torch.randn(2, 3, 4, 4, dtype=torch.bfloat16, requires_grad=True),
                                   torch.randint(0, 3, (2, 4, 4))).backward()
    yield lambda: ops.upsample_bilinear_add(x.requires_grad_(), torch.randn(1, 4, 10, 10, dtype=torch.bfloat16)
                                            ).sum().backward()


def describe(value):
    if isinstance(value, torch.Tensor):
        return {"ptr": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, tl.dtype):
        return {"tl_dtype": value.name}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return {"value": value}
    return {"unsupported": type(value).__name__}


def main() -> None:
    import tritonvision.ops  # noqa: F401  (registers every op)
    from tritonvision.ops._op import REGISTERED

    launches = []
    original_run = InterpretedFunction.run

    def recording_run(self, *args, grid, warmup, **kwargs):
        fn = self.fn
        launches.append({
            "op": current_op,
            "kernel": f"{fn.__module__}.{fn.__name__}",
            "args": dict(zip(self.arg_names, map(describe, args))) | {
                k: describe(v) for k, v in kwargs.items() if k not in LAUNCH_OPTIONS},
            "options": {k: v for k, v in kwargs.items() if k in LAUNCH_OPTIONS},
        })
        return original_run(self, *args, grid=grid, warmup=warmup, **kwargs)

    InterpretedFunction.run = recording_run
    for current_op, fused in sorted(REGISTERED.items()):
        fused.op(*fused.example(torch.device("cpu")))
    for current_op, call in enumerate(extra_calls()):
        call()
    json.dump(launches, sys.stdout)


if __name__ == "__main__":
    main()
