"""MeanAveragePrecision(iou_type="segm"): pycocotools' COCOeval "segm" on the shared COCO
sample (published numbers and the full arrays) and on random COCO sets with polygons,
compressed and uncompressed (crowd) RLE ground truth, empty images and more than 100
detections per image; tensors and RLE dicts as ``update`` inputs; errors."""
from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tritonvision import masks
from tritonvision.metrics import MeanAveragePrecision

pycocotools = pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

SHARED_COCO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco-val2014-100"
GT_JSON = SHARED_COCO / "instances_val2014_100.json"
SEGM_JSON = SHARED_COCO / "instances_val2014_fakesegm100_results.json"
PUBLISHED_SEGM = [  # pycocotools' COCOeval(..., "segm").summarize() on this sample (../shared/data/README.md)
    0.3195452758576433, 0.5622883972521636, 0.29892653412086784, 0.3873740315997838, 0.31018272403369485,
    0.3269339071005138, 0.2682297225711534, 0.41544868114906375, 0.4168394992198818, 0.4694498622754236,
    0.37675922666197265, 0.3814715099715099]
needs_shared = pytest.mark.skipif(not GT_JSON.exists(), reason=f"shared COCO sample not found at {SHARED_COCO}")


def run_pycocotools(dataset: dict, results: list) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(dataset)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def assert_same_as_pycocotools(ours: dict, ev: COCOeval) -> None:
    np.testing.assert_array_equal(ours["precision"], ev.eval["precision"])
    np.testing.assert_array_equal(ours["recall"], ev.eval["recall"])
    np.testing.assert_array_equal(ours["scores"], ev.eval["scores"])
    assert np.abs(np.asarray(ours["stats"]) - ev.stats).max() <= 1e-12, (ours["stats"], ev.stats)


def _rng() -> np.random.Generator:
    return np.random.default_rng(int(torch.randint(0, 2 ** 31, ()).item()))


def _blob(rng, h: int, w: int, near: np.ndarray | None = None) -> np.ndarray:
    """A bool [h, w] mask: an ellipse (anywhere, or shifted from ``near``'s centre), some
    with a hole or a second part."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    if near is not None and near.any():
        cy, cx = np.argwhere(near).mean(axis=0) + rng.normal(0, 2, 2)
    else:
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(1, h / 2), rng.uniform(1, w / 2)
    m = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
    if rng.uniform() < 0.2:
        m &= ((ys - cy) / (ry / 3)) ** 2 + ((xs - cx) / (rx / 3)) ** 2 > 1
    if rng.uniform() < 0.2:
        m[int(rng.integers(h)):, int(rng.integers(w)):] = True
    return m


def _run_lengths(m: np.ndarray) -> list[int]:
    """COCO's uncompressed counts (as it stores crowd regions) of a bool [h, w] mask."""
    flat = m.T.ravel().astype(np.int8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    return ([0] if flat[0] else []) + np.diff(bounds).tolist()


def _star(rng, h: int, w: int) -> list[float]:
    k = int(rng.integers(3, 12))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1, max(h, w) / 2)
    xy = np.stack([cx + r * rng.uniform(0.3, 1, k) * np.cos(angles), cy + r * rng.uniform(0.3, 1, k) * np.sin(angles)], 1)
    return np.round(xy, int(rng.integers(0, 3))).ravel().tolist()


def random_segm_case(rng, n_images: int, n_classes: int, max_gt: int, max_det: int):
    """A COCO dataset (polygon, compressed-RLE and crowd uncompressed-RLE ground truth; some
    images empty) and segm results (compressed RLE with str counts, as read from JSON)."""
    images, anns, results = [], [], []
    for image_id in range(1, n_images + 1):
        h, w = (int(v) for v in rng.integers(8, 40, 2))
        images.append({"id": image_id, "height": h, "width": w})
        gt_masks = []
        for _ in range(int(rng.integers(0, max_gt + 1))):
            kind = rng.uniform()
            crowd = kind < 0.15
            if crowd or kind < 0.4:
                m = _blob(rng, h, w)
                rle = masks.encode(m)
                seg = {"size": [h, w], "counts": _run_lengths(m) if crowd else rle["counts"].decode()}
            else:
                seg = [_star(rng, h, w) for _ in range(int(rng.integers(1, 3)))]
                m = masks.decode(masks.from_polygons(seg, h, w)).astype(bool)
            gt_masks.append(m)
            area = float(m.sum()) if rng.uniform() < 0.7 else float(rng.choice([32 ** 2, 96 ** 2, 5.0]))
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(rng.integers(1, n_classes + 1)),
                         "segmentation": seg, "area": area, "iscrowd": int(crowd),
                         "bbox": [0, 0, 1, 1]})
        for _ in range(int(rng.integers(0, max_det + 1))):
            near = gt_masks[int(rng.integers(len(gt_masks)))] if gt_masks and rng.uniform() < 0.7 else None
            rle = masks.encode(_blob(rng, h, w, near))
            results.append({"image_id": image_id, "category_id": int(rng.integers(1, n_classes + 1)),
                            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                            "score": float(np.round(rng.uniform(), int(rng.integers(1, 4))))})
    categories = [{"id": c, "name": f"c{c}"} for c in range(1, n_classes + 1)]
    return {"images": images, "annotations": anns, "categories": categories}, results


