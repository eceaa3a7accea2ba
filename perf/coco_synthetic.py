"""A deterministic synthetic COCO-val-sized detection set: annotation + result json files.

``write_synthetic_coco(directory, num_images=5000, seed=0)`` writes
``instances.json`` (about 7.3 boxes per image over 80 categories, ~1% crowd, areas
spread over small/medium/large) and ``detections.json`` (100 detections per image: a
jittered copy of most ground truths, some with a wrong class, the rest random boxes;
scores rounded to 3 decimals so ties occur as they do in real result files).

``iou_type="segm"`` gives the same set with masks (``make_synthetic_coco_segm``): each
ground truth a star-shaped polygon inscribed in its box (8..24 vertices; 5% in two
parts), 10% of them a compressed RLE of the box's ellipse instead, crowd regions an
uncompressed RLE (as COCO stores them), ``area`` the polygon's (shoelace) or the RLE's
pixel area; each detection the compressed RLE of its box's ellipse (no ``bbox`` key, as
the results of pycocotools' segm demo).

    python -m perf.coco_synthetic OUT_DIR [--images 5000] [--iou-type segm]
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


def _ellipse_runs(boxes: np.ndarray, height: int, width: int):
    """Run lengths of the filled ellipses inscribed in xywh ``boxes`` [n, 4] (pixels whose
    centre is inside), clipped to the image: (flat counts, offsets [n + 1]), column-major
    COCO runs starting with a 0-run, no 0-length run but a leading one."""
    from tritonvision.masks._segments import offsets_of, segment_ids

    x0 = np.clip(np.floor(boxes[:, 0]), 0, width).astype(np.int64)
    x1 = np.clip(np.ceil(boxes[:, 0] + boxes[:, 2]), 0, width).astype(np.int64)
    column_offsets = offsets_of(x1 - x0)
    owner = segment_ids(column_offsets)
    column = x0[owner] + np.arange(column_offsets[-1]) - column_offsets[owner]
    cx, cy = boxes[owner, 0] + boxes[owner, 2] / 2, boxes[owner, 1] + boxes[owner, 3] / 2
    u = (column + 0.5 - cx) / np.maximum(boxes[owner, 2] / 2, 1e-9)
    half = boxes[owner, 3] / 2 * np.sqrt(np.clip(1 - u * u, 0, None))
    top = np.clip(np.ceil(cy - half - 0.5), 0, height).astype(np.int64)
    bottom = np.clip(np.floor(cy + half - 0.5) + 1, 0, height).astype(np.int64)
    filled = (np.abs(u) < 1) & (bottom > top)
    owner, column, top, bottom = owner[filled], column[filled], top[filled], bottom[filled]
    # boundaries start, end per filled column; an end meeting the next start cancels out
    bounds = np.stack([column * height + top, column * height + bottom], axis=1).ravel()
    bound_owner = np.repeat(owner, 2)
    meets = np.flatnonzero((bounds[1:-1:2] == bounds[2::2]) & (bound_owner[1:-1:2] == bound_owner[2::2]))
    drop = np.zeros(bounds.size, dtype=bool)
    drop[2 * meets + 1] = drop[2 * meets + 2] = True
    bounds, bound_owner = bounds[~drop], bound_owner[~drop]
    per_mask = np.bincount(bound_owner, minlength=len(boxes))
    full_offsets = offsets_of(per_mask + 2)                   # per mask: 0, bounds..., h * w
    full = np.zeros(int(full_offsets[-1]), dtype=np.int64)
    full[full_offsets[1:] - 1] = height * width
    local = np.arange(bounds.size) - offsets_of(per_mask)[bound_owner]
    full[full_offsets[bound_owner] + 1 + local] = bounds
    runs = np.diff(full)
    keep = np.ones(runs.size, dtype=bool)
    keep[full_offsets[1:-1] - 1] = False                         # across two masks
    runs = runs[keep]
    last = offsets_of(per_mask + 1)[1:] - 1                      # a 0-length last run goes
    trailing = np.zeros(runs.size, dtype=bool)
    trailing[last[(runs[last] == 0) & (per_mask > 0)]] = True
    return runs[~trailing], offsets_of(per_mask + 1 - trailing[last])


def _ellipse_rles(boxes: np.ndarray, height: int, width: int, compressed: bool = True) -> list[dict]:
    """COCO RLE dicts of the ellipses in ``boxes``: compressed ``counts`` strings, or lists."""
    from tritonvision.masks._counts_string import to_strings

    counts, offsets = _ellipse_runs(boxes, height, width)
    if compressed:
        strings = [s.decode("ascii") for s in to_strings(counts, offsets)]
    else:
        strings = [counts[offsets[i]:offsets[i + 1]].tolist() for i in range(len(boxes))]
    return [{"size": [height, width], "counts": c} for c in strings]


def _star_polygon(rng: np.random.Generator, box: np.ndarray, width: int, height: int) -> list[float]:
    """A star-shaped polygon (8..24 vertices) inscribed in the xywh box, inside the image."""
    k = int(rng.integers(8, 25))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    radius = rng.uniform(0.88, 1.0, k)
    x = box[0] + box[2] / 2 * (1 + radius * np.cos(angles))
    y = box[1] + box[3] / 2 * (1 + radius * np.sin(angles))
    xy = np.stack([np.clip(x, 0, width), np.clip(y, 0, height)], axis=1)
    return np.round(xy, 2).ravel().tolist()


def _shoelace(polygon: list[float]) -> float:
    x, y = np.asarray(polygon[0::2]), np.asarray(polygon[1::2])
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def make_synthetic_coco_segm(num_images: int = 5000, seed: int = 0) -> tuple[dict, list]:
    """The boxes of ``make_synthetic_coco`` as masks (see the module docstring)."""
    dataset, box_results = make_synthetic_coco(num_images, seed)
    rng = np.random.default_rng(seed + 1)
    size = {image["id"]: (image["height"], image["width"]) for image in dataset["images"]}
    for ann in dataset["annotations"]:
        height, width = size[ann["image_id"]]
        box = np.array(ann["bbox"])
        kind = rng.uniform()
        if ann["iscrowd"] or kind < 0.1:
            rle = _ellipse_rles(box[None], height, width, compressed=not ann["iscrowd"])[0]
            ann["segmentation"] = rle
            ann["area"] = float(_ellipse_runs(box[None], height, width)[0][1::2].sum())
            continue
        parts = [_star_polygon(rng, box, width, height)]
        if kind > 0.95:                              # a second, smaller part in the box
            parts.append(_star_polygon(rng, box * np.array([1, 1, 0.4, 0.4]), width, height))
        ann["segmentation"] = parts
        ann["area"] = round(sum(map(_shoelace, parts)), 2)
    results = []
    by_image: dict[int, list[dict]] = {}
    for det in box_results:
        by_image.setdefault(det["image_id"], []).append(det)
    for image_id, dets in by_image.items():
        height, width = size[image_id]
        rles = _ellipse_rles(np.array([d["bbox"] for d in dets]), height, width)
        results.extend({"image_id": d["image_id"], "category_id": d["category_id"], "segmentation": rle,
                        "score": d["score"]} for d, rle in zip(dets, rles))
    return dataset, results


def write_synthetic_coco(directory, num_images: int = 5000, seed: int = 0,
                         iou_type: str = "bbox") -> tuple[Path, Path]:
    """Write (once; reused when present) and return (annotation path, results path)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = "" if iou_type == "bbox" else f"_{iou_type}"
    gt_path = directory / f"instances_{num_images}_{seed}{suffix}.json"
    dt_path = directory / f"detections_{num_images}_{seed}{suffix}.json"
    if not (gt_path.exists() and dt_path.exists()):
        make = {"bbox": make_synthetic_coco, "segm": make_synthetic_coco_segm}[iou_type]
        gt, results = make(num_images, seed)
        gt_path.write_text(json.dumps(gt))
        dt_path.write_text(json.dumps(results))
    return gt_path, dt_path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iou-type", choices=("bbox", "segm"), default="bbox")
    args = parser.parse_args()
    print(*write_synthetic_coco(args.out_dir, args.images, args.seed, args.iou_type))
