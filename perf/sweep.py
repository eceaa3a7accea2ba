"""Time launch-configuration variants of the weakest kernels on a GPU, in one short run.

``python -m perf.sweep [--out DIR]`` (CUDA only): for each target below, the op is timed
(``triton.testing.do_bench`` median, the full-size benchmark inputs of ``perf/cases``) once
per variant of its launch table, patched in this process only, and its outputs checked
against the unpatched run. It prints one table and writes ``sweep.json``. The variants are
chosen from those that compile without spills for sm_90 (``python -m perf.resources``); the
winners go into the tables in ``tritonvision/ops/*.py`` with the measurement cited.
Also times the Dice+CE statistics kernels alone, to split the loss's time between its two
kernels and the small ops that finish it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Callable, Iterator

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def patched(module, name: str, value) -> Iterator[None]:
    previous = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, previous)


def _op_module(name: str):
    import importlib
    return importlib.import_module(f"tritonvision.ops.{name}")


def dice_variants():
    dice_ce = _op_module("dice_ce")
    for tile in (1024, 2048):
        for warps in (4, 8):
            tiles = {**dice_ce.TILE_ELEMENTS, torch.float32: tile}
            yield f"tile={tile} warps={warps}", lambda t=tiles, w=warps: _both(
                patched(dice_ce, "TILE_ELEMENTS", t), patched(dice_ce, "SOFTMAX_WARPS", w))


def box_iou_variants():
    from tritonvision.ops._launch import LaunchConfig
    box_iou = _op_module("box_iou")
    for block_n, block_m, warps in ((16, 64, 4), (32, 64, 4), (16, 128, 4), (32, 128, 8), (8, 128, 4), (64, 64, 8)):
        table = {**box_iou.PAIRWISE, (torch.float32, False): LaunchConfig(dict(BLOCK_N=block_n, BLOCK_M=block_m),
                                                                         num_warps=warps)}
        yield f"{block_n}x{block_m} warps={warps}", lambda t=table: patched(box_iou, "PAIRWISE", t)


def deconv_variants():
    """grad_weight tiles (the backward is where deconv loses to cuDNN at 32x32 x 512 channels)."""
    from tritonvision.ops._launch import LaunchConfig
    deconv = _op_module("deconv")
    original = deconv.grad_weight_config
    for block_m, block_n, block_p, warps in ((64, 64, 32, 4), (64, 64, 64, 4), (128, 64, 32, 8), (64, 128, 32, 8)):
        def config(cin, cout, dtype, m=block_m, n=block_n, p=block_p, w=warps):
            return LaunchConfig(dict(BLOCK_M=m, BLOCK_N=n, BLOCK_P=p), num_warps=w,
                                num_stages=original(cin, cout, dtype).num_stages)
        yield f"grad_w {block_m}x{block_n}x{block_p} warps={warps}", lambda c=config: patched(
            deconv, "grad_weight_config", c)


@contextlib.contextmanager
def _both(first, second) -> Iterator[None]:
    with first, second:
        yield


def _case(family: str, name: str, dtype: str, shape_prefix: str = ""):
    import importlib
    module = importlib.import_module(f"perf.cases.{family}")
    return next(c for c in module.cases(torch.device("cuda"), "full")
                if c.name == name and c.dtype == dtype and c.shape.startswith(shape_prefix))


TARGETS: list[tuple[str, Callable, Callable]] = [
    ("dice_ce_loss_fwd_bwd B=8 C=21 fp32", lambda: _case("dice_ce", "dice_ce_loss_fwd_bwd", "float32", "B=8"),
     dice_variants),
    ("dice_ce_loss_fwd_bwd B=2 C=150 fp32", lambda: _case("dice_ce", "dice_ce_loss_fwd_bwd", "float32", "B=2"),
     dice_variants),
    ("box_iou 8192^2 fp32", lambda: _case("box_iou", "box_iou", "float32"), box_iou_variants),
    ("deconv unet_up1 fwd+bwd fp32", lambda: _case("deconv", "unet_up1_fwd_bwd", "float32"), deconv_variants),
]


def _outputs(result) -> list[torch.Tensor]:
    return [result] if isinstance(result, torch.Tensor) else [t for t in result if isinstance(t, torch.Tensor)]


def time_ms(fn: Callable, inputs: tuple) -> float:
    import triton.testing
    fn(*inputs)
    torch.cuda.synchronize()
    return float(triton.testing.do_bench(lambda: fn(*inputs), warmup=25, rep=100, return_mode="median"))


def sweep() -> list[dict]:
    rows = []
    for title, make_case, variants in TARGETS:
        case = make_case()
        inputs = case.make_inputs(0)
        expected = [t.detach().clone() for t in _outputs(case.ours(*inputs))]
        for label, patch in variants():
            row = {"target": title, "variant": label}
            try:
                with patch():
                    got = _outputs(case.ours(*inputs))
                    row["max_abs_diff"] = max(float((g.float() - e.float()).abs().max()) for g, e in zip(got, expected))
                    row["ms"] = time_ms(case.ours, inputs)
                row["gbps"] = case.bytes_moved / (row["ms"] * 1e-3) / 1e9 if case.bytes_moved else None
            except Exception as error:  # report every variant
                row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
            rows.append(row)
            print(f"{title:<40} {label:<22} " + (f"{row['ms']:.4f} ms  {row['gbps'] or 0:7.0f} GB/s  "
                                                  f"max|diff| {row['max_abs_diff']:.2e}" if "ms" in row
                                                  else row["error"]), flush=True)
    try:
        rows += dice_kernels_alone()
    except Exception as error:
        print(f"dice_ce kernels alone: {type(error).__name__}: {error}", flush=True)
    return rows


def dice_kernels_alone() -> list[dict]:
    """The two Dice+CE statistics kernels timed alone (B=8, C=21, 512^2, fp32)."""
    case = _case("dice_ce", "dice_ce_loss_fwd_bwd", "float32", "B=8")
    logits, target = case.make_inputs(0)
    logits = logits.detach()
    stats = torch.ops.tritonvision.dice_ce_stats(logits, target, -100, False)
    grad_stats = torch.randn_like(stats)
    rows = []
    for label, fn, args in (("stats forward kernel", torch.ops.tritonvision.dice_ce_stats, (logits, target, -100, False)),
                            ("stats backward kernel", torch.ops.tritonvision.dice_ce_stats_backward,
                             (logits, target, grad_stats, -100, False))):
        ms = time_ms(fn, args)
        moved = logits.numel() * 4 * (1 if "forward" in label else 2) + target.numel() * 8
        rows.append({"target": "dice_ce B=8 C=21 fp32", "variant": label, "ms": ms, "gbps": moved / (ms * 1e-3) / 1e9})
        print(f"{'dice_ce B=8 C=21 fp32':<40} {label:<22} {ms:.4f} ms  {rows[-1]['gbps']:7.0f} GB/s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("perf.sweep needs a CUDA GPU", file=sys.stderr)
        return 2
    import tritonvision.ops  # noqa: F401  (registers the ops)
    rows = sweep()
    args.out.mkdir(parents=True, exist_ok=True)
    device = {"name": torch.cuda.get_device_name(), "torch": torch.__version__,
              "triton": __import__("triton").__version__}
    (args.out / "sweep.json").write_text(json.dumps({"device": device, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
