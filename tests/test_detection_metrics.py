"""MeanAveragePrecision: COCO style against pycocotools (bit for bit), VOC styles against a
devkit-style reference written here, the lecture's worked example, the shared COCO
val2014 sample against its published numbers, merge/sync, PR-curve PNGs and the CLI."""
from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritonvision.metrics import MeanAveragePrecision, plot_pr_curves

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

SHARED_COCO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco-val2014-100"
GT_JSON = SHARED_COCO / "instances_val2014_100.json"
RESULTS_JSON = SHARED_COCO / "instances_val2014_fakebbox100_results.json"
# pycocotools' bbox demo on this sample prints these (rounded to 3 decimals)
PUBLISHED_BBOX = [  # pycocotools' COCOeval.summarize() on this sample (../shared/data/README.md)
    0.5045806987249628, 0.6969727247299577, 0.5729816669904824, 0.5856257209410443, 0.5193996948036719,
    0.5013978986347466, 0.38681277964578054, 0.5936795762842003, 0.595352982877607, 0.6398109626113442,
    0.5664205978994309, 0.5642905982905982]
needs_shared = pytest.mark.skipif(not GT_JSON.exists(), reason=f"shared COCO sample not found at {SHARED_COCO}")


# ----------------------------------------------------------------------------- helpers
def run_pycocotools(dataset: dict, results: list, iou_thresholds=None, max_dets=None) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(dataset))
        gt.createIndex()
        dt = gt.loadRes(json.loads(json.dumps(results))) if results else COCO()
        if not results:  # pycocotools' loadRes cannot take an empty list
            dt.dataset = {"images": dataset["images"], "categories": dataset["categories"], "annotations": []}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        if iou_thresholds is not None:
            ev.params.iouThrs = np.asarray(iou_thresholds)
        if max_dets is not None:
            ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def random_case(seed: int, n_images: int, n_classes: int, max_gt: int, max_det: int, grid: bool,
                crowd_p: float, tie_scores: bool):
    """Per-image preds/targets (xyxy tensors) plus the same data as a COCO dataset/results."""
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(n_images):
        m = int(rng.integers(0, max_gt + 1))
        n = int(rng.integers(0, max_det + 1))
        if grid:  # integer boxes: exact IoU ties, IoUs exactly at thresholds, areas at 32^2 / 96^2
            xy = rng.integers(0, 40, size=(m, 2))
            wh = rng.choice([1, 4, 8, 16, 31, 32, 33, 64, 96, 97, 120], size=(m, 2))
        else:
            xy = rng.uniform(0, 100, size=(m, 2))
            wh = np.exp(rng.uniform(0, 5, size=(m, 2)))
        gt = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        if grid and m > 1:  # neighbours 4 apart: a detection halfway has equal IoU with both
            twin = rng.uniform(size=m) < 0.3
            twin[0] = False
            gt[twin] = gt[np.flatnonzero(twin) - 1] + np.array([4, 0, 4, 0], dtype=np.float32)
        # detections: shifted copies of ground truths (various overlaps) and random boxes
        src = rng.integers(0, max(m, 1), size=n)
        shift = rng.integers(-3, 4, size=(n, 4)) if grid else rng.normal(0, 3, size=(n, 4))
        det = (gt[src] + shift) if m else np.zeros((n, 4))
        rand = rng.uniform(size=n) < 0.3
        rxy = rng.integers(0, 80, size=(n, 2)) if grid else rng.uniform(0, 100, size=(n, 2))
        det[rand] = np.concatenate([rxy, rxy + rng.integers(1, 60, size=(n, 2))], axis=1)[rand]
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 1)
        det = det.astype(np.float32)
        scores = (rng.integers(0, 5, size=n) / 4 if tie_scores else rng.uniform(size=n)).astype(np.float32)
        gt_labels = rng.integers(0, n_classes, size=m)
        det_labels = np.where(rng.uniform(size=n) < 0.8, gt_labels[src] if m else 0,
                              rng.integers(0, n_classes + 1, size=n))  # class n_classes: no gt ever
        crowd = rng.uniform(size=m) < crowd_p
        area = np.where(rng.uniform(size=m) < 0.5, (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]),
                        rng.choice([100.0, 1024.0, 5000.0, 9216.0, 20000.0], size=m))
        preds.append({"boxes": torch.from_numpy(det), "scores": torch.from_numpy(scores),
                      "labels": torch.from_numpy(det_labels)})
        targets.append({"boxes": torch.from_numpy(gt), "labels": torch.from_numpy(gt_labels),
                        "iscrowd": torch.from_numpy(crowd), "area": torch.from_numpy(area)})
    return preds, targets


