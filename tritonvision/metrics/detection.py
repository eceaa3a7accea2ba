"""Detection mAP: ``MeanAveragePrecision``, COCO-style (the 12 numbers of pycocotools'
``COCOeval``, bit for bit) or PASCAL VOC-style (11-point 2007, all-point 2010+).

    metric = MeanAveragePrecision()                       # style="coco"
    for images, targets in loader:
        metric.update(model_predictions(images), targets)
    result = metric.compute()                             # result["map"], result["stats"], ...

    MeanAveragePrecision.from_coco_json("instances_val.json", "detections.json").compute()

    metric = MeanAveragePrecision(iou_type="segm")        # masks: pycocotools' COCOeval "segm"
    metric.update([{"masks": pred_masks, "scores": s, "labels": l}], [{"masks": gt_masks, "labels": g}])

The per-image data is kept (as numpy arrays; masks as COCO RLE) until ``compute()``,
which gathers every rank's images under ``torch.distributed`` by itself
(``sync_on_compute``); ``merge`` combines metrics by hand.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
import torch

from tritonvision import masks as _masks
from tritonvision.masks import _counts_string, _runs
from tritonvision.masks._segments import offsets_of

from . import coco_eval
from ._metric import Metric
from .coco_eval import CocoInstances
from .voc_eval import evaluate_voc

STYLES = ("coco", "voc", "voc07")
BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
IOU_TYPES = ("bbox", "segm")
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


def _mask_runs(record: dict, name: str, index: int) -> _runs.Runs:
    """The ``masks`` of one image's preds or targets: a bool / uint8 Tensor[N, H, W] or a
    list of N COCO RLE dicts."""
    where = f"{_NAME}.update: {name}['masks'] of image {index}"
    if "masks" not in record or record["masks"] is None:
        raise ValueError(f"{_NAME}.update: {name} {index} has no 'masks' entry (iou_type='segm' needs "
                         "Tensor[N, H, W] bool masks or a list of N COCO RLE dicts)")
    value = record["masks"]
    if isinstance(value, (list, tuple)):
        try:
            runs = _runs.parse(list(value), "masks")
        except (ValueError, TypeError) as error:
            raise type(error)(f"{where}: {error}") from None
    else:
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        if not isinstance(array, np.ndarray) or array.dtype not in (np.bool_, np.uint8) or array.ndim != 3:
            raise TypeError(f"{where} must be a bool or uint8 Tensor[N, H, W] or a list of RLE dicts, got "
                            f"{getattr(array, 'dtype', type(array).__name__)} "
                            f"{list(getattr(array, 'shape', []))} (threshold soft masks first: masks > 0.5)")
        if array.dtype == np.uint8 and array.size and array.max() > 1:
            raise ValueError(f"{where} holds values above 1; give 0 / 1 (or bool) masks")
        runs = _runs.parse(_masks.encode(array), "masks") if array.shape[0] else \
            _runs.Runs(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros((0, 2), np.int64))
    return runs


def _vector(record: dict, key: str, name: str, n: int, dtype, index: int, default=None,
            unit: str = "boxes") -> np.ndarray:
    if key not in record or record[key] is None:
        if default is None:
            raise ValueError(f"{_NAME}.update: {name} {index} has no '{key}' entry")
        return np.full(n, default, dtype=dtype)
    values = _array(record[key], f"{name}['{key}']", dtype, index).reshape(-1)
    if values.size != n:
        raise ValueError(f"{_NAME}.update: {name}['{key}'] of image {index} has {values.size} "
                         f"entries but there are {n} {unit}")
    return values


class MeanAveragePrecision(Metric):
    """Mean average precision of box detections, accumulated over batches.

    Keywords as torchmetrics' ``MeanAveragePrecision``:

    Args:
        box_format: "xyxy" (default), "xywh" (COCO) or "cxcywh": the format of every box
            given to ``update``.
        iou_type: "bbox" (boxes) or "segm" (masks, pycocotools' ``COCOeval(..., "segm")``;
            COCO style only).
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

    With ``iou_type="segm"`` preds and targets give ``masks`` instead of ``boxes``: a bool
    (or 0 / 1 uint8) Tensor[N, H, W] or a list of N COCO RLE dicts (compressed or not), all
    of the image's size; a target's ``area`` defaults to its mask's pixel count, a
    prediction's area is its mask's (as pycocotools' ``loadRes``). ``boxes`` are optional
    there and not used.
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
        if iou_type == "segm" and style != "coco":
            raise ValueError(f"{_NAME}: iou_type='segm' is evaluated COCO style only (style='coco'), got style={style!r}")
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
    _FIELDS = ("det_image", "det_label", "det_score", "det_xywh", "det_area",
               "gt_image", "gt_label", "gt_xywh", "gt_area", "gt_crowd", "gt_difficult", "gt_id_nonzero",
               # segm: detections' masks as compressed counts strings end to end (most are never
               # decoded), ground truths' as run lengths
               "det_mask_chars", "det_mask_length", "det_mask_size", "gt_mask_runs", "gt_mask_length",
               "gt_mask_size")

    def reset(self) -> None:
        """Forget every image seen."""
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in self._FIELDS}
        self.num_images = 0

    def _append(self, **arrays: np.ndarray) -> None:
        for name, value in arrays.items():
            self._parts[name].append(value)

    def _local_state(self) -> dict[str, np.ndarray]:
        shapes = {"det_xywh": (0, 4), "gt_xywh": (0, 4), "det_mask_size": (0, 2), "gt_mask_size": (0, 2)}
        dtypes = {"det_image": np.int64, "det_label": np.int64, "gt_image": np.int64, "gt_label": np.int64,
                  "gt_crowd": bool, "gt_difficult": bool, "gt_id_nonzero": bool, "det_mask_chars": np.uint8,
                  "det_mask_length": np.int64, "det_mask_size": np.int64, "gt_mask_runs": np.int64,
                  "gt_mask_length": np.int64, "gt_mask_size": np.int64}
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
            if self.iou_type == "segm":
                self._append(**self._segm_image(pred, target, index))
            else:
                self._append(**self._bbox_image(pred, target, index))
        self.num_images += len(preds)

    def _bbox_image(self, pred: dict, target: dict, index: int) -> dict[str, np.ndarray]:
        """The state arrays of one image's boxes."""
        for record, name in ((pred, "preds"), (target, "targets")):
            if "boxes" not in record:
                raise ValueError(f"{_NAME}.update: {name} {index} has no 'boxes' entry")
        det = _boxes_xywh(pred["boxes"], "preds['boxes']", index, self.box_format)
        gt = _boxes_xywh(target["boxes"], "targets['boxes']", index, self.box_format)
        n, m = det.shape[0], gt.shape[0]
        area = _vector(target, "area", "targets", m, np.float64, index, default=np.nan)
        return dict(self._labels_and_flags(pred, target, index, n, m),
                    det_xywh=det, det_area=det[:, 2] * det[:, 3], gt_xywh=gt,
                    gt_area=np.where(np.isnan(area), gt[:, 2] * gt[:, 3], area))

    def _segm_image(self, pred: dict, target: dict, index: int) -> dict[str, np.ndarray]:
        """The state arrays of one image's masks (boxes: given ones or NaN for predictions,
        the masks' for targets)."""
        det, gt = _mask_runs(pred, "preds", index), _mask_runs(target, "targets", index)
        n, m = len(det), len(gt)
        sizes = np.concatenate([det.sizes, gt.sizes])
        if len(sizes) and (sizes != sizes[0]).any():
            raise ValueError(f"{_NAME}.update: the masks of image {index} differ in size "
                             f"({np.unique(sizes, axis=0).tolist()}); give every mask the image's [H, W]")
        given = pred.get("boxes")
        det_xywh = _boxes_xywh(given, "preds['boxes']", index, self.box_format) if given is not None \
            else np.full((n, 4), np.nan)
        area = _vector(target, "area", "targets", m, np.float64, index, default=np.nan, unit="masks")
        strings = _counts_string.to_strings(det.counts, det.offsets)
        if det_xywh.shape[0] != n:
            raise ValueError(f"{_NAME}.update: preds['boxes'] of image {index} has {det_xywh.shape[0]} boxes "
                             f"but there are {n} masks")
        return dict(self._labels_and_flags(pred, target, index, n, m, "masks"),
                    det_xywh=det_xywh, det_area=det.fg_areas().astype(np.float64),
                    gt_xywh=_masks.rle.bboxes(gt), gt_area=np.where(np.isnan(area), gt.fg_areas(), area),
                    det_mask_chars=np.frombuffer(b"".join(strings), dtype=np.uint8),
                    det_mask_length=np.array([len(c) for c in strings], dtype=np.int64),
                    det_mask_size=det.sizes, gt_mask_runs=gt.counts, gt_mask_length=np.diff(gt.offsets),
                    gt_mask_size=gt.sizes)

    def _labels_and_flags(self, pred: dict, target: dict, index: int, n: int, m: int,
                          unit: str = "boxes") -> dict[str, np.ndarray]:
        """Scores, labels, crowd / difficult flags of one image with n predictions, m targets."""
        vector = functools.partial(_vector, index=index, unit=unit)
        return dict(det_image=np.full(n, index, dtype=np.int64),
                    det_label=vector(pred, "labels", "preds", n, np.int64),
                    det_score=vector(pred, "scores", "preds", n, np.float64),
                    gt_image=np.full(m, index, dtype=np.int64),
                    gt_label=vector(target, "labels", "targets", m, np.int64),
                    gt_crowd=vector(target, "iscrowd", "targets", m, np.int64, default=0).astype(bool),
                    gt_difficult=vector(target, "difficult", "targets", m, np.int64, default=0).astype(bool),
                    gt_id_nonzero=np.ones(m, dtype=bool))

    def merge(self, other: "MeanAveragePrecision") -> "MeanAveragePrecision":
        """Append ``other``'s images after this metric's (same settings required)."""
        if not isinstance(other, MeanAveragePrecision):
            raise TypeError(f"{_NAME}.merge: expected a MeanAveragePrecision, got {type(other).__name__}")
        if (other.style != self.style or not np.array_equal(other.iou_thresholds, self.iou_thresholds)
                or other.max_detection_thresholds != self.max_detection_thresholds
                or other.iou_type != self.iou_type):
            raise ValueError(f"{_NAME}.merge: both metrics need the same style, iou_type, iou_thresholds and "
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
        whole = MeanAveragePrecision(self.style, self.iou_thresholds, self.max_detection_thresholds,
                                     iou_type=self.iou_type)
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
        {image_id, category_id, bbox [x, y, w, h], score}, or with iou_type="segm" of
        {image_id, category_id, segmentation (compressed RLE), score}); a path or the loaded
        object.

        Categories are the annotation file's (results of other categories are left out),
        images its images; a result on an image not in the annotation file is an error.
        Masks are read as pycocotools reads them (``tritonvision.metrics.coco_json``),
        including ``loadRes``' habit of taking every segm result's area from its ``bbox``
        when the first result has one.
        """
        from .coco_json import read_coco
        if iou_type not in IOU_TYPES:
            raise ValueError(f"{_NAME}.from_coco_json: iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
        gt, results = read_coco(gt_json_path, results_json_path, iou_type)
        return cls._from_coco(gt, results, style=style, iou_type=iou_type, **kwargs)

    @classmethod
    def _from_coco(cls, gt, results, style: str = "coco", **kwargs) -> "MeanAveragePrecision":
        """From an already read ``CocoGroundTruth`` and ``CocoResults``."""
        image, category, score, boxes = results[:4]
        metric = cls(style=style, **kwargs)
        metric._category_ids = gt.category_ids
        metric._category_names = gt.category_names
        n_cat = gt.category_ids.size
        label = lambda idx: np.where(idx >= 0, gt.category_ids[np.clip(idx, 0, max(n_cat - 1, 0))]
                                     if n_cat else -1, np.iinfo(np.int64).min)
        metric._append(det_image=image, det_label=label(category), det_score=score, det_xywh=boxes,
                       det_area=boxes[:, 2] * boxes[:, 3] if results.area is None else results.area,
                       gt_image=gt.gt_image, gt_label=label(gt.gt_category), gt_xywh=gt.gt_xywh,
                       gt_area=gt.gt_area, gt_crowd=gt.gt_crowd, gt_difficult=gt.gt_difficult,
                       gt_id_nonzero=gt.gt_id_nonzero)
        if metric.iou_type == "segm":
            masks, gt_masks = results.masks, gt.gt_masks
            metric._append(det_mask_chars=masks.chars, det_mask_length=np.diff(masks.offsets),
                           det_mask_size=masks.sizes, gt_mask_runs=gt_masks.counts,
                           gt_mask_length=np.diff(gt_masks.offsets), gt_mask_size=gt_masks.sizes)
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
        pair_iou = None
        if self.iou_type == "segm":
            det_masks = _runs.CompressedRuns(state["det_mask_chars"], offsets_of(state["det_mask_length"]),
                                             state["det_mask_size"])
            gt_masks = _runs.Runs(state["gt_mask_runs"], offsets_of(state["gt_mask_length"]), state["gt_mask_size"])
            pair_iou = coco_eval.mask_pair_iou(det_masks, gt_masks, state["gt_xywh"])
        instances = CocoInstances(
            state["num_images"], int(ids.size), state["det_image"], det_cat, state["det_score"], state["det_xywh"],
            state["gt_image"], gt_cat, state["gt_xywh"], state["gt_area"], state["gt_crowd"], state["gt_id_nonzero"],
            det_area=state["det_area"], pair_iou=pair_iou)
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

