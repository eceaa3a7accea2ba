"""What a run leaves behind besides its weights: ``results.csv`` (one row per epoch),
``args.yaml``, per-class tables, machine-readable metrics (JSON) and the plots
(``results.png``, ``confusion_matrix.png``, ``PR_curve.png``; matplotlib is the optional
``[plot]`` extra: without it the plots are skipped with a one-line note)."""
from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import Optional

import numpy as np

FITNESS = {"seg": "miou", "det": "map"}  # the validation metric that picks best.pt
PLOT_EXTRA_NOTE = "plots skipped: matplotlib is not installed (pip install 'tritonvision[plot]')"


# ----------------------------------------------------------------------------- per epoch
def scalar_metrics(result: dict) -> dict[str, float]:
    """The single-number entries of an evaluation result (mIoU, mAP, ...)."""
    return {k: float(v) for k, v in result.items()
            if isinstance(v, (float, int)) and not isinstance(v, bool) and k != "loss"}


def fitness(row: dict, task: str) -> float:
    """The row's value of the metric that picks best.pt (NaN if missing)."""
    return float(row["val"].get(FITNESS[task], math.nan))


def write_results_csv(path: Path, history: list[dict]) -> None:
    """``results.csv``: epoch, losses, every validation metric, learning rate, seconds."""
    metric_names = list(dict.fromkeys(k for row in history for k in row["val"]))
    header = ["epoch", "train/loss", "val/loss", *(f"metrics/{k}" for k in metric_names), "lr",
              "time_s"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in history:
            values = [row["train_loss"], row.get("val_loss"),
                      *(row["val"].get(k) for k in metric_names), row.get("lr"), row["time_s"]]
            writer.writerow([row["epoch"], *("" if v is None else f"{v:.6g}" for v in values)])


def write_args_yaml(path: Path, config) -> None:
    """``args.yaml``: the run's full configuration (flat ``key: value`` lines)."""
    from tritonvision.data.simple_yaml import dump
    path.write_text(dump(dataclasses.asdict(config)), encoding="utf-8")


def summary_table(history: list[dict], task: str) -> str:
    """One row per epoch: losses, the main validation metrics, seconds."""
    keys = ["miou", "pixel_accuracy"] if task == "seg" else ["map", "map_50"]
    header = (f"{'epoch':>5} {'train_loss':>10} {'val_loss':>10} "
              + " ".join(f"{k:>14}" for k in keys) + f" {'time_s':>8}")
    lines = [header, "-" * len(header)]
    for row in history:
        cells = " ".join(f"{row['val'].get(k, math.nan):>14.4f}" for k in keys)
        lines.append(f"{row['epoch']:>5} {row['train_loss']:>10.4f} "
                     f"{row.get('val_loss', math.nan):>10.4f} {cells} {row['time_s']:>8.1f}")
    return "\n".join(lines)


def epoch_line(row: dict, task: str) -> str:
    keys = ["miou", "pixel_accuracy"] if task == "seg" else ["map", "map_50"]
    metrics = ", ".join(f"{k} {row['val'][k]:.4f}" for k in keys if k in row["val"])
    return (f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, val loss "
            f"{row['val_loss']:.4f}, {metrics} ({row['time_s']:.1f} s)")


# ----------------------------------------------------------------------------- per class
def _number(value) -> Optional[float]:
    """A float for JSON and tables; None for NaN and for -1 ("undefined" in COCO results)."""
    value = float(value)
    return None if math.isnan(value) or value == -1.0 else value


def _ap50_per_class(result: dict) -> list:
    """COCO AP at IoU 0.5 per class, from pycocotools' precision array (area all, last maxDets)."""
    precision = result.get("precision")
    if precision is None:
        return [None] * len(result["map_per_class"])
    hit = np.flatnonzero(np.isclose(np.asarray(result["iou_thresholds"]), 0.5))
    if not hit.size:
        return [None] * len(result["map_per_class"])
    values = []
    for k in range(precision.shape[2]):
        p = precision[hit[0], :, k, 0, -1]
        values.append(float(p[p > -1].mean()) if (p > -1).any() else None)
    return values


def _detection_class_names(result: dict, names: Optional[list[str]]) -> list[str]:
    """A name per evaluated class: ``names[label]`` for the labels a metric saw, else the
    result's own (category names of a COCO annotation file)."""
    if names is None:
        return list(result["class_names"])
    return [names[int(c)] if 0 <= int(c) < len(names) else str(c) for c in result["classes"]]


def per_class(result: dict, task: str, names: Optional[list[str]] = None) -> list[dict]:
    """One dict per class: seg ``iou``, ``accuracy``, ``dice``, ``pixels`` (background
    first); det ``ap`` (COCO: AP@0.50:0.95; VOC: AP at its IoU), and for COCO ``ap50``, ``ar100``."""
    if task == "seg":
        pixels = np.asarray(result["confusion_matrix"]).sum(axis=1)
        names = names if names is not None else [f"class{i}" for i in range(len(pixels) - 1)]
        return [{"class": name, "iou": _number(iou), "accuracy": _number(acc),
                 "dice": _number(dice), "pixels": int(n)}
                for name, iou, acc, dice, n in zip(["background", *names], result["iou"],
                                                   result["accuracy"], result["dice"], pixels)]
    rows = [{"class": name, "ap": _number(ap)}
            for name, ap in zip(_detection_class_names(result, names), result["map_per_class"])]
    if result.get("style", "coco") == "coco":
        for row, ap50, ar in zip(rows, _ap50_per_class(result), result["mar_100_per_class"]):
            row.update(ap50=ap50, ar100=_number(ar))
    return rows


def per_class_table(result: dict, task: str, names: Optional[list[str]] = None) -> str:
    """The per-class rows as an aligned text table ('-' where a value is undefined)."""
    rows = per_class(result, task, names)
    columns = [c for c in rows[0] if c != "class"] if rows else []
    width = max([len("class"), *(len(r["class"]) for r in rows)])
    lines = [f"{'class':<{width}} " + " ".join(f"{c:>9}" for c in columns)]
    for row in rows:
        cells = (f"{row[c]:>9d}" if isinstance(row[c], int) else
                 f"{'-' if row[c] is None else f'{row[c]:.4f}':>9}" for c in columns)
        lines.append(f"{row['class']:<{width}} " + " ".join(cells))
    return "\n".join(lines)


def metrics_json(result: dict, task: str, names: Optional[list[str]] = None, **about) -> dict:
    """The machine-readable form: ``about`` entries, ``metrics`` (the single numbers),
    ``per_class`` and, for segmentation, the ``confusion_matrix`` (rows = target)."""
    data = {**about, "task": task,
            "metrics": {k: _number(v) for k, v in scalar_metrics(result).items()},
            "per_class": per_class(result, task, names)}
    if task == "seg":
        data["confusion_matrix"] = np.asarray(result["confusion_matrix"]).tolist()
    return data


def write_json(path: str | Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- plots
def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(columns: int, rows: int, size: tuple[float, float]):
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure, [figure.add_subplot(rows, columns, i + 1) for i in range(rows * columns)]


def plot_results(path: Path, history: list[dict]) -> None:
    """``results.png``: every results.csv column against the epoch, one panel each."""
    series = {"train/loss": [r["train_loss"] for r in history],
              "val/loss": [r.get("val_loss", math.nan) for r in history]}
    for key in dict.fromkeys(k for r in history for k in r["val"]):
        series[key] = [r["val"].get(key, math.nan) for r in history]
    series["lr"] = [r.get("lr", math.nan) for r in history]
    columns = 4
    rows = math.ceil(len(series) / columns)
    figure, axes = _figure(columns, rows, (3.2 * columns, 2.6 * rows))
    epochs = [r["epoch"] for r in history]
    for ax, (name, values) in zip(axes, series.items()):
        ax.plot(epochs, values, marker=".", linewidth=1.5)
        ax.set_title(name, fontsize=9)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(series):]:
        ax.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def plot_confusion_matrix(path: Path, confmat, labels: list[str]) -> None:
    """``confusion_matrix.png``: each target row normalised to sum 1 (row = target class)."""
    matrix = np.asarray(confmat, dtype=np.float64)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = min(3 + 0.5 * len(labels), 16)
    figure, (ax,) = _figure(1, 1, (side, side * 0.85))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("target")
    if len(labels) <= 20:
        for (i, j), value in np.ndenumerate(normalised):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value > 0.5 else "black")
    figure.colorbar(image, ax=ax)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def save_evaluation_plots(folder: Path, result: dict, task: str, names: list[str]) -> Path:
    """The confusion matrix (seg) or the precision-recall curves (det) of one evaluation."""
    if task == "seg":
        path = folder / "confusion_matrix.png"
        plot_confusion_matrix(path, result["confusion_matrix"], ["background", *names])
    else:  # the curves are labelled by the result's class names
        result = {**result, "class_names": _detection_class_names(result, names)}
        from tritonvision.metrics import plot_pr_curves
        path = Path(plot_pr_curves(result, folder / "PR_curve.png"))
    return path
