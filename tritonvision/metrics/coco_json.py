"""Reading COCO annotation files and COCO result files (iouType "bbox" or "segm") into flat arrays.

Follows pycocotools' selection: images are the annotation file's ``images`` (sorted
ids), categories its ``categories`` (sorted ids); annotations and results of other
images or categories are not evaluated. Result boxes are xywh; a result's area is
``w * h`` and it is never a crowd (as ``COCO.loadRes``). A ground truth without
``area`` gets ``w * h``, without ``iscrowd`` 0.

Masks ("segm"), as pycocotools: a ground truth's ``segmentation`` becomes one RLE as
``COCO.annToRLE`` builds it (polygons rasterised and merged, an uncompressed RLE -- a
crowd region -- taken as is, a compressed one too); its ``area`` field decides the area
range (the mask's pixel count when absent). Results are compressed RLEs
(``{"size": [h, w], "counts": str}``) as ``COCO.loadRes`` takes them: a result's area is
its mask's pixel count -- unless the *first* result has a ``bbox``, in which case
``loadRes`` takes every result's area from its ``bbox`` (w * h), and so does this reader.
Every mask must have its image's height and width (the annotation file's ``images``).

Files are parsed with ``orjson`` while Python's garbage collector is paused (building
half a million result dicts otherwise triggers repeated full collections). Values are
checked, not coerced: ids must be integers (``1.0`` is taken as 1, as pycocotools'
dict lookups do; ``1.5``, ``true`` and ``"1"`` are errors), scores numbers (``null``,
``"0.9"`` and ``true`` are errors), boxes four numbers.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import os
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import orjson

from tritonvision.masks import polygons as _polygons
from tritonvision.masks._counts_string import CountsStringError
from tritonvision.masks._runs import CompressedRuns, Runs
from tritonvision.masks._segments import offsets_of
from tritonvision.masks.rle import bboxes, merge_groups

IOU_TYPES = ("bbox", "segm")


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
    gt_masks: Runs | None = None             # segm: one RLE per annotation (annToRLE)
    image_sizes: np.ndarray | None = None    # segm: [I, 2] (height, width) of each image


class CocoResults(NamedTuple):
    """A result file as arrays: image index, category index (-1: not evaluated), score,
    xywh boxes (NaN where a segm result has none), and for segm the masks and each
    result's area (as ``COCO.loadRes`` sets it)."""
    image: np.ndarray
    category: np.ndarray
    score: np.ndarray
    xywh: np.ndarray
    masks: CompressedRuns | None = None
    area: np.ndarray | None = None


@contextlib.contextmanager
def _gc_paused():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _gc_paused_throughout(reader):
    """Run ``reader`` with the garbage collector paused: the parsed JSON objects are then
    freed by reference counting when it returns, before any collection would walk them
    (re-enabling the collector right after parsing costs a full pass over them)."""
    @functools.wraps(reader)
    def paused(*args, **kwargs):
        with _gc_paused():
            return reader(*args, **kwargs)
    return paused


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
    bad = ValueError(f"{source}: 'bbox' must be 4 numbers [x, y, w, h] in every entry")
    if not all(type(box) is list and len(box) == 4 for box in values):
        raise bad
    flat = list(itertools.chain.from_iterable(values))
    if not set(map(type, flat)) <= {int, float}:
        raise bad
    # ~4x faster than np.array of the nested lists on a COCO-val-sized result file
    return np.fromiter(flat, dtype=np.float64, count=len(flat)).reshape(-1, 4)


def _check_iou_type(iou_type: str, where: str) -> None:
    if iou_type not in IOU_TYPES:
        raise ValueError(f"{where}: iou_type must be one of {IOU_TYPES}, got {iou_type!r}")


def _image_sizes(images: list, image_ids: np.ndarray, name: str) -> np.ndarray:
    """[I, 2] (height, width) of the images by sorted id (segm needs them, as annToRLE)."""
    where = f"{name} images"
    heights = _ids(_values(images, "height", where), "height", where)
    widths = _ids(_values(images, "width", where), "width", where)
    ids = _ids(_values(images, "id", where), "id", where)
    if (heights < 0).any() or (widths < 0).any():
        raise ValueError(f"{where}: 'height' and 'width' must be >= 0")
    sizes = np.zeros((image_ids.size, 2), dtype=np.int64)
    sizes[_index_of(ids, image_ids)] = np.stack([heights, widths], axis=1)
    return sizes