# ----------------------------------------------------------------------------- pycocotools
@needs_shared
def test_val2014_sample_segm_matches_published_numbers_and_pycocotools():
    ours = MeanAveragePrecision.from_coco_json(GT_JSON, SEGM_JSON, iou_type="segm").compute()
    for got, published in zip(ours["stats"], PUBLISHED_SEGM, strict=True):
        assert abs(float(got) - published) <= 1e-9
    ev = run_pycocotools(json.loads(GT_JSON.read_text()), json.loads(SEGM_JSON.read_text()))
    assert_same_as_pycocotools(ours, ev)


@pytest.mark.parametrize("n_images, n_classes, max_gt, max_det", [
    (6, 2, 4, 12), (4, 3, 8, 30), (3, 1, 2, 130), (5, 2, 0, 5)])
def test_random_segm_sets_match_pycocotools(n_images, n_classes, max_gt, max_det):
    rng = _rng()
    for _ in range(3):
        dataset, results = random_segm_case(rng, n_images, n_classes, max_gt, max_det)
        if not results:
            continue                            # pycocotools' loadRes cannot take an empty list
        ours = MeanAveragePrecision.from_coco_json(dataset, results, iou_type="segm").compute()
        assert_same_as_pycocotools(ours, run_pycocotools(dataset, results))


def test_result_bbox_sets_the_area_as_pycocotools_load_res():
    """When the first result has a bbox, pycocotools takes every result's area from it."""
    rng = _rng()
    dataset, results = random_segm_case(rng, 4, 1, 6, 40)
    for r in results:
        r["bbox"] = [0.0, 0.0, float(rng.choice([3, 40, 120])), float(rng.choice([3, 40, 120]))]
    ours = MeanAveragePrecision.from_coco_json(dataset, results, iou_type="segm").compute()
    assert_same_as_pycocotools(ours, run_pycocotools(dataset, results))


# ----------------------------------------------------------------------------- update()
def _as_update_inputs(dataset: dict, results: list, as_tensors: bool):
    preds, targets = [], []
    for image in dataset["images"]:
        h, w = image["height"], image["width"]
        anns = [a for a in dataset["annotations"] if a["image_id"] == image["id"]]
        dets = [r for r in results if r["image_id"] == image["id"]]
        gt_rles = [masks.from_segmentation(a["segmentation"], h, w) for a in anns]
        dt_rles = [r["segmentation"] for r in dets]
        if as_tensors:
            gt_m = torch.from_numpy(masks.decode(gt_rles).astype(bool)) if gt_rles else torch.zeros(0, h, w, dtype=torch.bool)
            dt_m = torch.from_numpy(masks.decode(dt_rles)) if dt_rles else torch.zeros(0, h, w, dtype=torch.uint8)
        else:
            gt_m, dt_m = gt_rles, dt_rles
        preds.append({"masks": dt_m, "scores": torch.tensor([r["score"] for r in dets], dtype=torch.float64),
                      "labels": torch.tensor([r["category_id"] for r in dets], dtype=torch.int64)})
        targets.append({"masks": gt_m, "labels": torch.tensor([a["category_id"] for a in anns], dtype=torch.int64),
                        "iscrowd": torch.tensor([a["iscrowd"] for a in anns]),
                        "area": torch.tensor([a["area"] for a in anns], dtype=torch.float64)})
    return preds, targets


def test_update_with_tensors_or_rles_equals_pycocotools():
    rng = _rng()
    dataset, results = random_segm_case(rng, 5, 1, 5, 20)
    while not results:
        dataset, results = random_segm_case(rng, 5, 1, 5, 20)
    expected = run_pycocotools(dataset, results)
    for as_tensors in (True, False):
        metric = MeanAveragePrecision(iou_type="segm")
        preds, targets = _as_update_inputs(dataset, results, as_tensors)
        metric.update(preds[:2], targets[:2])
        metric.update(preds[2:], targets[2:])
        assert_same_as_pycocotools(metric.compute(), expected)


def test_segm_metrics_merge():
    rng = _rng()
    dataset, results = random_segm_case(rng, 4, 2, 4, 10)
    preds, targets = _as_update_inputs(dataset, results, as_tensors=False)
    whole, first, second = (MeanAveragePrecision(iou_type="segm") for _ in range(3))
    whole.update(preds, targets)
    first.update(preds[:2], targets[:2])
    second.update(preds[2:], targets[2:])
    np.testing.assert_array_equal(first.merge(second).compute()["precision"], whole.compute()["precision"])


# ----------------------------------------------------------------------------- errors
def _one_image(h=4, w=5):
    m = torch.zeros(1, h, w, dtype=torch.bool)
    m[0, 1:3, 1:4] = True
    return ({"masks": m, "scores": torch.tensor([0.5]), "labels": torch.tensor([1])},
            {"masks": m.clone(), "labels": torch.tensor([1])})


