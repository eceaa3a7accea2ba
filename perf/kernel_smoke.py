"""Run every kernel variant once at odd sizes and compare with the CPU torch path.

The GPU window runs this under ``compute-sanitizer --tool memcheck`` (an out-of-bounds
access or a race shows up as a sanitizer error) and it checks the values too:

    python perf/kernel_smoke.py --save-reference ref.pt     # CPU torch path (no TRITON_INTERPRET)
    python perf/kernel_smoke.py --device cuda --reference ref.pt

With ``--device cpu`` under ``TRITON_INTERPRET=1`` the kernels run in Triton's
interpreter (the window's dry run). Without ``--reference`` the CPU reference is
computed first in a child process that runs the torch path. The calls are the ones of
``perf/kernel_calls.py`` (every kernel, every launch-configuration variant).

Comparison: integer and bool outputs must be equal; floating ones within a relative
norm error by dtype (``TOLERANCE``). A float32 call with TF32 dots (the default for the
deconv GEMMs on the GPU) takes fp16's bound: TF32 rounds the operands to a 10-bit mantissa,
and a ReLU's gradient mask then flips near 0 (measured on the H200: 0.6-1.5% in the
gradients). The last line is ``smoke: N calls, F failed``; the exit status is 1 when any
call failed or raised.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOLERANCE = {torch.float64: 1e-9, torch.float32: 3e-3, torch.float16: 3e-2, torch.bfloat16: 6e-2}
"""Largest allowed ||out - ref|| / ||ref|| per floating dtype. The half-precision bounds are not
their rounding alone: a ReLU's gradient mask comes from the rounded output, so pixels near 0
flip between two implementations (deconv fp16 gradients: 1.3-1.6% from float64 on both the CPU
path and the kernel, measured in the interpreter)."""


def tolerance(dtype: torch.dtype, tf32: bool) -> float:
    """The bound for one output: TF32 dots (10-bit mantissa, like fp16) take fp16's."""
    return TOLERANCE[torch.float16 if tf32 and dtype == torch.float32 else dtype]


def run_all(device: torch.device, shard: tuple[int, int] = (0, 1)) -> dict[str, list[torch.Tensor] | str]:
    """Every call's outputs on ``device`` (moved to the CPU), or the error it raised; with
    ``shard=(k, n)`` only every n-th call from the k-th (parallel processes share the work)."""
    from perf.kernel_calls import CALLS

    results: dict[str, list[torch.Tensor] | str] = {}
    for call in CALLS[shard[0]::shard[1]]:
        try:
            outputs = call.run(device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            results[call.name] = [t.detach().cpu() for t in outputs]
        except Exception as error:  # report every call
            results[call.name] = f"{type(error).__name__}: {error}"
    return results


def mismatch(out: torch.Tensor, ref: torch.Tensor, tf32: bool = False) -> str | None:
    """Why ``out`` does not match ``ref``, or None."""
    if out.shape != ref.shape or out.dtype != ref.dtype:
        return f"shape/dtype {tuple(out.shape)} {out.dtype} vs {tuple(ref.shape)} {ref.dtype}"
    if not out.dtype.is_floating_point:
        wrong = int((out != ref).sum())
        return f"{wrong} of {out.numel()} elements differ" if wrong else None
    if not torch.equal(out.isnan(), ref.isnan()):
        return "NaN in different places"
    finite = ~ref.isnan()
    a, b = out[finite].double(), ref[finite].double()
    error = float((a - b).norm() / b.norm().clamp_min(1e-30)) if b.numel() else 0.0
    bound = tolerance(ref.dtype, tf32)
    return f"relative error {error:.2e} > {bound:.0e}" if error > bound else None


def compare(results: dict, reference: dict) -> list[str]:
    from perf.kernel_calls import CALLS

    tf32 = {call.name for call in CALLS if call.tf32}
    failures = []
    for name, outputs in results.items():
        ref = reference.get(name)
        if isinstance(outputs, str):
            failures.append(f"{name}: raised {outputs}")
        elif ref is None or isinstance(ref, str):
            failures.append(f"{name}: no reference ({ref})")
        elif len(ref) != len(outputs):
            failures.append(f"{name}: {len(outputs)} outputs vs {len(ref)} in the reference")
        else:
            for i, (out, expected) in enumerate(zip(outputs, ref)):
                why = mismatch(out, expected, name in tf32)
                if why:
                    failures.append(f"{name} output {i}: {why}")
    return failures


def reference_in_child(path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    subprocess.run([sys.executable, __file__, "--save-reference", str(path)], env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--reference", type=Path, help="reference outputs saved by --save-reference")
    parser.add_argument("--save-reference", type=Path, help="compute the CPU torch-path outputs and save them")
    parser.add_argument("--shard", default="0/1", metavar="K/N",
                        help="run only every N-th call from the K-th (e.g. 8 processes compiling in parallel)")
    args = parser.parse_args(argv)
    shard = tuple(int(part) for part in args.shard.split("/"))
    if len(shard) != 2 or not 0 <= shard[0] < shard[1]:
        parser.error(f"--shard must be K/N with 0 <= K < N, got {args.shard}")
    if args.save_reference:
        if os.environ.get("TRITON_INTERPRET") == "1":
            parser.error("--save-reference runs the torch path: unset TRITON_INTERPRET")
        torch.save(run_all(torch.device("cpu")), args.save_reference)
        return 0
    reference_path = args.reference
    if reference_path is None:
        reference_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"kernel-smoke-ref-{os.getpid()}.pt"
        reference_in_child(reference_path)
    reference = torch.load(reference_path, weights_only=True)
    results = run_all(torch.device(args.device), shard)
    failures = compare(results, reference)
    for line in failures:
        print(f"FAILED {line}")
    print(f"smoke: {len(results)} calls on {args.device}{'' if shard == (0, 1) else f' (shard {args.shard})'}, "
          f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