def _annotation_label(ann, name: str) -> str:
    return f"{name}: annotation {ann.get('id', '?')} (image {ann.get('image_id', '?')})"


def _polygon_list(segmentation: list, label: str) -> list:
    """The polygons of one annotation (lists of numbers), checked as pycocotools can read them."""
    first = segmentation[0] if segmentation else None
    if not isinstance(first, (list, tuple)) or len(first) <= 4:
        raise ValueError(f"{label}: 'segmentation' must be a list of polygons [[x0, y0, x1, y1, x2, y2, ...]] "
                         f"whose first has at least 3 points (pycocotools fails on an empty list and reads a "
                         f"first entry of 4 numbers as boxes), got {str(segmentation)[:80]}")
    return segmentation


def _polygon_arrays(polygons: list, owner: list, anns: list, name: str) -> list[np.ndarray]:
    """Every polygon as a float64 array, checked in bulk (one by one only to name a bad one)."""
    lengths = np.fromiter(map(len, polygons), dtype=np.int64, count=len(polygons)) if polygons else np.zeros(0, int)
    values = list(itertools.chain.from_iterable(polygons))
    ok = set(map(type, values)) <= {int, float} and not (lengths % 2).any()
    flat = np.array(values, dtype=np.float64) if ok else None
    ok = ok and bool(np.isfinite(flat).all() and (np.abs(flat) <= _polygons.MAX_COORDINATE).all())
    if not ok:
        for polygon, i in zip(polygons, owner):
            try:
                _polygons._check_polygons([polygon], "segmentation")
                if not all(type(v) in (int, float) for v in polygon):
                    raise ValueError(f"polygon coordinates must be numbers, got {str(polygon)[:80]}")
            except (ValueError, TypeError) as error:
                raise ValueError(f"{_annotation_label(anns[i], name)}: {error}") from None
    return np.split(flat, np.cumsum(lengths)[:-1]) if polygons else []


def _rle_masks(segmentations: list, owner: list, sizes: np.ndarray, anns: list, name: str) -> Runs:
    """The RLE segmentations (compressed or not) of annotations ``owner``, checked."""
    from tritonvision.masks import _runs
    try:
        runs = _runs.parse(segmentations, "segmentation")
    except (ValueError, TypeError) as error:
        raise ValueError(f"{_annotation_label(anns[owner[error.index]], name)}: 'segmentation': "
                         f"{error.reason}") from None
    wrong = np.flatnonzero((runs.sizes != sizes[owner]).any(axis=1)) if len(runs) else []
    if len(wrong):
        i = int(wrong[0])
        raise ValueError(f"{_annotation_label(anns[owner[i]], name)}: its RLE 'size' {runs.sizes[i].tolist()} "
                         f"is not the image's [height, width] {sizes[owner[i]].tolist()}")
    return runs


def _ground_truth_masks(anns: list, sizes: np.ndarray, listed: np.ndarray, name: str) -> Runs:
    """One RLE per annotation as ``COCO.annToRLE``; ``sizes`` [M, 2] its image's size.
    Annotations of images not ``listed`` are never evaluated: an empty 0 x 0 mask each."""
    polygons, polygon_owner, rles, rle_owner = [], [], [], []
    for i, ann in enumerate(anns):
        if not listed[i]:
            continue
        segmentation = ann.get("segmentation")
        if isinstance(segmentation, list):
            parts = _polygon_list(segmentation, _annotation_label(ann, name))
            polygons.extend(parts)
            polygon_owner.extend([i] * len(parts))
        elif isinstance(segmentation, dict):
            rles.append(segmentation)
            rle_owner.append(i)
        else:
            raise ValueError(f"{_annotation_label(ann, name)}: 'segmentation' must be polygons (a list of "
                             f"[x0, y0, x1, y1, ...]) or an RLE {{size, counts}}, got "
                             f"{type(segmentation).__name__} (segm evaluation needs a mask for every annotation)")
    owner = np.array(polygon_owner, dtype=np.int64)
    rasterised = _polygons.rasterise(_polygon_arrays(polygons, polygon_owner, anns, name),
                                     sizes[owner, 0], sizes[owner, 1])
    merged, polygon_anns = _merge_parts(rasterised, owner)
    rle_owner = np.array(rle_owner, dtype=np.int64)
    empty = np.flatnonzero(~listed)
    blank = Runs(np.zeros(empty.size, dtype=np.int64), np.arange(empty.size + 1), np.zeros((empty.size, 2), int))
    everything = Runs.concatenate([merged, _rle_masks(rles, rle_owner, sizes, anns, name), blank])
    position = np.concatenate([polygon_anns, rle_owner, empty])
    order = np.empty(len(anns), dtype=np.int64)
    order[position] = np.arange(len(anns))
    return everything.take(order)


