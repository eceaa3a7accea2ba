"""COCO segmentation rasterising (polygons, RLE) and CocoDetection(masks=True)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tritonvision.data import CocoDetection, open_dataset
from tritonvision.data.coco_masks import segmentation_mask


def _random_star_polygon(rng, h, w):
    """A simple (non-self-intersecting) polygon: radii at sorted angles around a centre."""
    n = int(rng.integers(3, 12))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(2, min(h, w) / 2, n)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)


def test_polygon_mask_matches_pycocotools_ann_to_mask():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(int(torch.randint(0, 2**31, ()).item()))
    h, w = 23, 31
    for _ in range(30):
        polys = [_random_star_polygon(rng, h, w).ravel().tolist() for _ in range(int(rng.integers(1, 3)))]
        expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w)))
        assert np.array_equal(segmentation_mask(polys, h, w), expected.astype(bool))


def test_polygon_mask_rectangle_is_exact_and_degenerate_is_empty():
    m = segmentation_mask([[2, 1, 7, 1, 7, 4, 2, 4]], 6, 9)  # pixel-edge rectangle x 2..7, y 1..4
    expected = np.zeros((6, 9), dtype=bool)
    expected[1:4, 2:7] = True
    assert np.array_equal(m, expected)
    assert not segmentation_mask([[1, 1, 5, 1, 9, 1]], 6, 9).any()  # zero-area triangle
    assert not segmentation_mask([[-10, -10, -5, -10, -5, -5]], 6, 9).any()  # outside the image


def test_rle_decode_matches_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(int(torch.randint(0, 2**31, ()).item()))
    for h, w in [(1, 1), (7, 5), (40, 33)]:
        m = rng.random((h, w)) < rng.uniform(0.1, 0.9)
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert np.array_equal(segmentation_mask(rle, h, w), m)  # compressed bytes counts
        rle["counts"] = rle["counts"].decode()
        assert np.array_equal(segmentation_mask(rle, h, w), m)  # string counts


def test_rle_uncompressed_counts_are_column_major():
    # 2x3 image, runs 0:1, 1:3, 0:2 down the columns
    got = segmentation_mask({"counts": [1, 3, 2], "size": [2, 3]}, 2, 3)
    assert np.array_equal(got, np.array([[0, 1, 0], [1, 1, 0]], dtype=bool))
    with pytest.raises(ValueError, match="sum to 5"):
        segmentation_mask({"counts": [1, 3, 1], "size": [2, 3]}, 2, 3)
    with pytest.raises(ValueError, match="does not match the image 3x2"):
        segmentation_mask({"counts": [1, 3, 2], "size": [2, 3]}, 3, 2)


def _coco_with_segmentation(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((10, 12, 3), dtype=np.uint8)).save(tmp_path / "images" / "a.png")
    data = {
        "images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 12}],
        "categories": [{"id": 5, "name": "big"}, {"id": 9, "name": "small"}],
        "annotations": [
            # a small square listed first, then a big one under it: small must stay on top
            {"id": 1, "image_id": 1, "category_id": 9, "bbox": [3, 3, 2, 2],
             "segmentation": [[3, 3, 5, 3, 5, 5, 3, 5]]},
            {"id": 2, "image_id": 1, "category_id": 5, "bbox": [1, 1, 8, 6],
             "segmentation": [[1, 1, 9, 1, 9, 7, 1, 7]]},
            {"id": 3, "image_id": 1, "category_id": 5, "bbox": [10, 0, 2, 10], "iscrowd": 1,
             "segmentation": {"counts": [100, 20], "size": [10, 12]}},
        ],
    }
    (tmp_path / "annotations").mkdir()
    path = tmp_path / "annotations" / "instances_val.json"
    path.write_text(json.dumps(data))
    return path, data


def test_coco_masks_paint_small_objects_on_top_and_crowd_as_void(tmp_path):
    path, _ = _coco_with_segmentation(tmp_path)
    ds = CocoDetection(tmp_path / "images", path, masks=True)
    assert ds.num_seg_classes == 3
    _, target = ds[0]
    expected = np.zeros((10, 12), dtype=np.int64)
    expected[1:7, 1:9] = 1        # big: label 0
    expected[3:5, 3:5] = 2        # small: label 1, on top
    expected[:, 10:12] = 255      # crowd RLE: the last 20 pixels in column-major order
    assert torch.equal(target["mask"], torch.from_numpy(expected))
    assert target["labels"].tolist() == [1, 0, 0] and target["iscrowd"].tolist() == [0, 0, 1]
    assert "mask" not in CocoDetection(tmp_path / "images", path)[0][1]
    seg = open_dataset(str(tmp_path), "seg", "val")
    assert torch.equal(seg[0][1]["mask"], target["mask"])


def test_coco_masks_malformed_segmentation_names_the_annotation(tmp_path):
    path, data = _coco_with_segmentation(tmp_path)
    data["annotations"][1]["segmentation"] = [[1, 1, 9]]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"instances_val\.json: annotations\[1\] \(id 2\): each polygon"):
        CocoDetection(tmp_path / "images", path, masks=True)
    CocoDetection(tmp_path / "images", path)  # without masks the segmentation is not read
    data["annotations"][1]["segmentation"] = [[1, 1, 9, 1, 9, 7]]
    data["annotations"][2]["segmentation"] = {"counts": [100, 21], "size": [10, 12]}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"annotations\[2\] \(id 3\): .*run lengths sum to 121"):
        CocoDetection(tmp_path / "images", path, masks=True)[0]