def to_coco(preds, targets, categories) -> tuple[dict, list]:
    """The same images as COCO json objects (xywh; float64 of the float32 tensors)."""
    dataset = {"images": [{"id": i + 1} for i in range(len(targets))],
               "categories": [{"id": int(c)} for c in categories], "annotations": []}
    results = []
    for i, (pred, target) in enumerate(zip(preds, targets)):
        for box, label, crowd, area in zip(target["boxes"].double().tolist(), target["labels"].tolist(),
                                           target["iscrowd"].tolist(), target["area"].double().tolist()):
            dataset["annotations"].append({"id": len(dataset["annotations"]) + 1, "image_id": i + 1,
                                           "category_id": int(label), "iscrowd": int(crowd), "area": area,
                                           "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
        for box, label, score in zip(pred["boxes"].double().tolist(), pred["labels"].tolist(),
                                     pred["scores"].double().tolist()):
            results.append({"image_id": i + 1, "category_id": int(label), "score": score,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    return dataset, results


def assert_same_as_pycocotools(ours: dict, ev: COCOeval) -> None:
    np.testing.assert_array_equal(ours["precision"], ev.eval["precision"])
    np.testing.assert_array_equal(ours["recall"], ev.eval["recall"])
    np.testing.assert_array_equal(ours["scores"], ev.eval["scores"])
    assert np.abs(np.asarray(ours["stats"]) - ev.stats).max() <= 1e-12, (ours["stats"], ev.stats)


# ----------------------------------------------------------------------------- COCO vs pycocotools
@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), n_images=st.integers(1, 6), n_classes=st.integers(1, 4),
       max_gt=st.sampled_from([0, 1, 3, 8]), max_det=st.sampled_from([0, 2, 12, 130]),
       grid=st.booleans(), crowd_p=st.sampled_from([0.0, 0.2, 0.6]), tie_scores=st.booleans())
def test_coco_matches_pycocotools_on_random_cases(seed, n_images, n_classes, max_gt, max_det, grid,
                                                  crowd_p, tie_scores):
    preds, targets = random_case(seed, n_images, n_classes, max_gt, max_det, grid, crowd_p, tie_scores)
    metric = MeanAveragePrecision()
    half = len(preds) // 2
    metric.update(preds[:half], targets[:half])
    metric.update(preds[half:], targets[half:])
    ours = metric.compute()
    if ours["classes"].size == 0:
        assert ours["map"] == -1 and all(s == -1 for s in ours["stats"])
        return
    dataset, results = to_coco(preds, targets, ours["classes"])
    ev = run_pycocotools(dataset, results)
    assert_same_as_pycocotools(ours, ev)
    names = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large",
             "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]
    assert [ours[n] for n in names] == list(ours["stats"])


def test_coco_more_than_100_detections_per_image_and_equal_scores_match_pycocotools():
    preds, targets = random_case(int(torch.randint(0, 2 ** 31, ()).item()), n_images=3, n_classes=1,
                                 max_gt=8, max_det=260, grid=True, crowd_p=0.2, tie_scores=True)
    for pred in preds:  # make sure every image has more than 100 detections of one class
        pred["boxes"] = pred["boxes"].repeat(3, 1)[:250]
        pred["scores"] = pred["scores"].repeat(3)[:250]
        pred["labels"] = torch.zeros(pred["boxes"].shape[0], dtype=torch.int64)
    metric = MeanAveragePrecision()
    metric.update(preds, targets)
    ours = metric.compute()
    assert_same_as_pycocotools(ours, run_pycocotools(*to_coco(preds, targets, ours["classes"])))


def test_coco_equal_iou_goes_to_the_later_ground_truth_as_pycocotools():
    # det 1 overlaps A and B equally (IoU 2/3); taking B (the later one) leaves A for det 2
    gt = torch.tensor([[0, 0, 10, 10], [4, 0, 14, 10]], dtype=torch.float32)
    det = torch.tensor([[2, 0, 12, 10], [0, 0, 10, 10]], dtype=torch.float32)
    preds = [{"boxes": det, "scores": torch.tensor([0.9, 0.8]), "labels": torch.zeros(2, dtype=torch.int64)}]
    targets = [{"boxes": gt, "labels": torch.zeros(2, dtype=torch.int64), "iscrowd": torch.zeros(2),
                "area": torch.tensor([100.0, 100.0])}]
    metric = MeanAveragePrecision()
    metric.update(preds, targets)
    ours = metric.compute()
    assert ours["map_50"] == 1.0
    assert_same_as_pycocotools(ours, run_pycocotools(*to_coco(preds, targets, ours["classes"])))


@pytest.mark.parametrize("max_dets", [[1, 10, 100], [1, 10, 1000], [5, 20, 50]])
def test_coco_custom_iou_thresholds_and_max_dets_match_pycocotools(max_dets):
    """pycocotools' first summary line asks for maxDets == 100 literally: -1 without it."""
    preds, targets = random_case(int(torch.randint(0, 2 ** 31, ()).item()), 5, 3, 6, 40, False, 0.1, False)
    thresholds = [0.3, 0.5, 0.75, 0.9]
    metric = MeanAveragePrecision(iou_thresholds=thresholds, max_detection_thresholds=max_dets)
    metric.update(preds, targets)
    ours = metric.compute()
    ev = run_pycocotools(*to_coco(preds, targets, ours["classes"]), iou_thresholds=thresholds, max_dets=max_dets)
    assert_same_as_pycocotools(ours, ev)


def test_coco_ground_truth_with_annotation_id_zero_behaves_as_pycocotools(tmp_path):
    # pycocotools stores the matched gt id and tests it for truth: a match to id 0 is no match
    dataset = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 3}],
               "annotations": [{"id": 0, "image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10], "area": 100,
                                "iscrowd": 0},
                               {"id": 5, "image_id": 2, "category_id": 3, "bbox": [5, 5, 20, 20], "area": 400,
                                "iscrowd": 0}]}
    results = [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.9},
               {"image_id": 1, "category_id": 3, "bbox": [1, 0, 10, 10], "score": 0.8},
               {"image_id": 2, "category_id": 3, "bbox": [5, 5, 20, 19], "score": 0.7}]
    ours = MeanAveragePrecision.from_coco_json(dataset, results).compute()
    assert_same_as_pycocotools(ours, run_pycocotools(dataset, results))


