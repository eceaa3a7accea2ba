"""The ``tritonvision`` command line.

Each sub-command is a module in ``tritonvision.commands`` with ``SUMMARY`` (its help line),
``EXAMPLES`` (shown under ``--help``), ``add_arguments(parser)`` and ``run(args) -> int``;
it imports what it needs inside ``run`` so ``--help`` is fast. ``run`` raises ValueError or
FileNotFoundError for bad input: printed here as one ``tritonvision <command>: error: ...``
line (exit status 2). Ctrl-C ends any command with one line (exit status 130).
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "train": "tritonvision.commands.train",
    "eval": "tritonvision.commands.evaluate",
    "detect": "tritonvision.commands.detect",
    "segment": "tritonvision.commands.segment",
    "eval-detections": "tritonvision.commands.eval_detections",
    "bench": "tritonvision.commands.bench",
    "info": "tritonvision.commands.info",
}
DESCRIPTION = ("Train, evaluate and run CNN segmentation (FCN, FCN-8s, U-Net) and detection "
               "(YOLO) models built on fused Triton kernels.")
EPILOG = """examples:
  tritonvision train                      # U-Net on the built-in synthetic shapes
  tritonvision eval runs/segment/train/weights/best.pt
  tritonvision segment runs/segment/train/weights/best.pt photos/
  tritonvision <command> --help          # the options of one command"""


def _version() -> str:
    from tritonvision import __version__
    return f"tritonvision {__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tritonvision", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.SUMMARY, description=module.SUMMARY,
                                 epilog=f"examples:\n{module.EXAMPLES}",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # the benchmark runner parses its own options
        from tritonvision.commands.bench import run_perf
        return run_perf(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (FileNotFoundError, ValueError) as error:
        print(f"tritonvision {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"tritonvision {args.command}: {getattr(interrupt, 'message', 'interrupted')}",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
