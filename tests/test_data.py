"""tritonvision.data: the synthetic shapes dataset and the collate functions."""

import numpy as np
import pytest
import torch

from tritonvision.data import ShapesDataset, collate_detection, collate_segmentation


def _check_sample_format(image, target, num_classes=3):
    assert image.dtype == torch.float32 and image.dim() == 3 and image.shape[0] == 3
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    h, w = image.shape[1:]
    boxes, labels = target["boxes"], target["labels"]
    assert boxes.dtype == torch.float32 and boxes.shape == (len(labels), 4)
    assert labels.dtype == torch.int64
    assert ((labels >= 0) & (labels < num_classes)).all()
    assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    if "mask" in target:
        assert target["mask"].dtype == torch.int64 and target["mask"].shape == (h, w)
    assert isinstance(target["image_id"], int)


def test_shapes_sample_format_and_len():
    ds = ShapesDataset(5, image_size=48, seed=3)
    assert len(ds) == 5
    assert ShapesDataset.num_classes == 3 and ShapesDataset.num_seg_classes == 4
    assert ShapesDataset.CLASSES == ("circle", "square", "triangle")
    for i in range(5):
        image, target = ds[i]
        assert image.shape == (3, 48, 48)
        _check_sample_format(image, target)
        assert target["image_id"] == i
    with pytest.raises(IndexError):
        ds[5]
    assert torch.equal(ds[-1][0], ds[4][0])


def test_shapes_is_deterministic_by_seed_and_index_in_any_order():
    seed = int(torch.randint(0, 2**31, ()).item())
    a = ShapesDataset(20, seed=seed)
    b = ShapesDataset(20, seed=seed)
    forward = [a[i] for i in range(20)]
    for i in reversed(range(20)):  # a fresh instance read backwards gives the same samples
        image, target = b[i]
        assert torch.equal(image, forward[i][0])
        for key in ("boxes", "labels", "mask"):
            assert torch.equal(target[key], forward[i][1][key])
    other = ShapesDataset(20, seed=seed + 1)
    assert not all(torch.equal(other[i][0], forward[i][0]) for i in range(3))


def test_shapes_split_streams_are_disjoint_and_reproducible():
    train, val = ShapesDataset.split(10, 6, seed=1, image_size=32)
    assert len(train) == 10 and len(val) == 6
    assert train.image_size == val.image_size == 32
    val2 = ShapesDataset(6, image_size=32, seed=1, split="val")
    train_images = [train[i][0] for i in range(10)]
    for i in range(6):
        assert torch.equal(val[i][0], val2[i][0])
        assert not any(torch.equal(val[i][0], t) for t in train_images)