def test_coco_json_categories_and_images_follow_the_annotation_file():
    # results of unknown categories are dropped, images without detections still count,
    # a category without ground truth is -1 per class and left out of the mean
    dataset = {"images": [{"id": 7}, {"id": 3}, {"id": 11}],
               "categories": [{"id": 2, "name": "cat"}, {"id": 9, "name": "dog"}, {"id": 4, "name": "none"}],
               "annotations": [
                   {"id": 1, "image_id": 7, "category_id": 2, "bbox": [0, 0, 30, 30], "area": 900, "iscrowd": 0},
                   {"id": 2, "image_id": 3, "category_id": 9, "bbox": [10, 10, 50, 40], "area": 2000, "iscrowd": 0},
                   {"id": 3, "image_id": 11, "category_id": 9, "bbox": [0, 0, 200, 200], "area": 40000,
                    "iscrowd": 1},
                   {"id": 4, "image_id": 11, "category_id": 9, "bbox": [10, 10, 100, 100], "area": 10000,
                    "iscrowd": 0}]}
    results = [{"image_id": 7, "category_id": 2, "bbox": [1, 1, 30, 30], "score": 0.5},
               {"image_id": 7, "category_id": 200, "bbox": [1, 1, 30, 30], "score": 0.9},
               {"image_id": 11, "category_id": 9, "bbox": [0, 0, 190, 190], "score": 0.95},
               {"image_id": 11, "category_id": 9, "bbox": [12, 10, 100, 100], "score": 0.6},
               {"image_id": 11, "category_id": 4, "bbox": [12, 10, 100, 100], "score": 0.6}]
    ours = MeanAveragePrecision.from_coco_json(dataset, results, class_metrics=True).compute()
    assert_same_as_pycocotools(ours, run_pycocotools(dataset, results))
    assert ours["classes"].tolist() == [2, 4, 9]
    assert ours["class_names"] == ["cat", "none", "dog"]
    assert ours["map_per_class"][1] == -1 and ours["map_per_class"][0] > -1


