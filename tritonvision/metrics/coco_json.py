"""Reading COCO annotation files and COCO result files (iouType "bbox") into flat arrays.

Follows pycocotools' selection: images are the annotation file's ``images`` (sorted
ids), categories its ``categories`` (sorted ids); annotations and results of other
images or categories are not evaluated. Result boxes are xywh; a result's area is
``w * h`` and it is never a crowd (as ``COCO.loadRes``). A ground truth without
``area`` gets ``w * h``, without ``iscrowd`` 0.

Files are parsed with ``orjson`` while Python's garbage collector is paused (building
half a million result dicts otherwise triggers repeated full collections). Values are
checked, not coerced: ids must be integers (``1.0`` is taken as 1, as pycocotools'
dict lookups do; ``1.5``, ``true`` and ``"1"`` are errors), scores numbers (``null``,
``"0.9"`` and ``true`` are errors), boxes four numbers.
"""
from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass, field

import numpy as np
import orjson


@dataclass
class CocoGroundTruth:
    """A COCO annotation file as arrays. ``image_ids`` / ``category_ids`` are sorted;
    ``gt_image`` / ``gt_category`` index them (``gt_category`` -1: not evaluated)."""
    image_ids: np.ndarray
    category_ids: np.ndarray
    category_names: list[str]
    gt_image: np.ndarray
    gt_category: np.ndarray
    gt_xywh: np.ndarray
    gt_area: np.ndarray
    gt_crowd: np.ndarray
    gt_id_nonzero: np.ndarray
    gt_difficult: np.ndarray = field(default=None)


@contextlib.contextmanager
def _gc_paused():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_json(path, what: str):
    """Parse a JSON file with errors that name the file and what it should be."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{what} file {path} is a directory, expected a COCO json file") from None
    try:
        with _gc_paused():
            return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"{what} file {path} is not valid JSON: {error}") from None


def _index_of(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Position of each id in ``sorted_ids``, -1 where absent."""
    if sorted_ids.size == 0:
        return np.full(ids.shape, -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1).astype(np.int64)


def _values(records: list, key: str, source: str, default=None) -> list:
    try:
        if default is None:
            return [r[key] for r in records]
        return [r.get(key, default) for r in records]
    except KeyError:
        raise ValueError(f"{source}: an entry is missing the key '{key}'") from None
    except (TypeError, AttributeError):
        raise ValueError(f"{source}: every entry must be a JSON object, got "
                         f"{type(next(r for r in records if not isinstance(r, dict))).__name__}") from None


def _numbers(values: list, key: str, source: str) -> np.ndarray:
    """float64 array of JSON numbers; bools, strings and nulls are errors."""
    kinds = set(map(type, values))
    if not kinds <= {int, float}:
        bad = next(v for v in values if type(v) not in (int, float))
        raise ValueError(f"{source}: '{key}' must be a number, got {bad!r}")
    return np.array(values, dtype=np.float64)


def _ids(values: list, key: str, source: str) -> np.ndarray:
    """int64 array of integer ids (integral floats accepted, as pycocotools' dict lookups do)."""
    if set(map(type, values)) <= {int}:
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            raise ValueError(f"{source}: '{key}' does not fit in 64 bits") from None
    numbers = _numbers(values, key, source)
    integral = (numbers == np.round(numbers)) & (np.abs(numbers) < 2 ** 53)
    if not integral.all():
        raise ValueError(f"{source}: '{key}' must be an integer, got {numbers[~integral][0]!r}")
    return numbers.astype(np.int64)


def _boxes(records: list, source: str) -> np.ndarray:
    values = _values(records, "bbox", source)
    if not values:
        return np.zeros((0, 4), dtype=np.float64)
    try:
        boxes = np.array(values)
    except ValueError:  # ragged lists
        boxes = np.zeros(0)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.dtype.kind not in "iuf":
        raise ValueError(f"{source}: 'bbox' must be 4 numbers [x, y, w, h] in every entry")
    return boxes.astype(np.float64)


def read_ground_truth(source) -> CocoGroundTruth:
    """A COCO annotation file (path) or its already-loaded dict."""
    name = str(source) if isinstance(source, (str, os.PathLike)) else "ground truth"
    data = load_json(source, "ground-truth annotation") if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise ValueError(f"{name}: not a COCO annotation file (needs 'images', 'annotations' "
                         "and 'categories' keys)")
    images, anns = data["images"], data["annotations"]
    image_ids = np.unique(_ids(_values(images, "id", f"{name} images"), "id", f"{name} images"))
    cats = data.get("categories", [])
    category_ids = _ids(_values(cats, "id", f"{name} categories"), "id", f"{name} categories")
    order = np.argsort(category_ids, kind="stable")
    category_ids = category_ids[order]
    names = [str(cats[i].get("name", cats[i]["id"])) for i in order]
    boxes = _boxes(anns, name)
    gt_image = _index_of(_ids(_values(anns, "image_id", name), "image_id", name), image_ids)
    gt_category = _index_of(_ids(_values(anns, "category_id", name), "category_id", name), category_ids)
    area = np.array([a.get("area", np.nan) for a in anns], dtype=np.float64)
    missing_area = np.isnan(area)
    area[missing_area] = boxes[missing_area, 2] * boxes[missing_area, 3]
    crowd = _ids(_values(anns, "iscrowd", name, default=0), "iscrowd", name) != 0
    ids = _ids(_values(anns, "id", name, default=1), "id", name)
    difficult = _ids(_values(anns, "difficult", name, default=0), "difficult", name) != 0
    # pycocotools evaluates only annotations of listed images: the others get category -1
    known = gt_image >= 0
    return CocoGroundTruth(image_ids, category_ids, names, np.maximum(gt_image, 0),
                           np.where(known, gt_category, -1), boxes, area, crowd, ids != 0, difficult)


def read_results(source, gt: CocoGroundTruth) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A COCO result file (a list of {image_id, category_id, bbox, score}) or that list:
    (image index, category index (-1 when not evaluated), score, xywh boxes)."""
    name = str(source) if isinstance(source, (str, os.PathLike)) else "results"
    data = load_json(source, "detection results") if isinstance(source, (str, os.PathLike)) else source
    if isinstance(data, dict) and "annotations" in data:
        data = data["annotations"]
    if not isinstance(data, list):
        raise ValueError(f"{name}: COCO results must be a list of "
                         "{image_id, category_id, bbox, score} objects")
    if data and "bbox" not in data[0] and isinstance(data[0], dict) and "segmentation" in data[0]:
        raise ValueError(f"{name}: these are segmentation results; every entry needs a 'bbox' "
                         "[x, y, w, h] for box evaluation")
    boxes = _boxes(data, name)
    image = _ids(_values(data, "image_id", name), "image_id", name)
    category = _ids(_values(data, "category_id", name), "category_id", name)
    score = _numbers(_values(data, "score", name), "score", name)
    image_index = _index_of(image, gt.image_ids)
    if (image_index < 0).any():
        bad = np.unique(image[image_index < 0])[:5].tolist()
        raise ValueError(f"{name}: results refer to images that are not in the ground truth "
                         f"(image ids {bad}); pycocotools refuses these too")
    return image_index, _index_of(category, gt.category_ids), score, boxes


def read_coco(gt_source, results_source):
    """``(read_ground_truth(gt_source), read_results(results_source, gt))``."""
    gt = read_ground_truth(gt_source)
    return gt, read_results(results_source, gt)