def _merge_parts(rasterised: Runs, owner: np.ndarray) -> tuple[Runs, np.ndarray]:
    """One RLE per annotation from its polygons' (``owner`` sorted): the union where there
    are several (pycocotools' ``merge``). Returns (RLEs, their annotations)."""
    annotations, first, count = np.unique(owner, return_index=True, return_counts=True)
    single = count == 1
    if single.all():
        return rasterised, annotations
    several = np.flatnonzero(np.repeat(~single, count))
    group = np.repeat(np.arange(int((~single).sum())), count[~single])
    merged = merge_groups(rasterised.take(several), group, int((~single).sum()), intersect=False)
    out = Runs.concatenate([rasterised.take(first[single]), merged])
    return out, np.concatenate([annotations[single], annotations[~single]])


@_gc_paused_throughout
def read_ground_truth(source, iou_type: str = "bbox") -> CocoGroundTruth:
    """A COCO annotation file (path) or its already-loaded dict; ``iou_type="segm"`` also
    reads every annotation's mask (and then takes each box from its mask, ``toBbox``)."""
    _check_iou_type(iou_type, "read_ground_truth")
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
    gt_image = _index_of(_ids(_values(anns, "image_id", name), "image_id", name), image_ids)
    gt_category = _index_of(_ids(_values(anns, "category_id", name), "category_id", name), category_ids)
    known = gt_image >= 0
    image_sizes = masks = None
    if iou_type == "segm":
        image_sizes = _image_sizes(images, image_ids, name)
        sizes = np.where(known[:, None], image_sizes[np.maximum(gt_image, 0)], 0)
        masks = _ground_truth_masks(anns, sizes, known, name)
        boxes = bboxes(masks)
    else:
        boxes = _boxes(anns, name)
    area = np.array([a.get("area", np.nan) for a in anns], dtype=np.float64)
    missing_area = np.isnan(area)
    area[missing_area] = masks.fg_areas()[missing_area] if masks is not None \
        else boxes[missing_area, 2] * boxes[missing_area, 3]
    crowd = _ids(_values(anns, "iscrowd", name, default=0), "iscrowd", name) != 0
    ids = _ids(_values(anns, "id", name, default=1), "id", name)
    difficult = _ids(_values(anns, "difficult", name, default=0), "difficult", name) != 0
    # pycocotools evaluates only annotations of listed images: the others get category -1
    return CocoGroundTruth(image_ids, category_ids, names, np.maximum(gt_image, 0),
                           np.where(known, gt_category, -1), boxes, area, crowd, ids != 0, difficult,
                           masks, image_sizes)


def _result_masks(data: list, image_index: np.ndarray, gt: CocoGroundTruth, name: str) -> CompressedRuns:
    """The results' compressed RLEs, checked (strings decoded later, in bulk)."""
    segmentations = _values(data, "segmentation", name)
    try:
        counts = [seg["counts"] for seg in segmentations]
        sizes = np.array([seg["size"] for seg in segmentations]).reshape(len(data), -1)
    except (TypeError, KeyError, ValueError):
        counts, sizes = None, None
    good = counts is not None and set(map(type, counts)) <= {str, bytes} and sizes.shape[1:] == (2,) \
        and sizes.dtype.kind in "iu" and (sizes >= 0).all()
    bad = None if good else next(
        i for i, seg in enumerate(segmentations)
        if not (isinstance(seg, dict) and type(seg.get("counts")) in (str, bytes) and isinstance(seg.get("size"), list)
                and len(seg["size"]) == 2 and all(type(v) is int and v >= 0 for v in seg["size"])))
    if bad is not None:
        raise ValueError(f"{name}: result {bad} (image {data[bad].get('image_id')}): 'segmentation' must be a "
                         f"compressed RLE {{'size': [h, w], 'counts': str}} (what tritonvision.masks.encode and "
                         f"pycocotools' mask.encode give), got {str(segmentations[bad])[:80]}")
    sizes = sizes.astype(np.int64)
    wrong = np.flatnonzero((sizes != gt.image_sizes[image_index]).any(axis=1))
    if wrong.size:
        i = int(wrong[0])
        raise ValueError(f"{name}: result {i} (image {data[i]['image_id']}): its RLE 'size' {sizes[i].tolist()} "
                         f"is not the image's [height, width] {gt.image_sizes[image_index[i]].tolist()}")
    try:
        chars = "".join(counts).encode("ascii") if bytes not in set(map(type, counts)) \
            else b"".join(c.encode("ascii") if type(c) is str else c for c in counts)
    except UnicodeEncodeError:
        i = next(i for i, c in enumerate(counts) if type(c) is str and not c.isascii())
        raise ValueError(f"{name}: result {i} (image {data[i]['image_id']}): compressed counts has a "
                         "non-ASCII character (not a COCO compressed RLE string)") from None
    lengths = np.fromiter(map(len, counts), dtype=np.int64, count=len(counts))
    return CompressedRuns(np.frombuffer(chars, dtype=np.uint8), offsets_of(lengths), sizes)


