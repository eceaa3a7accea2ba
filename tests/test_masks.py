"""tritonvision.masks against pycocotools.mask (fixture and random masks) and hand-worked examples."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tritonvision import masks

FIXTURE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco-val2014-100"
SIZES = [(1, 1), (1, 7), (7, 1), (2, 3), (5, 3), (31, 17), (32, 32), (33, 64)]


def _rng():
    return np.random.default_rng(int(torch.randint(0, 2**31, ()).item()))


def _random_masks(rng, n, h, w):
    """Noise, empty, full, one-pixel and border-touching rectangle masks, in random order."""
    def one_pixel():
        m = np.zeros((h, w), bool)
        m[int(rng.integers(h)), int(rng.integers(w))] = True
        return m

    def rectangle():
        m = np.zeros((h, w), bool)
        y0, x0 = int(rng.integers(h)), int(rng.integers(w))
        m[y0:int(rng.integers(y0, h)) + 1, x0:int(rng.integers(x0, w)) + 1] = True   # may touch borders
        return m

    kinds = [lambda: rng.random((h, w)) < rng.uniform(0.05, 0.95), lambda: np.zeros((h, w), bool),
             lambda: np.ones((h, w), bool), one_pixel, rectangle]
    return np.stack([kinds[int(rng.integers(len(kinds)))]() for _ in range(n)])


def _coco_encode(mask_utils, m):
    return mask_utils.encode(np.asfortranarray(np.moveaxis(m.astype(np.uint8), 0, -1)))


# ----------------------------------------------------------------------------- by hand
def test_encode_small_mask_by_hand():
    # column-major pixels 0,1,0 | 1,1,0 -> runs 1,1,1,2,1; from index 3 the string holds
    # differences with two back: 2 - 1 = 1, 1 - 1 = 0 -> "1","1","1","1","0"
    rle = masks.encode(np.array([[0, 1], [1, 1], [0, 0]], dtype=np.uint8))
    assert rle == {"size": [3, 2], "counts": b"11110"}
    assert masks.area(rle) == 3
    assert masks.to_bbox(rle).tolist() == [0.0, 0.0, 2.0, 2.0]
    assert masks.decode(rle).tolist() == [[0, 1], [1, 1], [0, 0]]


def test_compressed_counts_negative_and_multi_character_numbers_by_hand():
    # runs 3,5,2,1,5: index 3 writes 1 - 5 = -4 = 0b11100 (sign bit 0x10 set, one char: 48 + 28 = 'L'),
    # index 4 writes 5 - 2 = 3
    assert masks.from_segmentation({"size": [4, 4], "counts": [3, 5, 2, 1, 5]}, 4, 4)["counts"] == b"352L3"
    # 40 = 8 + 32 * 1: first char 48 + (8 | 0x20) = 'X' (continues), then '1'
    assert masks.from_segmentation({"size": [1, 41], "counts": [1, 40]}, 1, 41)["counts"] == b"1X1"
    assert masks.decode({"size": [1, 41], "counts": "1X1"}).sum() == 40   # str counts, as JSON gives


def test_merge_and_iou_by_hand():
    a = np.zeros((4, 5), np.uint8)
    a[0:2, 0:3] = 1                   # 6 pixels
    b = np.zeros((4, 5), np.uint8)
    b[1:4, 1:3] = 1                   # 6 pixels, 2 shared with a
    ra, rb = masks.encode(a), masks.encode(b)
    assert np.array_equal(masks.decode(masks.merge([ra, rb])), a | b)
    assert np.array_equal(masks.decode(masks.merge([ra, rb], intersect=True)), a & b)
    got = masks.iou([ra, rb], [rb, ra], [False, True])
    # IoU(a, b) = 2 / 10; crowd column: intersection over the detection's own area
    np.testing.assert_array_equal(got, [[2 / 10, 6 / 6], [1.0, 2 / 6]])


def test_from_polygons_rectangle_and_empty():
    rle = masks.from_polygons([[2, 1, 7, 1, 7, 4, 2, 4]], 6, 9)    # pixel edges x 2..7, y 1..4
    expected = np.zeros((6, 9), np.uint8)
    expected[1:4, 2:7] = 1
    assert np.array_equal(masks.decode(rle), expected)
    assert masks.from_polygons([2, 1, 7, 1, 7, 4, 2, 4], 6, 9) == rle   # one flat polygon
    assert masks.area(masks.from_polygons([], 6, 9)) == 0


def test_round_trip_torch_and_batches():
    m = torch.rand(3, 5, 7) < 0.5
    rles = masks.encode(m)
    assert len(rles) == 3 and all(r["size"] == [5, 7] for r in rles)
    assert np.array_equal(masks.decode(rles), m.numpy().astype(np.uint8))
    assert masks.area(rles).tolist() == m.sum((1, 2)).tolist()
    assert masks.to_bbox(rles).shape == (3, 4)
    assert masks.decode([]).shape == (0, 0, 0)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("rle, message", [
    ({"size": [2, 3], "counts": b"1#"}, r"RLE: compressed counts has character '#' at position 1"),
    ({"size": [2, 3], "counts": b"1h"}, r"ends in the middle of a number"),
    ({"size": [2, 3], "counts": [1, -3, 8]}, r"run length -3 at index 1 is negative"),
    ({"size": [2, 3], "counts": [1, 3, 1]}, r"run lengths sum to 5, expected height \* width = 2 \* 3 = 6"),
    ({"size": [2], "counts": [6]}, r"'size' is \[2\]; it must be \[height, width\]"),
    ({"size": [2, 3], "counts": [[1, 5]]}, r"neither a flat list of ints"),
])
def test_malformed_rle_says_what_is_wrong(rle, message):
    with pytest.raises(ValueError, match=message):
        masks.decode(rle)


def test_errors_name_the_rle_in_a_list_and_the_fix():
    good = masks.encode(np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"masks.area: RLE 1: compressed counts has character"):
        masks.area([good, {"size": [2, 3], "counts": "\x7f"}])
    with pytest.raises(TypeError, match=r"RLE 0: must be a dict with 'size'"):
        masks.area([[1, 2]])
    with pytest.raises(TypeError, match=r"threshold soft masks first"):
        masks.encode(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"same size"):
        masks.merge([good, masks.encode(np.zeros((3, 2), np.uint8))])
    with pytest.raises(ValueError, match=r"decode them one at a time"):
        masks.decode([good, masks.encode(np.zeros((3, 2), np.uint8))])
    with pytest.raises(ValueError, match=r"polygon 1 has an odd number of coordinates"):
        masks.from_polygons([[0, 0, 1, 0, 1, 1], [0, 0, 1]], 4, 4)
    with pytest.raises(ValueError, match=r"iscrowd has 1 flags for 2"):
        masks.iou([good], [good, good], [0])


# ----------------------------------------------------------------------------- pycocotools
def test_every_fixture_annotation_matches_pycocotools_bit_for_bit():
    mask_utils = pytest.importorskip("pycocotools.mask")
    data = json.loads((FIXTURE / "instances_val2014_100.json").read_text())
    images = {im["id"]: im for im in data["images"]}
    ours, theirs = [], []
    for ann in data["annotations"]:
        im = images[ann["image_id"]]
        h, w, seg = im["height"], im["width"], ann["segmentation"]
        expected = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) \
            else mask_utils.frPyObjects(seg, h, w)
        got = masks.from_segmentation(seg, h, w)
        assert got == expected, f"annotation {ann['id']}"
        ours.append(got)
        theirs.append(expected)
    assert len(ours) == 839
    # one by one: pycocotools' batched area overflows past 255 RLEs
    np.testing.assert_array_equal(masks.area(ours), [mask_utils.area(r) for r in theirs])
    np.testing.assert_array_equal(masks.to_bbox(ours), [mask_utils.toBbox(r) for r in theirs])
    for got, expected in zip(ours[:50], theirs[:50]):
        np.testing.assert_array_equal(masks.decode(got), mask_utils.decode(expected))


@pytest.mark.parametrize("h, w", SIZES)
def test_random_masks_match_pycocotools(h, w):
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = _rng()
    m = _random_masks(rng, 6, h, w)
    expected = _coco_encode(mask_utils, m)
    got = masks.encode(m)
    assert got == expected
    np.testing.assert_array_equal(masks.decode(got), m)
    np.testing.assert_array_equal(masks.area(got), mask_utils.area(expected))
    np.testing.assert_array_equal(masks.to_bbox(got), mask_utils.toBbox(expected))
    for intersect in (False, True):
        assert masks.merge(got, intersect) == mask_utils.merge(expected, intersect)
        assert masks.merge(got[:1], intersect) == mask_utils.merge(expected[:1], intersect)
    crowd = rng.random(6) < 0.5
    np.testing.assert_array_equal(masks.iou(got, got[::-1], crowd),
                                  mask_utils.iou(expected, expected[::-1], crowd.astype(np.uint8)))


def test_uint8_values_above_one_are_foreground():
    m = np.array([[0, 2], [7, 1]], np.uint8)
    assert masks.encode(m) == masks.encode(m != 0)


def _counts_with_zero_runs(rng, total):
    counts = [int(c) for c in rng.integers(0, 4, int(rng.integers(1, 9)))]
    return counts + [total - sum(counts)] if sum(counts) <= total else [total]


def test_zero_length_runs_like_pycocotools():
    """Uncompressed counts may hold 0-length runs; pycocotools' merge keeps some of them and
    both its merge and iou loops stop early where two RLEs reach 0-length runs together."""
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = _rng()
    for _ in range(60):
        rles = [mask_utils.frPyObjects({"size": [4, 5], "counts": _counts_with_zero_runs(rng, 20)}, 4, 5)
                for _ in range(2)]
        for intersect in (False, True):
            assert masks.merge(rles, intersect) == mask_utils.merge(rles, intersect)
        np.testing.assert_array_equal(masks.to_bbox(rles), mask_utils.toBbox(rles))
        np.testing.assert_array_equal(masks.iou(rles, rles, [0, 1]), mask_utils.iou(rles, rles, [0, 1]))


def test_merge_refuses_what_would_hang_pycocotools():
    a = {"size": [4, 5], "counts": [2, 0, 0, 3, 3, 3, 9]}
    b = {"size": [4, 5], "counts": [2, 0, 0, 18]}
    assert masks.merge([a, b]) == {"size": [4, 5], "counts": b"2"}     # pycocotools' (truncated) answer
    with pytest.raises(ValueError, match="would loop forever"):
        masks.merge([a, b, {"size": [4, 5], "counts": [20]}])


def test_random_polygons_match_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = _rng()
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        polygons = []
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(3, 12))
            # vertices beyond the borders, on exact .5 and .1 grids and anywhere
            xy = rng.uniform(-5, [w + 5, h + 5], (k, 2))
            grid = rng.choice([1, 2, 10, 1e6])
            xy = np.round(xy * grid) / grid
            polygons.append(xy.ravel().tolist())
        if len(polygons[0]) == 4:
            continue                      # pycocotools would read these as boxes
        expected = mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))
        assert masks.from_polygons(polygons, h, w) == expected


def test_rle_iou_matches_pycocotools_on_fixture_results():
    """Every image of the fixture: the fake segm results against the ground truth."""
    mask_utils = pytest.importorskip("pycocotools.mask")
    data = json.loads((FIXTURE / "instances_val2014_100.json").read_text())
    results = json.loads((FIXTURE / "instances_val2014_fakesegm100_results.json").read_text())
    images = {im["id"]: im for im in data["images"]}
    for image_id in sorted({r["image_id"] for r in results})[:40]:
        im = images[image_id]
        gts = [a for a in data["annotations"] if a["image_id"] == image_id]
        gt = [masks.from_segmentation(a["segmentation"], im["height"], im["width"]) for a in gts]
        dt = [r["segmentation"] for r in results if r["image_id"] == image_id]
        crowd = [a["iscrowd"] for a in gts]
        expected = mask_utils.iou(dt, gt, crowd)
        got = masks.iou(dt, gt, crowd)
        if len(expected) == 0:
            assert got.size == 0
        else:
            np.testing.assert_array_equal(got, expected)