def test_coco_results_on_unknown_images_are_rejected():
    dataset = {"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": []}
    with pytest.raises(ValueError, match="not in the ground truth"):
        MeanAveragePrecision.from_coco_json(dataset, [{"image_id": 2, "category_id": 1,
                                                       "bbox": [0, 0, 1, 1], "score": 1.0}])


@needs_shared
def test_coco_val2014_sample_matches_published_numbers_and_pycocotools():
    ours = MeanAveragePrecision.from_coco_json(GT_JSON, RESULTS_JSON).compute()
    for got, published in zip(ours["stats"], PUBLISHED_BBOX, strict=True):
        assert abs(float(got) - published) <= 1e-9
    ev = run_pycocotools(json.loads(GT_JSON.read_text()), json.loads(RESULTS_JSON.read_text()))
    assert_same_as_pycocotools(ours, ev)


def test_unknown_iou_type_is_rejected():
    with pytest.raises(ValueError, match="iou_type must be one of"):
        MeanAveragePrecision.from_coco_json({"images": [], "annotations": []}, [], iou_type="keypoints")


# ----------------------------------------------------------------------------- the lecture's example
def lecture_example():
    """Three dog boxes; detections in score order are TP, TP, FP, FP, TP (lecture slides)."""
    gt = torch.tensor([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], dtype=torch.float32)
    det = torch.tensor([[0, 0, 10, 10], [20, 0, 30, 10], [60, 60, 70, 70], [80, 80, 90, 90], [40, 0, 50, 10]],
                       dtype=torch.float32)
    preds = [{"boxes": det, "scores": torch.tensor([.9, .8, .7, .6, .5]), "labels": torch.zeros(5, dtype=torch.int64)}]
    targets = [{"boxes": gt, "labels": torch.zeros(3, dtype=torch.int64)}]
    return preds, targets


