"""``tritonvision info``: versions, the device, and each registered op run once."""
from __future__ import annotations

import argparse
import time

SUMMARY = "Show versions, the device, and which backend each fused op uses here; run each op once."
EXAMPLES = """\
  tritonvision info
  tritonvision info --device cuda:1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None,
                        help="device to run the ops on (default: cuda if available, else cpu)")


def _run_once(fused, device) -> str:
    """'1.23 ms', or 'FAILED: <error>'."""
    import torch

    inputs = fused.example(device)
    start = time.perf_counter()
    try:
        fused.op(*inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    except Exception as error:  # report every op, then fail
        return f"FAILED: {error}"
    return f"{(time.perf_counter() - start) * 1e3:.2f} ms"


def _table(rows: list[tuple[str, str, str]]) -> str:
    """Columns as wide as their longest cell; times right-aligned, failures left."""
    header = ("op", "backend", "ran in")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(2)]
    time_width = max(len(r[2]) for r in (header, *rows) if not r[2].startswith("FAILED"))
    lines = []
    for op, backend, result in (header, *rows):
        cell = result if result.startswith("FAILED") else f"{result:>{time_width}}"
        lines.append(f"{op:<{widths[0]}}  {backend:<{widths[1]}}  {cell}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch
    import triton

    from tritonvision.ops._op import KERNEL_TEST_MODE, REGISTERED, backend
    from tritonvision.training.distributed import resolve_device

    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, triton {triton.__version__}, device {device} ({name})"
          f"{', kernel-test mode (TRITON_INTERPRET=1)' if KERNEL_TEST_MODE else ''}")
    rows = [(op_name, backend(device), _run_once(fused, device))
            for op_name, fused in sorted(REGISTERED.items())]
    print(_table(rows))
    return 1 if any(r[2].startswith("FAILED") for r in rows) else 0
