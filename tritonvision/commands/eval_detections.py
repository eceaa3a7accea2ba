"""``tritonvision eval-detections``: a COCO result file against a COCO annotation file."""
from __future__ import annotations

import argparse
import sys
import time

SUMMARY = ("Evaluate COCO-format detections: pycocotools' 12 AP/AR numbers (COCO style) or VOC "
           "AP, with a per-class table.")
EXAMPLES = """\
  tritonvision eval-detections --gt instances_val.json --results detections.json
  tritonvision eval-detections --gt instances_val.json --results detections.json --style voc07 --plot pr.png
  tritonvision eval-detections --gt instances_val.json --results runs/detect/predict/predictions.json --json metrics.json
  tritonvision eval-detections --gt instances_val.json --results segmentations.json --iou-type segm

--gt is a COCO annotation file (images, annotations with [x, y, w, h] boxes, categories);
--results a COCO result file: a list of {image_id, category_id, bbox [x, y, w, h], score}
(tritonvision detect writes one). With --iou-type segm the masks are evaluated instead
(pycocotools' COCOeval "segm"): annotations need a 'segmentation' (polygons or RLE), results
a compressed RLE 'segmentation' {size, counts}.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="COCO annotation json (ground truth)")
    parser.add_argument("--results", required=True, help="COCO result json (detections)")
    parser.add_argument("--style", choices=("coco", "voc", "voc07"), default="coco",
                        help="coco: pycocotools' COCOeval numbers (default); voc: all-point AP "
                             "(VOC2010+); voc07: 11-point AP")
    parser.add_argument("--iou-type", choices=("bbox", "segm"), default="bbox",
                        help="bbox: box IoU (default); segm: mask IoU (COCO style only)")
    parser.add_argument("--iou", type=float, default=None,
                        help="voc / voc07 only: the IoU threshold (a match needs IoU > it; "
                             "default 0.5)")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="also save precision-recall curves (IoU 0.5) to this PNG "
                             "(needs matplotlib: pip install 'tritonvision[plot]')")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the results (metrics, per class) to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _check_options(args: argparse.Namespace) -> None:
    """Options that do not apply to the chosen style, or cannot be served, are errors."""
    import os

    from tritonvision.training.reports import have_matplotlib

    if args.iou_type == "segm" and args.style != "coco":
        raise ValueError("--iou-type segm is evaluated COCO style only (drop --style or use --style coco)")
    if args.iou is not None and args.style == "coco":
        raise ValueError("--iou applies to --style voc / voc07; the COCO style averages over "
                         "IoU 0.50:0.05:0.95 (map_50 and map_75 are in its table)")
    if args.plot and not have_matplotlib():
        raise ValueError("--plot needs matplotlib: pip install 'tritonvision[plot]'")
    for path, what in ((args.gt, "ground-truth annotation"), (args.results, "detection results")):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{what} file not found: {path}")


def _progress(enabled: bool):
    """A tqdm bar over the stages (stderr), only on a terminal and for large inputs."""
    from tqdm import tqdm
    return tqdm(total=4, desc="eval-detections", unit="step", file=sys.stderr,
                disable=None if enabled else True, leave=False)


def _evaluate(args: argparse.Namespace):
    """(the computed result, the metric) for the two files."""
    import os

    from tritonvision.metrics import MeanAveragePrecision
    from tritonvision.metrics.coco_json import read_coco

    large = os.path.getsize(args.results) + os.path.getsize(args.gt) > 20 * 2 ** 20
    with _progress(large and not args.no_progress) as bar:
        bar.set_postfix_str("reading ground truth and results")
        gt, results = read_coco(args.gt, args.results, args.iou_type)
        bar.update(2)
        kwargs = {"iou_thresholds": [args.iou]} if args.iou is not None else {}
        metric = MeanAveragePrecision._from_coco(gt, results, style=args.style, iou_type=args.iou_type,
                                                 class_metrics=True, **kwargs)
        bar.update()
        bar.set_postfix_str("matching")
        result = metric.compute()
        bar.update()
    return result, metric


def run(args: argparse.Namespace) -> int:
    from tritonvision.metrics import plot_pr_curves
    from tritonvision.metrics.detection import format_result
    from tritonvision.training import reports

    _check_options(args)
    start = time.perf_counter()
    result, metric = _evaluate(args)
    print(format_result(result))
    if result["style"] == "coco":  # the VOC table above is per class already
        print("\nper class (AP = AP@[0.50:0.95], area all, maxDets 100)")
        print(reports.per_class_table(result, "det"))
    if args.plot:
        plot_pr_curves(result, args.plot)
        print(f"precision-recall curves saved to {args.plot}")
    if args.json:
        data = reports.metrics_json(result, "det", style=args.style, gt=args.gt,
                                    results=args.results)
        print(f"results saved to {reports.write_json(args.json, data)}")
    print(f"evaluated {metric.num_images} images in {time.perf_counter() - start:.2f} s",
          file=sys.stderr)
    return 0