def _result_areas(data: list, masks: CompressedRuns, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(area, xywh) of segm results as ``COCO.loadRes``: areas of the masks, or of the boxes
    when the first result has a ``bbox``; boxes as given, NaN where none."""
    if data and data[0].get("bbox") not in (None, []):
        if any("bbox" not in r for r in data):
            i = next(i for i, r in enumerate(data) if "bbox" not in r)
            raise ValueError(f"{name}: result {i} has no 'bbox' but the first has one; pycocotools then takes "
                             "every result's area from its bbox (give one to all results, or to none)")
        boxes = _boxes(data, name)
        return boxes[:, 2] * boxes[:, 3], boxes
    try:
        areas = masks.fg_areas().astype(np.float64)
    except CountsStringError as error:
        raise ValueError(f"{name}: result {error.index} (image {data[error.index]['image_id']}): "
                         f"{error.reason}") from None
    boxes = np.full((len(data), 4), np.nan)
    with_box = [i for i, r in enumerate(data) if "bbox" in r] if any("bbox" in r for r in data) else []
    if with_box:
        boxes[with_box] = _boxes([data[i] for i in with_box], name)
    return areas, boxes


@_gc_paused_throughout
def read_results(source, gt: CocoGroundTruth, iou_type: str = "bbox") -> CocoResults:
    """A COCO result file (a list of {image_id, category_id, bbox or segmentation, score})
    or that list, as arrays (see :class:`CocoResults`). ``gt`` must have been read with
    the same ``iou_type``."""
    _check_iou_type(iou_type, "read_results")
    name = str(source) if isinstance(source, (str, os.PathLike)) else "results"
    data = load_json(source, "detection results") if isinstance(source, (str, os.PathLike)) else source
    if isinstance(data, dict) and "annotations" in data:
        data = data["annotations"]
    wanted = "bbox" if iou_type == "bbox" else "segmentation"
    if not isinstance(data, list):
        raise ValueError(f"{name}: COCO results must be a list of "
                         f"{{image_id, category_id, {wanted}, score}} objects")
    if iou_type == "bbox" and data and isinstance(data[0], dict) and "bbox" not in data[0] \
            and "segmentation" in data[0]:
        raise ValueError(f"{name}: these are segmentation results; every entry needs a 'bbox' "
                         "[x, y, w, h] for box evaluation (or evaluate masks: iou_type='segm')")
    image = _ids(_values(data, "image_id", name), "image_id", name)
    category = _ids(_values(data, "category_id", name), "category_id", name)
    score = _numbers(_values(data, "score", name), "score", name)
    image_index = _index_of(image, gt.image_ids)
    if (image_index < 0).any():
        bad = np.unique(image[image_index < 0])[:5].tolist()
        raise ValueError(f"{name}: results refer to images that are not in the ground truth "
                         f"(image ids {bad}); pycocotools refuses these too")
    category_index = _index_of(category, gt.category_ids)
    if iou_type == "bbox":
        return CocoResults(image_index, category_index, score, _boxes(data, name))
    if gt.gt_masks is None:
        raise ValueError("read_results: iou_type='segm' needs the ground truth read with iou_type='segm'")
    masks = _result_masks(data, image_index, gt, name)
    area, boxes = _result_areas(data, masks, name)
    return CocoResults(image_index, category_index, score, boxes, masks, area)


def read_coco(gt_source, results_source, iou_type: str = "bbox") -> tuple[CocoGroundTruth, CocoResults]:
    """``(read_ground_truth(gt_source), read_results(results_source, gt))`` for ``iou_type``."""
    gt = read_ground_truth(gt_source, iou_type)
    return gt, read_results(results_source, gt, iou_type)
