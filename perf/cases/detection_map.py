"""Benchmark of COCO box and mask evaluation from files: ours (``MeanAveragePrecision.from_coco_json``
+ ``compute``) against pycocotools' ``COCOeval`` and faster-coco-eval's ``COCOeval_faster``,
JSON loading included, on the deterministic synthetic sets of ``perf/coco_synthetic.py``
(iouType "bbox": boxes; "segm": the same boxes as polygon / RLE masks).

Sizes: "small" 200 images (CPU smoke runs; every baseline), "full" a COCO-val-sized set
(5,000 images, ~36k ground truths, 80 classes, 100 detections per image; pycocotools
takes ~60 s there, so it is timed only at "small" by the runner -- time it once with
``python -m perf.cases.detection_map --full --pycocotools``). The work is CPU work whatever
the device. faster-coco-eval is optional (``pip install faster-coco-eval``).

Measured once at "full" (idle 2-core AMD EPYC, OMP_NUM_THREADS=1, one run each in one
process; identical 12 stats; perf/results/cpu-amd-epyc/coco-eval-full.md): ours 1.31 s
wall / 1.91 s CPU (with its forked parser child), faster-coco-eval 1.8.0 8.09 s / 9.17 s,
pycocotools 2.0.11 59.4 s / 59.4 s: ours 45x faster than pycocotools, 6.2x than
faster-coco-eval.

Masks ("segm", ``--iou-type segm``; the same 5,000 images with polygon / RLE masks, 500k RLE
detections), measured once at "full" on the shared 2-core Xeon (OMP_NUM_THREADS=1; identical
12 stats; perf/results/cpu-intel-r-xeon-r-processor/coco-segm-eval-full.md): ours 6.41 s wall /
7.86 s CPU (threads on both cores), faster-coco-eval 20.25 s / 21.78 s, pycocotools 64.2 s /
64.0 s: ours 3.2x faster than faster-coco-eval, 10x than pycocotools.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import tempfile
import time
from pathlib import Path

import torch

from perf.coco_synthetic import write_synthetic_coco
from perf.harness import BenchCase

SIZES = {"tiny": 10, "small": 200, "full": 5000}
CACHE = Path(os.environ.get("TRITONVISION_BENCH_CACHE", tempfile.gettempdir())) / "tritonvision_coco_synthetic"


def ours(gt_path, dt_path, iou_type: str = "bbox"):
    from tritonvision.metrics import MeanAveragePrecision
    return MeanAveragePrecision.from_coco_json(gt_path, dt_path, iou_type=iou_type).compute()["stats"]


def pycocotools_eval(gt_path, dt_path, iou_type: str = "bbox"):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(dt_path)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def faster_coco_eval(gt_path, dt_path, iou_type: str = "bbox"):
    from faster_coco_eval import COCO, COCOeval_faster
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval_faster(gt, gt.loadRes(str(dt_path)), iou_type, print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def cases(device: torch.device, size: str) -> list[BenchCase]:
    num_images = SIZES[size]
    found = []
    for iou_type in ("bbox", "segm"):
        paths = write_synthetic_coco(CACHE, num_images, iou_type=iou_type)
        baselines = {}
        if size != "full" and _has("pycocotools"):
            baselines["pycocotools"] = functools.partial(pycocotools_eval, iou_type=iou_type)
        if _has("faster_coco_eval"):
            baselines["faster-coco-eval"] = functools.partial(faster_coco_eval, iou_type=iou_type)
        found.append(BenchCase(family="detection_map", name=f"coco_{iou_type}_eval_from_json",
                               shape=f"{num_images} images x 100 dets, 80 classes",
                               dtype="float64" if iou_type == "bbox" else "rle",
                               make_inputs=lambda k, paths=paths: paths,
                               ours=functools.partial(ours, iou_type=iou_type), baselines=baselines))
    return found


def _cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (ours forks a parser child)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description="time each evaluator once (wall and CPU seconds)")
    parser.add_argument("--full", action="store_true", help="5,000 images instead of 200")
    parser.add_argument("--pycocotools", action="store_true", help="also time pycocotools (~60 s at full size; "
                                                                       "~70-90 s with --iou-type segm)")
    parser.add_argument("--iou-type", choices=("bbox", "segm"), default="bbox")
    args = parser.parse_args()
    paths = write_synthetic_coco(CACHE, SIZES["full" if args.full else "small"], iou_type=args.iou_type)
    runs = [("ours", ours)]
    if _has("faster_coco_eval"):
        runs.append(("faster-coco-eval", faster_coco_eval))
    if args.pycocotools or not args.full:
        runs.append(("pycocotools", pycocotools_eval))
    import tritonvision.metrics  # noqa: F401  (imports are not what we time)
    for module in ("pycocotools.cocoeval", "faster_coco_eval"):
        if _has(module):
            __import__(module)
    reference = None
    for name, fn in runs:
        wall, cpu = time.perf_counter(), _cpu_seconds()
        stats = fn(*paths, iou_type=args.iou_type)
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
        same = "" if reference is None else f"  max |stats diff| vs ours {abs(stats - reference).max():.2e}"
        reference = stats if reference is None else reference
        print(f"{name:<18} wall {wall:7.2f} s  cpu {cpu:7.2f} s  AP {stats[0]:.4f}{same}")


if __name__ == "__main__":
    main()
