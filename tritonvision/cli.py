"""The ``tritonvision`` command line: one sub-command per module in ``tritonvision.commands``.

Each command module has a docstring (its help line), ``add_arguments(parser)`` and
``run(args) -> int``; it imports what it needs inside ``run`` so ``--help`` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "info": "tritonvision.commands.info",
    "bench": "tritonvision.commands.bench",
    "train": "tritonvision.commands.train",
    "eval": "tritonvision.commands.evaluate",
    "detect": "tritonvision.commands.predict",
    "segment": "tritonvision.commands.predict",
    "eval-detections": "tritonvision.commands.eval_detections",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tritonvision", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        help_line = (module.__doc__ or "").strip().splitlines()[0]
        command = sub.add_parser(name, help=help_line, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # the benchmark runner parses its own options
        from tritonvision.commands.bench import run_perf
        return run_perf(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
