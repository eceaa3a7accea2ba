"""The runner's command-line options, without importing torch (so ``tritonvision bench --help`` is fast)."""
from __future__ import annotations

import argparse
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ops", default=None,
                        help="comma-separated families (perf/cases/<family>.py) to run; default all")
    parser.add_argument("--size", choices=("small", "full"), default=None,
                        help="'small' CPU smoke sizes or the 'full' GPU sizes (default: full on "
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
    parser.add_argument("--n-sets", type=int, default=3, help="rotating input sets per case (default 3)")
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="CPU: least seconds of timed calls per function (default 0.05)")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. the machine)")
    # for tests: another results folder, and a small (cache-resident, so flattering) roofline
    parser.add_argument("--results-dir", default=str(RESULTS_DIR), help=argparse.SUPPRESS)
    parser.add_argument("--quick-roofline", action="store_true", help=argparse.SUPPRESS)
