"""Precision-recall curves of a detection evaluation, saved as a PNG (matplotlib, Agg).

COCO results draw pycocotools' 101-point interpolated precision at IoU 0.5 (area all,
largest maxDets) per class; VOC results draw each class's raw precision/recall points
(the lecture's staircase: one point per detection, in score order) with its monotone
envelope. The legend gives each class's AP; the title the mAP.
"""
from __future__ import annotations

import os

import numpy as np


def _curves(result: dict) -> tuple[list[tuple[str, np.ndarray, np.ndarray, float]], str]:
    names = result.get("class_names") or [str(c) for c in result["classes"]]
    curves = []
    if result.get("style", "coco") == "coco":
        iou = np.asarray(result["iou_thresholds"])
        hit = np.flatnonzero(np.isclose(iou, 0.5))
        t = int(hit[0]) if hit.size else 0
        rec = np.asarray(result["rec_thresholds"])
        for k, name in enumerate(names):
            prec = result["precision"][t, :, k, 0, -1]
            if (prec > -1).any():
                curves.append((name, rec, prec, float(prec.mean())))
        title = f"COCO PR curves @ IoU={iou[t]:.2f} (AP50 = {result.get('map_50', -1):.3f})"
    else:
        for (rec, prec), name, ap in zip(result["pr_curves"], names, result["map_per_class"]):
            if ap > -1:
                curves.append((name, np.asarray(rec), np.asarray(prec), float(ap)))
        title = (f"VOC{'07 11-point' if result['style'] == 'voc07' else ' all-point'} PR curves "
                 f"@ IoU>{result['iou_threshold']:.2f} (mAP = {result['map']:.3f})")
    return curves, title


def plot_pr_curves(result_or_metric, path, max_classes: int = 20, title: str | None = None,
                   dpi: int = 100) -> str:
    """Save precision-recall curves to ``path`` (PNG) and return the path.

    Args:
        result_or_metric: a ``MeanAveragePrecision`` (computed here) or its ``compute()`` dict.
        path: where to write the PNG.
        max_classes: draw at most this many classes (those with the highest AP) plus the
            class-mean curve (COCO) so the legend stays readable.
        title: the figure title (default: style, IoU and mAP).
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    result = result_or_metric.compute() if hasattr(result_or_metric, "compute") else result_or_metric
    if not isinstance(result, dict) or "map_per_class" not in result:
        raise TypeError("plot_pr_curves: expected a MeanAveragePrecision or its compute() result, "
                        f"got {type(result_or_metric).__name__}")
    curves, default_title = _curves(result)
    figure = Figure(figsize=(7, 6))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    drawn = sorted(curves, key=lambda c: -c[3])[:max_classes]
    is_coco = result.get("style", "coco") == "coco"
    for name, rec, prec, ap in drawn:
        if is_coco:
            ax.plot(rec, prec, linewidth=1.2, label=f"{name} (AP {ap:.3f})")
        elif rec.size == 0:  # ground truth but no detection: recall stays 0
            ax.plot([0.0], [0.0], "x", label=f"{name} (AP {ap:.3f})")
        else:
            envelope = np.maximum.accumulate(prec[::-1])[::-1]
            line, = ax.plot(rec, prec, ".", markersize=3)
            ax.step(np.concatenate([[0.0], rec]), np.concatenate([envelope[:1], envelope]), where="pre",
                    color=line.get_color(), linewidth=1.2,
                    label=f"{name} (AP {ap:.3f})")
    if is_coco and curves:
        mean = np.mean(np.stack([c[2] for c in curves]), axis=0)
        ax.plot(curves[0][1], mean, "k--", linewidth=2, label=f"mean (AP50 {mean.mean():.3f})")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title(title or default_title)
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(loc="upper right", fontsize="small")
    path = os.fspath(path)
    figure.savefig(path, format="png", dpi=dpi)
    return path