def test_lecture_example_gives_the_slides_precision_recall_points_and_ap():
    # PR points (1/3, 1), (2/3, 1), (2/3, 2/3), (2/3, 1/2), (1, 3/5)
    preds, targets = lecture_example()
    voc = MeanAveragePrecision(style="voc")
    voc.update(preds, targets)
    result = voc.compute()
    rec, prec = result["pr_curves"][0]
    np.testing.assert_allclose(rec, [1 / 3, 2 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(prec, [1, 1, 2 / 3, 1 / 2, 3 / 5])
    assert result["map"] == pytest.approx(1 / 3 + 1 / 3 + 1 / 3 * 0.6)   # envelope 1, 1, 0.6
    voc07 = MeanAveragePrecision(style="voc07")
    voc07.update(preds, targets)
    assert voc07.compute()["map"] == pytest.approx((7 * 1.0 + 4 * 0.6) / 11)  # recall 0..0.6 -> 1, 0.7..1 -> 0.6
    coco = MeanAveragePrecision()
    coco.update(preds, targets)
    # 101 points: recall 0.00..0.66 -> 1 (67 points), 0.67..1.00 -> 0.6 (34 points)
    assert coco.compute()["map_50"] == pytest.approx((67 + 34 * 0.6) / 101)


# ----------------------------------------------------------------------------- VOC vs a devkit-style reference
def voc_reference(preds, targets, iou_threshold, use_07):
    """The VOC devkit's loop (voc_eval.py), written plainly, without the +1 pixel convention."""
    classes = sorted({int(c) for t in targets for c in t["labels"]} | {int(c) for p in preds for c in p["labels"]})
    aps = {}
    for c in classes:
        gts = {}
        npos = 0
        for i, t in enumerate(targets):
            keep = [j for j, l in enumerate(t["labels"].tolist()) if l == c]
            boxes = [t["boxes"][j].double().tolist() for j in keep]
            difficult = [bool(t.get("difficult", torch.zeros(len(t["labels"])))[j]) for j in keep]
            gts[i] = {"boxes": boxes, "difficult": difficult, "det": [False] * len(keep)}
            npos += sum(not d for d in difficult)
        dets = [(float(s), i, p["boxes"][j].double().tolist()) for i, p in enumerate(preds)
                for j, (s, l) in enumerate(zip(p["scores"].tolist(), p["labels"].tolist())) if l == c]
        dets.sort(key=lambda d: -d[0])  # stable, as ours
        tp, fp = [], []
        for _, i, bb in dets:
            ovmax, jmax = -np.inf, -1
            for j, g in enumerate(gts[i]["boxes"]):
                iw = max(min(bb[2], g[2]) - max(bb[0], g[0]), 0.0)
                ih = max(min(bb[3], g[3]) - max(bb[1], g[1]), 0.0)
                inter = iw * ih
                union = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter
                ov = inter / union if union > 0 else 0.0
                if ov > ovmax:
                    ovmax, jmax = ov, j
            if ovmax > iou_threshold:
                if not gts[i]["difficult"][jmax]:
                    if not gts[i]["det"][jmax]:
                        tp.append(1.0), fp.append(0.0)
                        gts[i]["det"][jmax] = True
                    else:
                        tp.append(0.0), fp.append(1.0)
                else:
                    tp.append(0.0), fp.append(0.0)
            else:
                tp.append(0.0), fp.append(1.0)
        if npos == 0:
            aps[c] = -1.0
            continue
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if use_07:
            ap = sum((max(prec[rec >= t]) if (rec >= t).any() else 0.0) for t in np.arange(0.0, 1.1, 0.1)) / 11
        else:
            mrec = [0.0] + list(rec) + [1.0]
            mpre = [0.0] + list(prec) + [0.0]
            for k in range(len(mpre) - 2, -1, -1):
                mpre[k] = max(mpre[k], mpre[k + 1])
            ap = sum((mrec[k + 1] - mrec[k]) * mpre[k + 1] for k in range(len(mrec) - 1) if mrec[k + 1] != mrec[k])
        aps[c] = ap
    return aps


@pytest.mark.parametrize("style", ["voc", "voc07"])
@pytest.mark.parametrize("iou_threshold", [0.5, 0.3])
def test_voc_matches_devkit_reference_on_random_cases(style, iou_threshold):
    for _ in range(6):
        seed = int(torch.randint(0, 2 ** 31, ()).item())
        preds, targets = random_case(seed, n_images=5, n_classes=3, max_gt=6, max_det=25, grid=False,
                                     crowd_p=0.0, tie_scores=False)
        g = torch.Generator().manual_seed(seed)
        for t in targets:
            t["difficult"] = torch.rand(len(t["labels"]), generator=g) < 0.25
        metric = MeanAveragePrecision(style=style, iou_thresholds=[iou_threshold])
        metric.update(preds, targets)
        result = metric.compute()
        ref = voc_reference(preds, targets, iou_threshold, style == "voc07")
        assert result["classes"].tolist() == sorted(ref)
        np.testing.assert_allclose(result["map_per_class"], [ref[c] for c in sorted(ref)], rtol=0, atol=1e-12)
        defined = [v for v in ref.values() if v > -1]
        assert result["map"] == pytest.approx(np.mean(defined) if defined else -1, abs=1e-12)


def test_voc_difficult_ground_truths_are_neither_tp_nor_fp_and_claimed_gts_give_fp():
    gt = torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60]], dtype=torch.float32)
    det = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 9], [50, 50, 60, 60], [100, 100, 110, 110]], dtype=torch.float32)
    metric = MeanAveragePrecision(style="voc")
    metric.update([{"boxes": det, "scores": torch.tensor([.9, .8, .7, .6]), "labels": torch.zeros(4, dtype=torch.int64)}],
                  [{"boxes": gt, "labels": torch.zeros(2, dtype=torch.int64), "difficult": torch.tensor([False, True])}])
    rec, prec = metric.compute()["pr_curves"][0]
    # TP, FP (gt already claimed), nothing (difficult), FP
    np.testing.assert_allclose(rec, [1, 1, 1, 1])
    np.testing.assert_allclose(prec, [1, 1 / 2, 1 / 2, 1 / 3])