def _naive_footprints_are_inside_boxes(mask, boxes, labels):
    """Every visible pixel of class c + 1 lies in some box of label c; every box holds
    at least one visible pixel of its own class."""
    h, w = mask.shape
    ys, xs = np.mgrid[0:h, 0:w]
    covered = np.zeros((h, w), dtype=bool)
    for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist()):
        inside = (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
        assert (mask[inside] == label + 1).any(), "box holds no visible pixel of its class"
        covered |= inside & (mask == label + 1)
    assert covered[mask > 0].all(), "an object pixel lies outside every box of its class"


def test_shapes_masks_agree_with_boxes_and_labels():
    ds = ShapesDataset(60, image_size=64, seed=int(torch.randint(0, 1000, ()).item()))
    for i in range(len(ds)):
        image, target = ds[i]
        mask = target["mask"].numpy()
        assert set(np.unique(mask).tolist()) <= {0, 1, 2, 3}
        # classes present in the mask are exactly the labels (each kept object is visible)
        assert set(np.unique(mask[mask > 0]).tolist()) == {int(l) + 1 for l in target["labels"]}
        _naive_footprints_are_inside_boxes(mask, target["boxes"], target["labels"])


def test_shapes_box_is_tight_for_a_lone_object():
    # with one object nothing is occluded: the box is exactly the mask's extent
    ds = ShapesDataset(40, image_size=40, seed=7, max_objects=1)
    for i in range(len(ds)):
        _, target = ds[i]
        assert len(target["labels"]) == 1
        ys, xs = torch.nonzero(target["mask"], as_tuple=True)
        expected = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        assert torch.equal(target["boxes"][0], expected)


def test_shapes_every_class_appears_and_sizes_are_respected():
    ds = ShapesDataset(300, image_size=32, seed=int(torch.randint(0, 1000, ()).item()),
                       min_size=6, max_size=12)
    counts = np.zeros(3, dtype=np.int64)
    for i in range(len(ds)):
        _, target = ds[i]
        counts += np.bincount(target["labels"].numpy(), minlength=3)
        wh = target["boxes"][:, 2:] - target["boxes"][:, :2]
        assert (wh <= 12 + 1).all()  # a box never exceeds the circumscribed diameter (+1 px raster)
    assert (counts > 100).all(), counts


def test_shapes_objects_stand_out_from_background():
    # objects are painted in a colour far from the background mean: a model can see them
    ds = ShapesDataset(30, image_size=64, seed=11, max_objects=1, min_size=16, max_size=24)
    for i in range(len(ds)):
        image, target = ds[i]
        fg = target["mask"] > 0
        if fg.sum() < 20 or (~fg).sum() < 20:
            continue
        diff = (image[:, fg].mean(1) - image[:, ~fg].mean(1)).norm()
        assert diff > 0.1


def test_shapes_rejects_bad_arguments():
    with pytest.raises(ValueError, match="min_size"):
        ShapesDataset(3, min_size=20, max_size=10)
    with pytest.raises(ValueError, match="split"):
        ShapesDataset(3, split="bogus")
    with pytest.raises(ValueError, match="image_size"):
        ShapesDataset(3, image_size=2)


def test_shapes_generates_fast():
    import time
    ds = ShapesDataset(180, image_size=64)
    rates = []
    for start in (0, 60, 120):  # best of three batches: the machine is shared
        t0 = time.perf_counter()
        for i in range(start, start + 60):
            ds[i]
        rates.append(60 / (time.perf_counter() - t0))
    # ~1500 images/s on one idle core; a loose bound so a busy machine does not fail it
    assert max(rates) > 200, f"{max(rates):.0f} images/s"


def test_collate_detection_and_segmentation_shapes():
    ds = ShapesDataset(4, image_size=32)
    batch = [ds[i] for i in range(4)]
    images, targets = collate_detection(batch)
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert len(targets) == 4 and torch.equal(targets[2]["boxes"], batch[2][1]["boxes"])
    images, masks = collate_segmentation(batch)
    assert images.shape == (4, 3, 32, 32)
    assert masks.shape == (4, 32, 32) and masks.dtype == torch.int64
    assert torch.equal(masks[1], batch[1][1]["mask"])


def test_collate_rejects_mixed_sizes_and_missing_masks():
    a = ShapesDataset(1, image_size=32)[0]
    b = ShapesDataset(1, image_size=16)[0]
    with pytest.raises(ValueError, match="share one shape"):
        collate_detection([a, b])
    no_mask = (a[0], {k: v for k, v in a[1].items() if k != "mask"})
    with pytest.raises(ValueError, match="no 'mask'"):
        collate_segmentation([a, no_mask])
    with pytest.raises(ValueError, match="empty"):
        collate_detection([])


def test_dataloader_batches_shapes_with_both_collates():
    from torch.utils.data import DataLoader

    ds = ShapesDataset(10, image_size=24, seed=4)
    images, targets = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_detection)))
    assert images.shape == (4, 3, 24, 24) and [t["image_id"] for t in targets] == [0, 1, 2, 3]
    batches = list(DataLoader(ds, batch_size=4, collate_fn=collate_segmentation))
    assert [b[1].shape[0] for b in batches] == [4, 4, 2]
    assert torch.equal(batches[2][1][1], ds[9][1]["mask"])