@pytest.mark.parametrize("change, error, message", [
    (lambda p, t: p.pop("masks"), ValueError, r"preds 0 has no 'masks' entry"),
    (lambda p, t: t.update(masks=t["masks"].float()), TypeError, r"targets\['masks'\] of image 0 must be a bool"),
    (lambda p, t: p.update(masks=torch.zeros(2, 4, 5, dtype=torch.bool)), ValueError, r"preds\['labels'\] of image 0 has 1 entries but there are 2 masks"),
    (lambda p, t: p.update(masks=[{"size": [4, 5], "counts": "1#"}]), ValueError,
     r"preds\['masks'\] of image 0: .*character '#'"),
    (lambda p, t: p.update(masks=torch.zeros(1, 6, 5, dtype=torch.bool)), ValueError, r"masks of image 0 differ in size"),
    (lambda p, t: t.update(masks=t["masks"].to(torch.uint8) * 3), ValueError, r"values above 1"),
])
def test_update_rejects_bad_masks_naming_the_image_and_key(change, error, message):
    pred, target = _one_image()
    change(pred, target)
    with pytest.raises(error, match=message):
        MeanAveragePrecision(iou_type="segm").update([pred], [target])


def test_segm_needs_the_coco_style():
    with pytest.raises(ValueError, match="COCO style only"):
        MeanAveragePrecision(iou_type="segm", style="voc")


def _tiny_files():
    rle = masks.encode(np.eye(4, 5, dtype=bool))
    dataset = {"images": [{"id": 1, "height": 4, "width": 5}], "categories": [{"id": 1}],
               "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "area": 4.0, "iscrowd": 0,
                                "segmentation": [[0, 0, 3, 0, 3, 3]]}]}
    result = {"image_id": 1, "category_id": 1, "score": 0.9,
              "segmentation": {"size": [4, 5], "counts": rle["counts"].decode()}}
    return dataset, result


@pytest.mark.parametrize("gt_change, result_change, message", [
    (lambda a: a.update(segmentation=[]), None, r"annotation 1 \(image 1\): 'segmentation' must be a list of polygons"),
    (lambda a: a.update(segmentation=[[0, 0, 3, 3]]), None, r"reads a first entry of 4 numbers as boxes"),
    (lambda a: a.pop("segmentation"), None, r"annotation 1 \(image 1\): 'segmentation' must be polygons"),
    (lambda a: a.update(segmentation={"size": [4, 6], "counts": [24]}), None, r"RLE 'size' \[4, 6\] is not the image"),
    (lambda a: a.update(segmentation=[[0, 0, 3, 0, 3, "x"]]), None, r"annotation 1 \(image 1\)"),
    (None, lambda r: r.update(segmentation=[[0, 0, 3, 0, 3, 3]]), r"result 0 \(image 1\): 'segmentation' must be a compressed RLE"),
    (None, lambda r: r["segmentation"].update(counts="1#"), r"result 0 \(image 1\): .*character '#'"),
    (None, lambda r: r["segmentation"].update(counts="5"), r"result 0 \(image 1\): run lengths sum to 5, expected"),
    (None, lambda r: r["segmentation"].update(size=[5, 4]), r"result 0 \(image 1\): its RLE 'size' \[5, 4\]"),
    (None, lambda r: r["segmentation"].update(size=[4.0, 5]), r"result 0 \(image 1\): 'segmentation' must be"),
    (lambda a: a.update(segmentation=[[0, 0, 3, 0, 3, True]]), None, r"annotation 1 \(image 1\): polygon "),
    (lambda a: a.update(segmentation={"size": [4, 5], "counts": "1#"}), None,
     r"annotation 1 \(image 1\): 'segmentation': compressed counts has character '#'"),
])
def test_from_coco_json_names_the_annotation_or_result_and_image(gt_change, result_change, message):
    dataset, result = _tiny_files()
    if gt_change:
        gt_change(dataset["annotations"][0])
    if result_change:
        result_change(result)
    with pytest.raises(ValueError, match=message):
        MeanAveragePrecision.from_coco_json(dataset, [result], iou_type="segm")


def test_cli_eval_detections_segm(tmp_path, capsys):
    from tritonvision.cli import main
    dataset, result = _tiny_files()
    (tmp_path / "gt.json").write_text(json.dumps(dataset))
    (tmp_path / "dt.json").write_text(json.dumps([result]))
    assert main(["eval-detections", "--gt", str(tmp_path / "gt.json"), "--results", str(tmp_path / "dt.json"),
                 "--iou-type", "segm", "--no-progress"]) == 0
    expected = run_pycocotools(dataset, [result]).stats
    lines = [line for line in capsys.readouterr().out.splitlines() if "@[ IoU=" in line]
    assert [float(line.rsplit("=", 1)[1]) for line in lines] == [round(x, 3) for x in expected]
    assert main(["eval-detections", "--gt", str(tmp_path / "gt.json"), "--results", str(tmp_path / "dt.json"),
                 "--iou-type", "segm", "--style", "voc"]) != 0
