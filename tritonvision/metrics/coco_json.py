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
import mmap
import os
import re
import sys
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


def _template_layout(raw: bytes):
    """(first object, number of objects) when the file starts like a detector's output:
    a list whose first object has exactly the four keys, plain numbers, a 4-number bbox.
    None otherwise. ``_template_skeleton_ok`` then checks that every object is laid out
    like the first."""
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
    return first, raw.count(b"{")


def _template_skeleton_ok(raw: bytes, n: int) -> bool:
    """The text with the digits removed is the first object's skeleton repeated n times."""
    skeleton = raw.translate(None, b"0123456789.-+eE \t\n\r")
    obj = skeleton[skeleton.find(b"{"):skeleton.find(b"}") + 1]
    return n > 0 and skeleton == b"[" + (obj + b",") * (n - 1) + obj + b"]"


def _template_values(raw: bytes, n: int) -> np.ndarray | None:
    """The 7 * n numbers of a piece of a template file holding n whole objects (or None).
    Every byte that cannot be part of a number becomes a space; what is left of the keys
    is the lone "e" of image_id, category_id and score, which a number never is."""
    text = raw.translate(_NOT_NUMBER).replace(b" e ", b"   ")
    return _numbers([text], b" ", np.float64, 7 * n)


def _template_columns(first: dict, values: np.ndarray):
    """(image id, category id, score, xywh) from the [n, 7] numbers in the first object's key
    order; None when an id is not an integer."""
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


def _template_results(raw: bytes):
    """The fastest path, for files where every object has exactly the four keys in the
    same order and layout as the first (what detectors write): the text with the digits
    removed must be the first object's skeleton repeated; then all numbers are parsed in
    one go. None when the file is not like that."""
    layout = _template_layout(raw)
    if layout is None or not _template_skeleton_ok(raw, layout[1]):
        return None
    first, n = layout
    values = _template_values(raw, n)
    return None if values is None else _template_columns(first, values.reshape(n, 7))


# ---------------------------------------------------------------- two processes
# Parsing the numbers (np.fromstring) is most of the time of a large evaluation from files
# (COCO-val-sized results, 47 MB, 3.5M numbers: 0.7 s of ~1.8 s). On Linux, for a large
# template file on a machine with 2+ cores, a forked child parses the tail of the numbers
# while this process reads the ground truth, checks the layout and parses the head:
# reading both files of the COCO-val-sized synthetic set went from ~1.3 s to ~0.7 s, and
# ``python -m perf.cases.detection_map --full`` (read + evaluate) from 2.04 s to 1.31 s
# wall (with ~0.04 s from coco_eval's single score sort) on a 2-core AMD EPYC, see
# perf/results/cpu-amd-epyc/coco-eval-full.md. The child runs only bytes/numpy code on its
# copy of the bytes, writes the doubles raw into shared memory and exits with os._exit; any
# failure falls back to parsing in this process, with the same numbers (the same parser on
# the same text, split between two objects).
_PARALLEL_MIN_BYTES = 8 << 20   # smaller files: the fork is not worth it
_CHILD_SHARE = 0.65             # the child's share of the objects (this process also reads the gt)


def _parallel_ok(size: int) -> bool:
    if size < _PARALLEL_MIN_BYTES or not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except (AttributeError, OSError):
        return False


class _PendingResults:
    """A template result file whose tail (objects from byte ``cut`` on) is being parsed by
    a forked child. ``finish()`` returns the four arrays, or None when the file is not a
    template file after all (the caller then takes the ordinary path)."""

    def __init__(self, raw: bytes, first: dict, n: int):
        self.raw, self.first, self.n = raw, first, n
        self.cut = raw.find(b"{", int(len(raw) * (1 - _CHILD_SHARE)))
        self.pid = None
        if self.cut <= 0:
            return
        self.tail_n = n - raw.count(b"{", 0, self.cut)
        # the child writes its doubles straight into shared memory; exit status 0 = done
        try:
            self.shared = mmap.mmap(-1, max(8 * 7 * self.tail_n, 1))
            with warnings.catch_warnings():  # python >= 3.12 warns about fork with threads
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:
            return
        if pid == 0:  # child: parse, store, exit -- never return into the caller
            status = 1
            try:
                values = _template_values(raw[self.cut:], self.tail_n)
                if values is not None:
                    np.frombuffer(self.shared, dtype=np.float64, count=7 * self.tail_n)[:] = values
                    status = 0
            finally:
                os._exit(status)
        self.pid = pid

    def _tail(self) -> np.ndarray | None:
        """The child's numbers, or None if it failed (the child is reaped whatever happens)."""
        if self.pid is None:
            return None
        pid, self.pid = self.pid, None
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): status unknown
            return None
        if status != 0:
            return None
        return np.frombuffer(self.shared, dtype=np.float64, count=7 * self.tail_n)

    def finish(self):
        try:
            if not _template_skeleton_ok(self.raw, self.n):
                return None
            if self.pid is None:
                values = _template_values(self.raw, self.n)
            else:
                head = _template_values(self.raw[:self.cut], self.n - self.tail_n)
                tail = self._tail()
                if tail is None:  # the child failed: parse its part here
                    tail = _template_values(self.raw[self.cut:], self.tail_n)
                values = None if head is None or tail is None else np.concatenate([head, tail])
        finally:
            self.close()
        return None if values is None else _template_columns(self.first, values.reshape(self.n, 7))

    def close(self) -> None:
        """Reap the child (if still there) without using its output."""
        if self.pid is not None:
            pid, self.pid = self.pid, None
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _read_bytes(source) -> bytes:
    try:
        with open(source, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"detection results file not found: {os.fspath(source)}") from None
    except IsADirectoryError:
        raise ValueError(f"detection results file {os.fspath(source)} is a directory, "
                         "expected a COCO result json file") from None


def read_coco(gt_source, results_source):
    """``(read_ground_truth(gt_source), read_results(results_source, gt))``, the same
    arrays, faster for a large result file: its numbers are parsed partly in a forked
    child while this process reads the ground truth (see ``_PendingResults``)."""
    pending = None
    if isinstance(results_source, (str, os.PathLike)):
        raw = _read_bytes(results_source)
        layout = _template_layout(raw) if _parallel_ok(len(raw)) and raw.lstrip()[:1] == b"[" else None
        if layout is not None:
            pending = _PendingResults(raw, *layout)
    try:
        gt = read_ground_truth(gt_source)
        fast = pending.finish() if pending is not None else None
    finally:
        if pending is not None:
            pending.close()
    if fast is not None:
        return gt, _checked(results_source, gt, *fast)
    return gt, read_results(results_source, gt)


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
        raw = _read_bytes(source)
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
