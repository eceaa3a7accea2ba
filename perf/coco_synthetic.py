"""A deterministic synthetic COCO-val-sized detection set: annotation + result json files.

``write_synthetic_coco(directory, num_images=5000, seed=0)`` writes
``instances.json`` (about 7.3 boxes per image over 80 categories, ~1% crowd, areas
spread over small/medium/large) and ``detections.json`` (100 detections per image: a
jittered copy of most ground truths, some with a wrong class, the rest random boxes;
scores rounded to 3 decimals so ties occur as they do in real result files).

    python -m perf.coco_synthetic OUT_DIR [--images 5000]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

NUM_CATEGORIES = 80
DETS_PER_IMAGE = 100


def make_synthetic_coco(num_images: int = 5000, seed: int = 0) -> tuple[dict, list]:
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    categories = [{"id": i + 1, "name": f"class{i + 1}"} for i in range(NUM_CATEGORIES)]
    ann_id = 1
    for image_id in range(1, num_images + 1):
        width, height = 640, 480
        images.append({"id": image_id, "width": width, "height": height, "file_name": f"{image_id:012d}.jpg"})
        n_gt = int(rng.poisson(7.3))
        size = np.exp(rng.uniform(np.log(6), np.log(400), size=(n_gt, 2)))
        xy = rng.uniform(0, 1, size=(n_gt, 2)) * (np.array([width, height]) - np.minimum(size, 300))
        gt_boxes = np.round(np.concatenate([xy, np.minimum(size, 300)], axis=1), 2)
        gt_cats = rng.integers(1, NUM_CATEGORIES + 1, size=n_gt)
        crowd = rng.uniform(size=n_gt) < 0.01
        for box, cat, is_crowd in zip(gt_boxes, gt_cats, crowd):
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": int(cat),
                                "bbox": [float(v) for v in box], "area": float(box[2] * box[3] * 0.8),
                                "iscrowd": int(is_crowd)})
            ann_id += 1
        # detections: jittered ground truths (a few with a wrong class), then random boxes
        n_hit = min(DETS_PER_IMAGE, int(round(n_gt * 2.5)))
        src = rng.integers(0, max(n_gt, 1), size=n_hit) if n_gt else np.zeros(0, dtype=np.int64)
        hit = gt_boxes[src] + rng.normal(0, 0.08, size=(src.size, 4)) * np.repeat(gt_boxes[src, 2:], 2, axis=1)
        hit_cats = np.where(rng.uniform(size=src.size) < 0.85, gt_cats[src],
                            rng.integers(1, NUM_CATEGORIES + 1, size=src.size))
        n_rand = DETS_PER_IMAGE - src.size
        rsize = np.exp(rng.uniform(np.log(4), np.log(300), size=(n_rand, 2)))
        rxy = rng.uniform(0, 1, size=(n_rand, 2)) * (np.array([width, height]) - rsize)
        boxes = np.concatenate([hit, np.concatenate([rxy, rsize], axis=1)])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], 1.0)
        boxes = np.round(boxes, 2)
        cats = np.concatenate([hit_cats, rng.integers(1, NUM_CATEGORIES + 1, size=n_rand)])
        scores = np.round(np.concatenate([rng.beta(4, 2, size=src.size), rng.beta(1, 4, size=n_rand)]), 3)
        for box, cat, score in zip(boxes, cats, scores):
            results.append({"image_id": image_id, "category_id": int(cat),
                            "bbox": [float(v) for v in box], "score": float(score)})
    return {"images": images, "annotations": annotations, "categories": categories}, results


def write_synthetic_coco(directory, num_images: int = 5000, seed: int = 0) -> tuple[Path, Path]:
    """Write (once; reused when present) and return (annotation path, results path)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    gt_path = directory / f"instances_{num_images}_{seed}.json"
    dt_path = directory / f"detections_{num_images}_{seed}.json"
    if not (gt_path.exists() and dt_path.exists()):
        gt, results = make_synthetic_coco(num_images, seed)
        gt_path.write_text(json.dumps(gt))
        dt_path.write_text(json.dumps(results))
    return gt_path, dt_path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(*write_synthetic_coco(args.out_dir, args.images, args.seed))
