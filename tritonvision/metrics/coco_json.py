"""Reading COCO annotation files and COCO result files (iouType "bbox") into flat arrays.

Follows pycocotools' selection: images are the annotation file's ``images`` (sorted
ids), categories its ``categories`` (sorted ids); annotations and results of other
images or categories are not evaluated. Result boxes are xywh; a result's area is
``w * h`` and it is never a crowd (as ``COCO.loadRes``). A ground truth without
``area`` gets ``w * h``, without ``iscrowd`` 0. Segmentation results are not supported
(no masks here): a result list without ``bbox`` is rejected.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from .coco_eval import CocoBoxes


@dataclass
class CocoGroundTruth:
    """A COCO annotation file as arrays. ``image_ids`` / ``category_ids`` are sorted."""
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


def load_json(path, what: str):
    """``json.load`` with errors that name the file and what it should be."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{what} file {path} is a directory, expected a COCO json file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} file {path} is not valid JSON: {error}") from None


def _index_of(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Position of each id in ``sorted_ids``, -1 where absent."""
    if sorted_ids.size == 0:
        return np.full(ids.shape, -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1).astype(np.int64)


def _boxes(records: list, source: str) -> np.ndarray:
    if not records:
        return np.zeros((0, 4), dtype=np.float64)
    try:
        boxes = np.array([r["bbox"] for r in records], dtype=np.float64)
    except KeyError:
        raise ValueError(f"{source}: every entry needs a 'bbox' [x, y, w, h] "
                         "(segmentation results are not supported)") from None
    except (TypeError, ValueError):
        raise ValueError(f"{source}: 'bbox' must be 4 numbers [x, y, w, h]") from None
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{source}: 'bbox' must be 4 numbers [x, y, w, h], got shape {list(boxes.shape)}")
    return boxes


def read_ground_truth(source) -> CocoGroundTruth:
    """A COCO annotation file (path) or its already-loaded dict."""
    name = source if isinstance(source, (str, os.PathLike)) else "ground truth"
    data = load_json(source, "ground-truth annotation") if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise ValueError(f"{name}: not a COCO annotation file (needs 'images', 'annotations' "
                         "and 'categories' keys)")
    try:
        image_ids = np.unique(np.array([img["id"] for img in data["images"]], dtype=np.int64))
        cats = sorted(data.get("categories", []), key=lambda c: c["id"])
        category_ids = np.array([c["id"] for c in cats], dtype=np.int64)
        names = [str(c.get("name", c["id"])) for c in cats]
        anns = data["annotations"]
        boxes = _boxes(anns, str(name))
        gt_image = _index_of(np.array([a["image_id"] for a in anns], dtype=np.int64), image_ids)
        gt_category = _index_of(np.array([a["category_id"] for a in anns], dtype=np.int64), category_ids)
        area = np.array([a.get("area", np.nan) for a in anns], dtype=np.float64)
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)
        ids = np.array([a.get("id", 1) for a in anns], dtype=np.int64)
        difficult = np.array([bool(a.get("difficult", 0)) for a in anns], dtype=bool)
    except KeyError as error:
        raise ValueError(f"{name}: an entry is missing the key {error}") from None
    missing_area = np.isnan(area)
    area[missing_area] = boxes[missing_area, 2] * boxes[missing_area, 3]
    # pycocotools evaluates only annotations of listed images: drop the others here
    known = gt_image >= 0
    category_ids_for_known = np.where(known, gt_category, -1)
    return CocoGroundTruth(image_ids, category_ids, names, np.maximum(gt_image, 0), category_ids_for_known,
                           boxes.reshape(-1, 4), area, crowd.reshape(-1), (ids != 0).reshape(-1),
                           difficult.reshape(-1))


_NUM = rb"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_RESULT_FIELDS = {key: re.compile(rb'"' + key.encode() + rb'"\s*:\s*(' + _NUM + rb")")
                  for key in ("image_id", "category_id", "score")}
_RESULT_BBOX = re.compile(rb'"bbox"\s*:\s*\[(\s*' + rb"\s*,\s*".join([_NUM] * 4) + rb"\s*)\]")


def _numbers(chunks: list[bytes], sep: bytes, dtype, expected: int) -> np.ndarray | None:
    if not chunks:
        return np.zeros(0, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(sep.join(chunks).decode("ascii"), dtype=dtype, sep=sep.decode())
        except (ValueError, DeprecationWarning, UnicodeDecodeError):
            return None
    return values if values.size == expected else None


_RESULT_KEYS = ("image_id", "category_id", "bbox", "score")
_NUMBER_BYTES = b"0123456789.+-eE"
_NOT_NUMBER = bytes(b if b in _NUMBER_BYTES else 32 for b in range(256))


def _template_results(raw: bytes):
    """The fastest path, for files where every object has exactly the four keys in the
    same order and layout as the first (what detectors write): the text with the digits
    removed must be the first object's skeleton repeated; then all numbers are parsed in
    one go. None when the file is not like that."""
    start = raw.find(b"{")
    end = raw.find(b"}", start)
    if start < 0 or end < 0 or raw[:start].strip() != b"[":
        return None
    try:
        first = json.loads(raw[start:end + 1])
    except ValueError:
        return None
    if (not isinstance(first, dict) or sorted(first) != sorted(_RESULT_KEYS)
            or not isinstance(first["bbox"], list) or len(first["bbox"]) != 4
            or any(isinstance(v, bool) or not isinstance(v, (int, float))
                   for v in [first["image_id"], first["category_id"], first["score"], *first["bbox"]])):
        return None
    n = raw.count(b"{")
    skeleton = raw.translate(None, b"0123456789.-+eE \t\n\r")
    obj = skeleton[skeleton.find(b"{"):skeleton.find(b"}") + 1]
    if skeleton != b"[" + b",".join([obj] * n) + b"]":
        return None
    # every byte that cannot be part of a number becomes a space; what is left of the
    # keys is the lone "e" of image_id, category_id and score, which a number never is
    text = raw.translate(_NOT_NUMBER).replace(b" e ", b"   ")
    values = _numbers([text], b" ", np.float64, 7 * n)
    if values is None:
        return None
    values = values.reshape(n, 7)
    column, columns = 0, {}
    for key in first:
        width = 4 if key == "bbox" else 1
        columns[key] = values[:, column:column + width]
        column += width
    ids = np.concatenate([columns["image_id"], columns["category_id"]], axis=1)
    if not (np.all(ids == np.round(ids)) and np.all(np.abs(ids) < 2 ** 53)):
        return None
    return (ids[:, 0].astype(np.int64), ids[:, 1].astype(np.int64), columns["score"][:, 0].copy(),
            np.ascontiguousarray(columns["bbox"]))


def _fast_results(raw: bytes):
    """Arrays straight from the bytes of a flat result list ([{image_id, category_id, bbox,
    score}, ...], any key order and spacing, extra flat keys allowed) with regular
    expressions and numpy's parser: ~3x faster than ``json`` + dicts on large files.
    Returns None whenever the file is not exactly that (nested objects, a missing or
    repeated key, a non-4-number bbox, non-integer ids...): the caller then uses ``json``.
    The numbers are the same doubles ``json`` gives (both round correctly)."""
    head = raw.lstrip()[:1]
    if head != b"[":
        return None
    fastest = _template_results(raw)
    if fastest is not None:
        return fastest
    n = raw.count(b"{")
    if n == 0 or raw.count(b"}") != n:
        return None
    found = {key: pattern.findall(raw) for key, pattern in _RESULT_FIELDS.items()}
    boxes = _RESULT_BBOX.findall(raw)
    if any(len(v) != n for v in found.values()) or len(boxes) != n or raw.count(b'"bbox"') != n:
        return None
    if any(raw.count(b'"' + key.encode() + b'"') != n for key in _RESULT_FIELDS):
        return None
    image = _numbers(found["image_id"], b" ", np.int64, n)
    category = _numbers(found["category_id"], b" ", np.int64, n)
    score = _numbers(found["score"], b" ", np.float64, n)
    xywh = _numbers(boxes, b",", np.float64, 4 * n)
    if image is None or category is None or score is None or xywh is None:
        return None
    return image, category, score, xywh.reshape(n, 4)


def read_results(source, gt: CocoGroundTruth) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A COCO result file (a list of {image_id, category_id, bbox, score}) or that list:
    (image index, category index (-1 when not evaluated), score, xywh boxes)."""
    name = source if isinstance(source, (str, os.PathLike)) else "results"
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"detection results file not found: {os.fspath(source)}") from None
        except IsADirectoryError:
            raise ValueError(f"detection results file {os.fspath(source)} is a directory, "
                             "expected a COCO result json file") from None
        fast = _fast_results(raw)
        if fast is not None:
            return _checked(name, gt, *fast)
        data = load_json(source, "detection results")
    else:
        data = source
    if isinstance(data, dict) and "annotations" in data:
        data = data["annotations"]
    if not isinstance(data, list):
        raise ValueError(f"{name}: COCO results must be a list of "
                         "{{image_id, category_id, bbox, score}} objects")
    try:
        boxes = _boxes(data, str(name))
        image = np.array([d["image_id"] for d in data], dtype=np.int64)
        category = np.array([d["category_id"] for d in data], dtype=np.int64)
        score = np.array([d["score"] for d in data], dtype=np.float64)
    except KeyError as error:
        raise ValueError(f"{name}: a result is missing the key {error}") from None
    except TypeError:
        raise ValueError(f"{name}: COCO results must be a list of "
                         "{image_id, category_id, bbox, score} objects") from None
    return _checked(name, gt, image, category, score, boxes)


def _checked(name, gt: CocoGroundTruth, image, category, score, boxes):
    image_index = _index_of(image, gt.image_ids)
    if (image_index < 0).any():
        bad = np.unique(image[image_index < 0])[:5].tolist()
        raise ValueError(f"{name}: results refer to images that are not in the ground truth "
                         f"(image ids {bad}); pycocotools refuses these too")
    return image_index, _index_of(category, gt.category_ids), score, boxes


def coco_boxes(gt: CocoGroundTruth, results) -> CocoBoxes:
    image, category, score, boxes = results
    return CocoBoxes(int(gt.image_ids.size), int(gt.category_ids.size), image, category, score, boxes,
                     gt.gt_image, gt.gt_category, gt.gt_xywh, gt.gt_area, gt.gt_crowd, gt.gt_id_nonzero)