@pytest.mark.kernel
def test_voc_runs_through_the_box_overlap_op():
    # in kernel-test mode box_overlap runs the Triton kernel under the interpreter
    preds, targets = lecture_example()
    metric = MeanAveragePrecision(style="voc")
    metric.update(preds, targets)
    assert metric.compute()["map"] == pytest.approx(1 / 3 + 1 / 3 + 1 / 3 * 0.6)


# ----------------------------------------------------------------------------- state: merge, sync, reset
def test_merge_equals_one_metric_over_all_images():
    preds, targets = random_case(int(torch.randint(0, 2 ** 31, ()).item()), 6, 3, 5, 30, False, 0.2, True)
    whole = MeanAveragePrecision()
    whole.update(preds, targets)
    a, b = MeanAveragePrecision(), MeanAveragePrecision()
    a.update(preds[:2], targets[:2])
    b.update(preds[2:], targets[2:])
    merged = a.merge(b).compute()
    expected = whole.compute()
    np.testing.assert_array_equal(merged["precision"], expected["precision"])
    np.testing.assert_array_equal(merged["stats"], expected["stats"])
    with pytest.raises(ValueError, match="same style"):
        a.merge(MeanAveragePrecision(style="voc"))


def _two_fake_ranks(monkeypatch, other: MeanAveragePrecision) -> None:
    """torch.distributed 'initialised' with two ranks, this one rank 0 and ``other`` rank 1."""
    import torch.distributed as dist
    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda *a: 2)

    def all_gather_object(out, obj, group=None):
        out[0], out[1] = obj, other._local_state()
    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)


def test_compute_gathers_every_rank_in_rank_order_and_keeps_the_local_state(monkeypatch):
    preds, targets = random_case(int(torch.randint(0, 2 ** 31, ()).item()), 4, 2, 5, 20, False, 0.0, False)
    rank0, rank1 = MeanAveragePrecision(), MeanAveragePrecision()
    rank0.update(preds[:3], targets[:3])
    rank1.update(preds[3:], targets[3:])
    local = rank0.compute()                                   # not distributed: this rank's images
    assert rank0.sync() is rank0 and rank0.num_images == 3   # not initialised: a no-op
    whole = MeanAveragePrecision()
    whole.update(preds, targets)
    expected = whole.compute()
    _two_fake_ranks(monkeypatch, rank1)
    np.testing.assert_array_equal(rank0.compute()["precision"], expected["precision"])
    assert rank0.num_images == 3, "compute() must not change the local state"
    opted_out = MeanAveragePrecision(sync_on_compute=False)  # torchmetrics' opt-out
    opted_out.update(preds[:3], targets[:3])
    np.testing.assert_array_equal(opted_out.compute()["precision"], local["precision"])
    assert rank0.sync() is rank0 and rank0.num_images == 4   # sync() keeps the global state
    np.testing.assert_array_equal(rank0._local_state()["det_xywh"], whole._local_state()["det_xywh"])


