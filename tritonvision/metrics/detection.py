"""Detection mAP: ``MeanAveragePrecision``, COCO-style (the 12 numbers of pycocotools'
``COCOeval``, bit for bit) or PASCAL VOC-style (11-point 2007, all-point 2010+).

    metric = MeanAveragePrecision()                       # style="coco"
    for images, targets in loader:
        metric.update(model_predictions(images), targets)
    result = metric.compute()                             # result["map"], result["stats"], ...

    MeanAveragePrecision.from_coco_json("instances_val.json", "detections.json").compute()

The per-image data is kept (as numpy arrays) until ``compute()``, which gathers every
rank's images under ``torch.distributed`` by itself (``sync_on_compute``); ``merge``
combines metrics by hand. Only boxes (iouType "bbox") are evaluated so far.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from . import coco_eval
from ._metric import Metric
from .coco_eval import CocoInstances
from .voc_eval import evaluate_voc

STYLES = ("coco", "voc", "voc07")
BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
IOU_TYPES = ("bbox",)
_NAME = "MeanAveragePrecision"


def _array(value: Any, name: str, dtype, index: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        value = value.numpy()
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{_NAME}.update: {name} of image {index} must be a tensor or array of "
                        f"numbers, got {type(value).__name__}") from None


def _boxes_xywh(value: Any, name: str, index: int, box_format: str) -> np.ndarray:
    boxes = _array(value, name, np.float64, index)
    if boxes.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{_NAME}.update: {name} of image {index} must have shape [N, 4] "
                         f"({box_format}), got {list(boxes.shape)}")
    if not np.isfinite(boxes).all():
        raise ValueError(f"{_NAME}.update: {name} of image {index} has non-finite coordinates; "
                         "drop those boxes before the metric")
    a, b, c, d = boxes.T
    if box_format == "xyxy":
        return np.stack([a, b, c - a, d - b], axis=1)
    if box_format == "cxcywh":
        return np.stack([a - c / 2, b - d / 2, c, d], axis=1)
    return boxes


def _vector(record: dict, key: str, name: str, n: int, dtype, index: int, default=None) -> np.ndarray:
    if key not in record or record[key] is None:
        if default is None:
            raise ValueError(f"{_NAME}.update: {name} {index} has no '{key}' entry")
        return np.full(n, default, dtype=dtype)
    values = _array(record[key], f"{name}['{key}']", dtype, index).reshape(-1)
    if values.size != n:
        raise ValueError(f"{_NAME}.update: {name}['{key}'] of image {index} has {values.size} "
                         f"entries but there are {n} boxes")
    return values


class MeanAveragePrecision(Metric):
    """Mean average precision of box detections, accumulated over batches.

    Keywords as torchmetrics' ``MeanAveragePrecision``:

    Args:
        box_format: "xyxy" (default), "xywh" (COCO) or "cxcywh": the format of every box
            given to ``update``.
        iou_type: "bbox" (the only type so far).
        class_metrics: also return ``map_per_class`` / ``mar_100_per_class`` (COCO style; as
            torchmetrics, both are ``[-1.]`` when False). The VOC styles always give AP per class.
        sync_on_compute: under ``torch.distributed``, ``compute()`` evaluates every rank's
            images (gathered in rank order) without changing this rank's state.
        process_group: the group to gather over (default: the whole world).
        style: "coco" (pycocotools' COCOeval: IoU 0.50:0.05:0.95, 101-point precision,
            area ranges, maxDets 1/10/100, crowd ground truths), "voc" (all-point AP,
            VOC2010+) or "voc07" (11-point AP).
        iou_thresholds: COCO: the IoU thresholds (default 0.50, 0.55, ..., 0.95);
            VOC: one threshold (default 0.5), a match needs IoU > threshold.
        max_detection_thresholds: COCO maxDets (default (1, 10, 100)).

    ``update(preds, targets)`` takes one dict per image, like torchmetrics:
    preds ``boxes`` Tensor[N, 4] (x1, y1, x2, y2), ``scores`` Tensor[N], ``labels``
    Tensor[N] int; targets ``boxes`` Tensor[M, 4], ``labels`` Tensor[M] and optionally
    ``iscrowd`` Tensor[M] (COCO crowd regions), ``area`` Tensor[M] (COCO area used for the
    area ranges; default: box area) and ``difficult`` Tensor[M] (VOC).
    Classes are the labels seen in targets or predictions. The VOC styles use
    ``difficult`` and ignore ``iscrowd`` / ``area``; the COCO style ignores ``difficult``.
    """

    def __init__(self, style: str = "coco", iou_thresholds: Sequence[float] | None = None,
                 max_detection_thresholds: Sequence[int] = coco_eval.MAX_DETS, box_format: str = "xyxy",
                 iou_type: str = "bbox", class_metrics: bool = False, sync_on_compute: bool = True,
                 process_group: Any = None) -> None:
        super().__init__(sync_on_compute, process_group)
        if style not in STYLES:
            raise ValueError(f"{_NAME}: style must be one of {STYLES}, got {style!r}")
        if box_format not in BOX_FORMATS:
            raise ValueError(f"{_NAME}: box_format must be one of {BOX_FORMATS}, got {box_format!r}")
        if iou_type not in IOU_TYPES:
            raise ValueError(f"{_NAME}: iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
        if style == "coco":
            thresholds = coco_eval.IOU_THRESHOLDS if iou_thresholds is None else iou_thresholds
        else:
            thresholds = [0.5] if iou_thresholds is None else iou_thresholds
        thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if thresholds.size == 0 or not ((thresholds >= 0) & (thresholds <= 1)).all():
            raise ValueError(f"{_NAME}: iou_thresholds must be non-empty values in [0, 1], got {thresholds.tolist()}")
        if style != "coco" and thresholds.size != 1:
            raise ValueError(f"{_NAME}: style={style!r} takes one IoU threshold, got {thresholds.tolist()}")
        max_dets = sorted(int(m) for m in max_detection_thresholds)
        if not max_dets or max_dets[0] < 1:
            raise ValueError(f"{_NAME}: max_detection_thresholds must be positive integers, got {max_dets}")
        self.style = style
        self.box_format = box_format
        self.iou_type = iou_type
        self.class_metrics = class_metrics
        self.iou_thresholds = thresholds
        self.max_detection_thresholds = max_dets
        self._category_ids: np.ndarray | None = None  # fixed by from_coco_json
        self._category_names: list[str] | None = None
        self.reset()

    # ------------------------------------------------------------------ state
    _FIELDS = ("det_image", "det_label", "det_score", "det_xywh",
               "gt_image", "gt_label", "gt_xywh", "gt_area", "gt_crowd", "gt_difficult", "gt_id_nonzero")

    def reset(self) -> None:
        """Forget every image seen."""
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in self._FIELDS}
        self.num_images = 0

    def _append(self, **arrays: np.ndarray) -> None:
        for name, value in arrays.items():
            self._parts[name].append(value)

    def _local_state(self) -> dict[str, np.ndarray]:
        shapes = {"det_xywh": (0, 4), "gt_xywh": (0, 4)}
        dtypes = {"det_image": np.int64, "det_label": np.int64, "gt_image": np.int64, "gt_label": np.int64,
                  "gt_crowd": bool, "gt_difficult": bool, "gt_id_nonzero": bool}
        state = {}
        for name in self._FIELDS:
            parts = self._parts[name]
            state[name] = (np.concatenate(parts) if parts
                           else np.zeros(shapes.get(name, (0,)), dtype=dtypes.get(name, np.float64)))
        if any(len(parts) > 1 for parts in self._parts.values()):
            self._parts = {name: [state[name]] for name in self._FIELDS}
        state["num_images"] = self.num_images
        return state

    def update(self, preds: Sequence[dict], targets: Sequence[dict]) -> None:
        """Add one batch: ``preds[i]`` and ``targets[i]`` describe the same image."""
        if isinstance(preds, dict) or isinstance(targets, dict):
            raise TypeError(f"{_NAME}.update: preds and targets must be lists of dicts (one per image), "
                            "got a dict; wrap a single image as [pred], [target]")
        if len(preds) != len(targets):
            raise ValueError(f"{_NAME}.update: got {len(preds)} predictions but {len(targets)} targets; "
                             "give one dict per image in each")
        for offset, (pred, target) in enumerate(zip(preds, targets)):
            index = self.num_images + offset
            if not isinstance(pred, dict) or not isinstance(target, dict):
                raise TypeError(f"{_NAME}.update: image {index}: preds and targets entries must be dicts")
            for key, record, name in (("boxes", pred, "preds"), ("boxes", target, "targets")):
                if key not in record:
                    raise ValueError(f"{_NAME}.update: {name} {index} has no 'boxes' entry")
            det = _boxes_xywh(pred["boxes"], "preds['boxes']", index, self.box_format)
            gt = _boxes_xywh(target["boxes"], "targets['boxes']", index, self.box_format)
            n, m = det.shape[0], gt.shape[0]
            scores = _vector(pred, "scores", "preds", n, np.float64, index)
            det_labels = _vector(pred, "labels", "preds", n, np.int64, index)
            gt_labels = _vector(target, "labels", "targets", m, np.int64, index)
            area = _vector(target, "area", "targets", m, np.float64, index, default=np.nan)
            area = np.where(np.isnan(area), gt[:, 2] * gt[:, 3], area)
            crowd = _vector(target, "iscrowd", "targets", m, np.int64, index, default=0).astype(bool)
            difficult = _vector(target, "difficult", "targets", m, np.int64, index, default=0).astype(bool)
            self._append(det_image=np.full(n, index, dtype=np.int64), det_label=det_labels,
                         det_score=scores, det_xywh=det,
                         gt_image=np.full(m, index, dtype=np.int64), gt_label=gt_labels, gt_xywh=gt,
                         gt_area=area, gt_crowd=crowd, gt_difficult=difficult,
                         gt_id_nonzero=np.ones(m, dtype=bool))
        self.num_images += len(preds)

    def merge(self, other: "MeanAveragePrecision") -> "MeanAveragePrecision":
        """Append ``other``'s images after this metric's (same settings required)."""
        if not isinstance(other, MeanAveragePrecision):
            raise TypeError(f"{_NAME}.merge: expected a MeanAveragePrecision, got {type(other).__name__}")
        if (other.style != self.style or not np.array_equal(other.iou_thresholds, self.iou_thresholds)
                or other.max_detection_thresholds != self.max_detection_thresholds):
            raise ValueError(f"{_NAME}.merge: both metrics need the same style, iou_thresholds and "
                             "max_detection_thresholds")
        self._add_state(other._local_state())
        return self

    def _add_state(self, state: dict) -> None:
        offset = self.num_images
        for name in self._FIELDS:
            value = state[name]
            self._parts[name].append(value + offset if name in ("det_image", "gt_image") else value)
        self.num_images += int(state["num_images"])

    def _reduce(self, states: list[dict]) -> dict[str, np.ndarray]:
        """Every rank's images, in rank order, as one state."""
        whole = MeanAveragePrecision(self.style, self.iou_thresholds, self.max_detection_thresholds)
        for state in states:
            whole._add_state(state)
        return whole._local_state()

    def _load_state(self, state: dict) -> None:
        self.reset()
        self._add_state(state)

    # ------------------------------------------------------------------ from files
    @classmethod
    def from_coco_json(cls, gt_json_path, results_json_path, iou_type: str = "bbox",
                       style: str = "coco", **kwargs) -> "MeanAveragePrecision":
        """A metric holding a COCO annotation file and a COCO result file (a list of
        {image_id, category_id, bbox [x, y, w, h], score}); a path or the loaded object.

        Categories are the annotation file's (results of other categories are left out),
        images its images; a result on an image not in the annotation file is an error.
        """
        from .coco_json import read_coco
        if iou_type != "bbox":
            raise ValueError(f"{_NAME}.from_coco_json: only iou_type='bbox' is supported "
                             f"(no masks here), got {iou_type!r}")
        gt, results = read_coco(gt_json_path, results_json_path)
        return cls._from_coco(gt, results, style=style, **kwargs)

    @classmethod
    def _from_coco(cls, gt, results, style: str = "coco", **kwargs) -> "MeanAveragePrecision":
        """From an already read ``CocoGroundTruth`` and ``read_results`` arrays."""
        image, category, score, boxes = results
        metric = cls(style=style, **kwargs)
        metric._category_ids = gt.category_ids
        metric._category_names = gt.category_names
        n_cat = gt.category_ids.size
        label = lambda idx: np.where(idx >= 0, gt.category_ids[np.clip(idx, 0, max(n_cat - 1, 0))]
                                     if n_cat else -1, np.iinfo(np.int64).min)
        metric._append(det_image=image, det_label=label(category), det_score=score, det_xywh=boxes,
                       gt_image=gt.gt_image, gt_label=label(gt.gt_category), gt_xywh=gt.gt_xywh,
                       gt_area=gt.gt_area, gt_crowd=gt.gt_crowd, gt_difficult=gt.gt_difficult,
                       gt_id_nonzero=gt.gt_id_nonzero)
        metric.num_images = int(gt.image_ids.size)
        return metric

    # ------------------------------------------------------------------ compute
    def _categories(self, state: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._category_ids is not None:
            ids = self._category_ids
        else:
            ids = np.unique(np.concatenate([state["gt_label"], state["det_label"]]))

        def index(labels):
            if ids.size == 0:
                return np.full(labels.shape, -1, dtype=np.int64)
            pos = np.minimum(np.searchsorted(ids, labels), ids.size - 1)
            return np.where(ids[pos] == labels, pos, -1)
        return ids, index(state["det_label"]), index(state["gt_label"])

    def compute(self) -> dict:
        """The metric over every image seen.

        COCO style: ``map, map_50, map_75, map_small, map_medium, map_large, mar_1, mar_10,
        mar_100, mar_small, mar_medium, mar_large`` (floats, -1 where undefined), ``stats``
        (those 12 in ``COCOeval.summarize()`` order), ``classes`` (the label of each class),
        ``map_per_class`` / ``mar_100_per_class`` (-1 for a class without ground truth;
        ``[-1.]`` unless ``class_metrics``), ``precision`` [T, R, K, A, M], ``recall`` [T, K, A, M], ``scores`` [T, R, K, A, M]
        (pycocotools' layout and values), ``iou_thresholds``, ``rec_thresholds``.
        VOC styles: ``map``, ``classes``, ``map_per_class`` (-1 where undefined),
        ``pr_curves`` (per class (recall, precision) arrays), ``iou_threshold``.
        """
        state = self._state_for_compute()
        ids, det_cat, gt_cat = self._categories(state)
        if self.style == "coco":
            return self._compute_coco(state, ids, det_cat, gt_cat)
        x, y, w, h = state["det_xywh"].T
        det_xyxy = np.stack([x, y, x + w, y + h], axis=1)
        x, y, w, h = state["gt_xywh"].T
        gt_xyxy = np.stack([x, y, x + w, y + h], axis=1)
        out = evaluate_voc(state["det_image"], det_cat, state["det_score"], det_xyxy,
                           state["gt_image"], gt_cat, gt_xyxy, state["gt_difficult"], int(ids.size),
                           float(self.iou_thresholds[0]), use_07_metric=self.style == "voc07")
        return {"map": out["map"], "classes": ids, "map_per_class": out["ap"],
                "pr_curves": out["curves"], "iou_threshold": float(self.iou_thresholds[0]),
                "style": self.style, "class_names": self._class_names(ids)}

    def _class_names(self, ids: np.ndarray) -> list[str]:
        return list(self._category_names) if self._category_names is not None else [str(i) for i in ids]

    def _compute_coco(self, state, ids, det_cat, gt_cat) -> dict:
        instances = CocoInstances(
            state["num_images"], int(ids.size), state["det_image"], det_cat, state["det_score"], state["det_xywh"],
            state["gt_image"], gt_cat, state["gt_xywh"], state["gt_area"], state["gt_crowd"], state["gt_id_nonzero"])
        result = coco_eval.evaluate(instances, self.iou_thresholds, self.max_detection_thresholds)
        stats = coco_eval.summarize(result)
        out: dict[str, Any] = {name: float(v) for name, v in zip(coco_eval.STAT_NAMES, stats)}
        out["stats"] = stats
        precision, recall = result["precision"], result["recall"]
        per_class, per_class_recall = -np.ones(ids.size), -np.ones(ids.size)
        for k in range(ids.size):
            p = precision[:, :, k, 0, -1]
            r = recall[:, k, 0, -1]
            if (p > -1).any():
                per_class[k] = np.mean(p[p > -1])
            if (r > -1).any():
                per_class_recall[k] = np.mean(r[r > -1])
        if not self.class_metrics:  # as torchmetrics
            per_class, per_class_recall = -np.ones(1), -np.ones(1)
        out.update(classes=ids, class_names=self._class_names(ids), map_per_class=per_class,
                   mar_100_per_class=per_class_recall, precision=precision, recall=recall,
                   scores=result["scores"], iou_thresholds=result["iou_thresholds"],
                   rec_thresholds=result["rec_thresholds"], max_dets=result["max_dets"], style="coco")
        return out

    def summary(self, result: dict | None = None) -> str:
        """pycocotools' table (COCO) or a per-class AP table (VOC) of ``result`` (default: compute())."""
        result = self.compute() if result is None else result
        return format_result(result)


def format_result(result: dict) -> str:
    """The printed form of a ``compute()`` result."""
    if result.get("style", "coco") == "coco":
        return coco_eval.format_summary(result["stats"], result.get("max_dets", coco_eval.MAX_DETS))
    names = result.get("class_names") or [str(c) for c in result["classes"]]
    lines = [f"VOC{'2007 11-point' if result['style'] == 'voc07' else ' all-point'} AP "
             f"@ IoU > {result['iou_threshold']:.2f}"]
    for name, ap in zip(names, result["map_per_class"]):
        lines.append(f"  {name:<24} {'-' if ap < 0 else f'{ap:0.4f}':>8}")
    lines.append(f"  {'mAP':<24} {result['map']:8.4f}")
    return "\n".join(lines)

