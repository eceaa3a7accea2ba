"""Evaluate COCO-format detections: AP/AR the COCO way (pycocotools' 12 numbers) or the VOC way.

    tritonvision eval-detections --gt instances_val.json --results detections.json
    tritonvision eval-detections --gt instances_val.json --results detections.json --style voc07 --plot pr.png

--gt is a COCO annotation file (images, annotations with xywh bbox, categories); --results a
COCO result file: a list of {image_id, category_id, bbox [x, y, w, h], score}. Only boxes
are evaluated (no segmentation masks).
"""
from __future__ import annotations

import argparse
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="COCO annotation json (ground truth)")
    parser.add_argument("--results", required=True, help="COCO result json (detections)")
    parser.add_argument("--style", choices=("coco", "voc", "voc07"), default="coco",
                        help="coco: pycocotools' COCOeval numbers (default); voc: all-point AP "
                             "(VOC2010+); voc07: 11-point AP")
    parser.add_argument("--iou", type=float, default=None,
                        help="VOC styles: the IoU threshold (a match needs IoU > it; default 0.5)")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="also save precision-recall curves (IoU 0.5) to this PNG")
    parser.add_argument("--per-class", action="store_true", help="COCO style: also print AP per class")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _progress(enabled: bool):
    """A tqdm bar over the stages (stderr), shown only for large inputs or a terminal."""
    from tqdm import tqdm
    return tqdm(total=4, desc="eval-detections", unit="step", file=sys.stderr, disable=not enabled,
                leave=False)


def run(args: argparse.Namespace) -> int:
    import os

    from tritonvision.metrics import MeanAveragePrecision, plot_pr_curves
    from tritonvision.metrics.coco_json import read_coco
    from tritonvision.metrics.detection import format_result

    for path, what in ((args.gt, "ground-truth annotation"), (args.results, "detection results")):
        if not os.path.exists(path):
            print(f"eval-detections: {what} file not found: {path}", file=sys.stderr)
            return 2
    large = os.path.getsize(args.results) + os.path.getsize(args.gt) > 20 * 2 ** 20
    start = time.perf_counter()
    with _progress(large and not args.no_progress) as bar:
        try:
            bar.set_postfix_str("reading ground truth and results")
            gt, results = read_coco(args.gt, args.results)
            bar.update(2)
            kwargs = {"iou_thresholds": [args.iou]} if args.iou is not None and args.style != "coco" else {}
            metric = MeanAveragePrecision._from_coco(gt, results, style=args.style, class_metrics=True, **kwargs)
            bar.update()
            bar.set_postfix_str("matching")
            result = metric.compute()
            bar.update()
        except (ValueError, FileNotFoundError) as error:
            print(f"eval-detections: {error}", file=sys.stderr)
            return 2
    print(format_result(result))
    if args.per_class and result["style"] == "coco":
        print("\nAP per class (IoU=0.50:0.95, area=all, maxDets=100)")
        for name, ap in zip(result["class_names"], result["map_per_class"]):
            print(f"  {name:<24} {'-' if ap < 0 else f'{ap:0.3f}':>6}")
    if args.plot:
        plot_pr_curves(result, args.plot)
        print(f"precision-recall curves saved to {args.plot}")
    print(f"evaluated {metric.num_images} images in {time.perf_counter() - start:.2f} s", file=sys.stderr)
    return 0