@pytest.mark.parametrize("box_format", ["xywh", "cxcywh"])
def test_box_formats_give_the_same_result_as_xyxy(box_format):
    preds, targets = random_case(int(torch.randint(0, 2 ** 31, ()).item()), 3, 2, 5, 20, False, 0.0, False)

    def convert(boxes):
        x1, y1, x2, y2 = boxes.unbind(-1)
        if box_format == "xywh":
            return torch.stack([x1, y1, x2 - x1, y2 - y1], -1)
        return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)
    xyxy, other = MeanAveragePrecision(class_metrics=True), MeanAveragePrecision(box_format=box_format,
                                                                                 class_metrics=True)
    xyxy.update(preds, targets)
    other.update([{**p, "boxes": convert(p["boxes"])} for p in preds],
                 [{**t, "boxes": convert(t["boxes"])} for t in targets])
    a, b = xyxy.compute(), other.compute()
    np.testing.assert_allclose(a["stats"], b["stats"], atol=1e-12)
    np.testing.assert_allclose(a["map_per_class"], b["map_per_class"], atol=1e-12)


def test_torchmetrics_keywords_and_module_behaviour():
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=False)
    assert isinstance(metric, torch.nn.Module) and metric.to("cpu") is metric
    preds, targets = lecture_example()
    metric(preds, targets)                                  # forward = update
    result = metric.compute()
    assert result["map_per_class"].tolist() == [-1.0] and result["mar_100_per_class"].tolist() == [-1.0]
    for bad in (dict(box_format="yxyx"), dict(iou_type="keypoints")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MeanAveragePrecision(**bad)


def test_reset_and_empty_metric():
    metric = MeanAveragePrecision()
    preds, targets = lecture_example()
    metric.update(preds, targets)
    metric.reset()
    result = metric.compute()
    assert result["map"] == -1 and result["classes"].size == 0
    metric.update([{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}],
                  [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}])
    assert metric.compute()["map"] == -1


def test_update_rejects_bad_inputs_with_clear_errors():
    metric = MeanAveragePrecision()
    good_pred = {"boxes": torch.zeros(1, 4), "scores": torch.ones(1), "labels": torch.zeros(1, dtype=torch.int64)}
    good_target = {"boxes": torch.zeros(1, 4), "labels": torch.zeros(1, dtype=torch.int64)}
    with pytest.raises(ValueError, match="1 predictions but 2 targets"):
        metric.update([good_pred], [good_target, good_target])
    with pytest.raises(ValueError, match=r"shape \[N, 4\]"):
        metric.update([{**good_pred, "boxes": torch.zeros(1, 5)}], [good_target])
    with pytest.raises(ValueError, match="'scores'"):
        metric.update([{**good_pred, "scores": torch.ones(2)}], [good_target])
    with pytest.raises(ValueError, match="non-finite"):
        metric.update([{**good_pred, "boxes": torch.tensor([[0.0, 0.0, float("nan"), 1.0]])}], [good_target])
    with pytest.raises(TypeError, match="lists of dicts"):
        metric.update(good_pred, good_target)
    with pytest.raises(ValueError, match="style"):
        MeanAveragePrecision(style="yolo")
    with pytest.raises(ValueError, match="one IoU threshold"):
        MeanAveragePrecision(style="voc", iou_thresholds=[0.5, 0.7])
    assert metric.num_images == 0


