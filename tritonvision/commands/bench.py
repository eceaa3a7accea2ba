"""``tritonvision bench``: ``python -m perf`` of the source checkout this package was
installed from (``perf/`` is not installed with the package), every argument passed on;
``tritonvision bench --help`` shows the runner's options."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

SUMMARY = "Benchmark the fused ops against eager torch, torch.compile and the anchor libraries."
EXAMPLES = """\
  tritonvision bench --help                 the benchmark runner's own options
  tritonvision bench --device cuda --save my-gpu
"""


def _perf_root() -> Path | None:
    """The repository root holding ``perf/runner.py`` next to the tritonvision package, if any."""
    root = Path(__file__).resolve().parents[2]  # tritonvision/commands/bench.py -> the checkout
    return root if (root / "perf" / "runner.py").is_file() else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """None here: the runner (perf/runner.py) parses its own options."""


def run(args: argparse.Namespace) -> int:
    return run_perf([])


def run_perf(argv: list[str]) -> int:
    """``python -m perf *argv`` in the source checkout; 2 when there is none."""
    root = _perf_root()
    if root is None:
        print("tritonvision bench: the benchmark suite (perf/) is not installed with the package; "
              f"tritonvision is imported from {Path(__file__).resolve().parents[1]}, which has no "
              "perf/ beside it. Install from a source checkout (git clone ...; pip install -e .) "
              "and run `tritonvision bench` (or `python -m perf`) there.", file=sys.stderr)
        return 2
    command = ["tritonvision", "bench", *argv]
    return subprocess.call([sys.executable, "-m", "perf", "--command", " ".join(command), *argv], cwd=root)
