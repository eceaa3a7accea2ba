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
    parser.add_argument("--ops", default=None,
                        help="comma-separated families (perf/cases/<family>.py) to run; default all")
    parser.add_argument("--size", choices=("tiny", "small", "full"), default=None,
                        help="'tiny' (the GPU window's dry run in the interpreter), 'small' CPU smoke sizes or the 'full' GPU sizes (default: full on "
                             "cuda, small on cpu)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="default: cuda if available, else cpu")
    parser.add_argument("--save", metavar="NAME", default=None,
                        help="save perf/results/<device-slug>/NAME.{json,md,png}")
    parser.add_argument("--compare", metavar="NAME", default=None,
                        help="compare ours with a saved run (NAME or a .json path); exit 1 when "
                             "any case is more than --threshold slower")
    parser.add_argument("--threshold", type=float, default=0.10,
                        help="allowed slow-down for --compare, as a fraction (default 0.10)")
    parser.add_argument("--skip", default="",
                        help="comma-separated baseline names not to time (e.g. 'compile')")
    parser.add_argument("--baselines", default=None,
                        help="comma-separated baseline names to time, the others skipped (default: all)")
    parser.add_argument("--family-budget", type=float, default=None, metavar="SECONDS",
                        help="stop starting new cases of a family after this many seconds (the rest "
                             "are reported as not timed); with --save, results are saved after every case")
    parser.add_argument("--n-sets", type=int, default=3, help="rotating input sets per case (default 3)")
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="CPU: least seconds of timed calls per function (default 0.05)")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. the machine)")
    # for tests: another results folder, and a small (cache-resident, so flattering) roofline
    parser.add_argument("--results-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick-roofline", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    root = _perf_root()
    if root is None:
        print("tritonvision bench: the benchmark suite (perf/) is not installed with the package; "
              f"tritonvision is imported from {Path(__file__).resolve().parents[1]}, which has no "
              "perf/ beside it. Install from a source checkout (git clone ...; pip install -e .) "
              "and run `tritonvision bench` (or `python -m perf`) there.", file=sys.stderr)
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from perf.runner import command_from_args, run as run_benchmarks

    if len(sys.argv) > 1 and sys.argv[1] == "bench":  # the real command line
        command = shlex.join(["tritonvision", "bench", *sys.argv[2:]])
    else:  # called as tritonvision.cli.main([...])
        command = command_from_args("tritonvision bench", args)
    return run_benchmarks(args, command=command)