# ----------------------------------------------------------------------------- plots and the CLI
@pytest.mark.parametrize("style", ["coco", "voc", "voc07"])
def test_plot_pr_curves_writes_a_valid_png(tmp_path, style):
    from PIL import Image
    preds, targets = random_case(int(torch.randint(0, 2 ** 31, ()).item()), 4, 3, 5, 20, False, 0.0, False)
    preds.append({"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)})
    targets.append({"boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]]), "labels": torch.tensor([99]),
                    "iscrowd": torch.zeros(1), "area": torch.tensor([25.0])})  # ground truth, no detection
    metric = MeanAveragePrecision(style=style)
    metric.update(preds, targets)
    path = plot_pr_curves(metric, tmp_path / f"{style}.png")
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
        assert image.size[0] > 100 and image.size[1] > 100


@needs_shared
def test_cli_eval_detections_prints_the_published_table(tmp_path, capsys):
    from tritonvision.cli import main
    plot = tmp_path / "pr.png"
    assert main(["eval-detections", "--gt", str(GT_JSON), "--results", str(RESULTS_JSON),
                 "--plot", str(plot), "--no-progress"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "@[ IoU=" in line]
    assert lines[0] == " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505"
    assert lines[6] == " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.387"
    assert [float(line.rsplit("=", 1)[1]) for line in lines] == [round(x, 3) for x in PUBLISHED_BBOX]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["eval-detections", "--gt", str(GT_JSON), "--results", str(RESULTS_JSON), "--style", "voc07"]) == 0
    out = capsys.readouterr().out
    assert "VOC2007 11-point AP" in out and "mAP" in out


def test_cli_eval_detections_names_missing_and_malformed_files(tmp_path, capsys):
    from tritonvision.cli import main
    gt = tmp_path / "instances.json"
    gt.write_text(json.dumps({"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": []}))
    missing = tmp_path / "nope.json"
    assert main(["eval-detections", "--gt", str(gt), "--results", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('[{"image_id": 1,')
    assert main(["eval-detections", "--gt", str(gt), "--results", str(broken)]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "not valid JSON" in err
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([{"image_id": 1, "category_id": 1, "score": 0.5}]))
    assert main(["eval-detections", "--gt", str(gt), "--results", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert str(wrong) in err and "'bbox'" in err


# ----------------------------------------------------------------------------- the result-file reader
def test_result_file_gives_json_doubles_and_the_same_evaluation_as_the_list(tmp_path):
    from tritonvision.metrics import coco_json
    rng = np.random.default_rng(int(torch.randint(0, 2 ** 31, ()).item()))
    records = [{"score": float(rng.uniform()) * 10.0 ** int(rng.integers(-6, 2)), "bbox": [float(v) for v in
               rng.uniform(-5, 500, 4)], "category_id": int(rng.integers(1, 5)), "image_id": int(rng.integers(1, 4)),
               "id": i} for i in range(200)]
    records[0]["bbox"] = [1, 2e-3, 3.5E+2, 0]  # ints and exponents as other writers print them
    records[1]["image_id"] = 2.0               # an integral float id: pycocotools' dict lookup takes it
    text = json.dumps(records, indent=1).replace('"bbox": [', '"bbox" :[ ')
    dataset = {"images": [{"id": i} for i in range(1, 4)], "categories": [{"id": c} for c in range(1, 5)],
               "annotations": [{"id": i + 1, "image_id": r["image_id"], "category_id": r["category_id"],
                                "bbox": r["bbox"], "area": 50.0, "iscrowd": 0} for i, r in enumerate(records[::7])]}
    (tmp_path / "gt.json").write_text(json.dumps(dataset))
    (tmp_path / "dt.json").write_text(text)
    gt, got = coco_json.read_coco(tmp_path / "gt.json", tmp_path / "dt.json")
    expected = (np.array([int(r["image_id"]) - 1 for r in records]), np.array([r["category_id"] - 1 for r in records]),
                np.array([r["score"] for r in records], dtype=np.float64),
                np.array([r["bbox"] for r in records], dtype=np.float64))
    for value, want in zip(got, expected):
        np.testing.assert_array_equal(value, want)
    from_file = MeanAveragePrecision.from_coco_json(tmp_path / "gt.json", tmp_path / "dt.json").compute()
    from_list = MeanAveragePrecision.from_coco_json(dataset, records).compute()
    np.testing.assert_array_equal(from_file["precision"], from_list["precision"])


@pytest.mark.parametrize("key, value, message", [
    ("image_id", 1.5, "'image_id' must be an integer"), ("image_id", True, "'image_id' must be a number"),
    ("image_id", "1", "'image_id' must be a number"), ("category_id", None, "'category_id' must be a number"),
    ("score", None, "'score' must be a number"), ("score", "0.9", "'score' must be a number"),
    ("score", True, "'score' must be a number"), ("bbox", ["1", 2, 3, 4], "'bbox' must be 4 numbers"),
    ("bbox", [1, 2, 3], "'bbox' must be 4 numbers")])
def test_result_values_are_checked_not_coerced(key, value, message):
    from tritonvision.metrics import coco_json
    gt = coco_json.read_ground_truth({"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": []})
    good = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}
    with pytest.raises(ValueError, match=message):
        coco_json.read_results([good, {**good, key: value}], gt)
