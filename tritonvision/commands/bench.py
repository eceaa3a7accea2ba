"""Benchmark the fused ops against eager torch, torch.compile and the anchor libraries; save or compare runs.

Runs every ``perf/cases/<family>.py`` of the source tree (``perf/`` is not installed
with the package: run from a git checkout, installed editable). Prints one table
(ours ms, each baseline ms, speed-ups, GB/s and TFLOP/s as a fraction of the measured
copy bandwidth / matmul rate, peak memory); ``--save NAME`` writes
perf/results/<device>/NAME.{json,md,png}; ``--compare NAME`` exits 1 when any case is
more than ``--threshold`` slower than the saved run. Exit 2 on errors.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def _perf_root() -> Path | None:
    """The repository root holding ``perf/runner.py`` next to the tritonvision package, if any."""
    root = Path(__file__).resolve().parents[2]  # tritonvision/commands/bench.py -> the checkout
    return root if (root / "perf" / "runner.py").is_file() else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    root = _perf_root()
    if root is None:
        # keep --help working; run() explains what is missing
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from perf.options import add_arguments as runner_arguments

    runner_arguments(parser)


def run(args: argparse.Namespace) -> int:
    root = _perf_root()
    if root is None:
        print("tritonvision bench: the benchmark suite (perf/) is not installed with the package; "
              f"tritonvision is imported from {Path(__file__).resolve().parents[1]}, which has no "
              "perf/ beside it. Install from a source checkout (git clone ...; pip install -e .) "
              "and run `tritonvision bench` (or `python -m perf`) there.", file=sys.stderr)
        return 2
    from perf.runner import command_from_args, run as run_benchmarks

    if len(sys.argv) > 1 and sys.argv[1] == "bench":  # the real command line
        command = shlex.join(["tritonvision", "bench", *sys.argv[2:]])
    else:  # called as tritonvision.cli.main([...])
        command = command_from_args("tritonvision bench", args)
    return run_benchmarks(args, command=command)
