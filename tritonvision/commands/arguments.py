"""Argument types and the options several sub-commands share (device, output folder)."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def unit_interval(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--reference``."""
    group = parser.add_argument_group("device")
    group.add_argument("--device", default=None,
                       help="cuda, cuda:N or cpu (default: cuda if available, else cpu)")
    group.add_argument("--reference", action="store_true", default=None,
                       help="run every tritonvision op as its plain PyTorch reference instead "
                            "of the fused kernels (to compare results or rule the kernels out)")


def add_output_options(parser: argparse.ArgumentParser, what: str, default_name: str):
    """``--project``, ``--name``, ``--exist-ok``: where the command writes its files; returns
    the argument group (for the command's own output options)."""
    group = parser.add_argument_group("output")
    group.add_argument("--project", default=None, metavar="DIR",
                       help="parent folder of the run folders (default: runs/segment or "
                            "runs/detect, by task)")
    group.add_argument("--name", default=None,
                       help=f"{what} folder name inside --project (default {default_name}; "
                            f"{default_name}2, {default_name}3, ... when taken)")
    group.add_argument("--exist-ok", action="store_true", default=None,
                       help="write into --name even if it exists instead of numbering a new folder")
    return group
