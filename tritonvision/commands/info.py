"""Show versions, the device, and which backend each fused op uses here; run each op once."""
from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None,
                        help="device to run the ops on (default: cuda if available, else cpu)")


def run(args: argparse.Namespace) -> int:
    import torch
    import triton

    from tritonvision.ops._op import KERNEL_TEST_MODE, REGISTERED, backend
    from tritonvision.training.distributed import resolve_device

    try:
        device = resolve_device(args.device)
    except ValueError as error:
        print(f"tritonvision info: error: {error}")
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, triton {triton.__version__}, device {device} ({name})"
          f"{', kernel-test mode (TRITON_INTERPRET=1)' if KERNEL_TEST_MODE else ''}")
    print(f"{'op':<28} {'backend':<20} {'ran in':>10}")
    failures = 0
    for op_name, fused in sorted(REGISTERED.items()):
        inputs = fused.example(device)
        start = time.perf_counter()
        try:
            fused.op(*inputs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            result = f"{(time.perf_counter() - start) * 1e3:8.2f} ms"
        except Exception as error:  # report every op, then fail
            failures += 1
            result = f"FAILED: {error}"
        print(f"{op_name:<28} {backend(device):<20} {result:>10}")
    return 1 if failures else 0
