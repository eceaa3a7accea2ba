"""tritonvision.data transforms: image, mask and boxes stay consistent."""
import numpy as np
import pytest
import torch

from tritonvision.data import (Compose, Normalize, RandomCrop, RandomHorizontalFlip, RandomScale,
                               Resize, ShapesDataset)


def _extent(mask, cls):
    """Naive tight pixel-edge box of the pixels of class ``cls`` (None if absent)."""
    ys, xs = np.nonzero(mask.numpy() == cls)
    if len(xs) == 0:
        return None
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def _lone_object_samples(n, size=48, seed=None):
    seed = int(torch.randint(0, 10_000, ()).item()) if seed is None else seed
    ds = ShapesDataset(n, image_size=size, seed=seed, max_objects=1, min_size=8, max_size=20)
    return [ds[i] for i in range(n)]


def test_flip_twice_is_identity():
    flip = RandomHorizontalFlip(p=1.0)
    for image, target in _lone_object_samples(5) + [ShapesDataset(3, seed=5)[i] for i in range(3)]:
        once_img, once = flip(image, target)
        twice_img, twice = flip(once_img, once)
        assert not torch.equal(once_img, image)
        assert torch.equal(twice_img, image)
        assert torch.equal(twice["mask"], target["mask"])
        assert torch.equal(twice["boxes"], target["boxes"])
        assert torch.equal(twice["labels"], target["labels"])


def test_flip_boxes_follow_the_mask_and_pixels_mirror():
    flip = RandomHorizontalFlip(p=1.0)
    for image, target in _lone_object_samples(10):
        out_img, out = flip(image, target)
        w = image.shape[-1]
        for x in range(w):  # naive mirror, column by column
            assert torch.equal(out_img[:, :, x], image[:, :, w - 1 - x])
            assert torch.equal(out["mask"][:, x], target["mask"][:, w - 1 - x])
        expected = _extent(out["mask"], int(target["labels"][0]) + 1)
        assert out["boxes"][0].tolist() == expected


def test_flip_probability_zero_and_seeded_determinism():
    image, target = ShapesDataset(1, seed=2)[0]
    out_img, out = RandomHorizontalFlip(p=0.0)(image, target)
    assert torch.equal(out_img, image) and torch.equal(out["boxes"], target["boxes"])
    a = [RandomHorizontalFlip(0.5, seed=9) for _ in range(2)]
    flips_a = [torch.equal(a[0](image, target)[0], image) for _ in range(20)]
    flips_b = [torch.equal(a[1](image, target)[0], image) for _ in range(20)]
    assert flips_a == flips_b and 0 < sum(flips_a) < 20


def test_resize_upscale_by_two_repeats_mask_and_doubles_boxes():
    for image, target in _lone_object_samples(5, size=32):
        out_img, out = Resize(64)(image, target)
        assert out_img.shape == (3, 64, 64) and out_img.dtype == torch.float32
        expected_mask = target["mask"].repeat_interleave(2, 0).repeat_interleave(2, 1)
        assert torch.equal(out["mask"], expected_mask)
        assert torch.equal(out["boxes"], target["boxes"] * 2)
        assert out["boxes"][0].tolist() == _extent(out["mask"], int(target["labels"][0]) + 1)
        assert float(out_img.min()) >= 0 and float(out_img.max()) <= 1


def test_resize_downscale_samples_mask_at_pixel_centres_and_non_square():
    image, target = ShapesDataset(1, image_size=64, seed=3)[0]
    out_img, out = Resize((32, 16))(image, target)
    assert out_img.shape == (3, 32, 16)
    assert torch.equal(out["mask"], target["mask"][1::2, 2::4])  # centre of each 2x4 cell
    scale = torch.tensor([16 / 64, 32 / 64, 16 / 64, 32 / 64])
    assert torch.allclose(out["boxes"], target["boxes"] * scale)
    # bilinear + antialias of a constant image is the constant
    const = torch.full((3, 64, 64), 0.25)
    assert torch.allclose(Resize(20)(const, {})[0], torch.full((3, 20, 20), 0.25), atol=1e-6)


def _find_offset(big, small):
    """Naive search of where ``small`` sits in ``big`` (both [C, H, W])."""
    h, w = small.shape[-2:]
    found = [(t, l) for t in range(big.shape[-2] - h + 1) for l in range(big.shape[-1] - w + 1)
             if torch.equal(big[:, t:t + h, l:l + w], small)]
    assert len(found) == 1
    return found[0]


def test_random_crop_matches_a_naive_crop_of_image_mask_and_boxes():
    crop = RandomCrop(24)
    ds = ShapesDataset(12, image_size=40, seed=int(torch.randint(0, 1000, ()).item()))
    for i in range(len(ds)):
        image, target = ds[i]
        target = dict(target, difficult=torch.arange(len(target["labels"])) % 2 == 0)
        out_img, out = crop(image, target)
        assert out_img.shape == (3, 24, 24) and out["mask"].shape == (24, 24)
        top, left = _find_offset(image, out_img)
        assert torch.equal(out["mask"], target["mask"][top:top + 24, left:left + 24])
        expected, kept = [], []
        for k, (x1, y1, x2, y2) in enumerate(target["boxes"].tolist()):
            b = [min(max(x1 - left, 0), 24), min(max(y1 - top, 0), 24),
                 min(max(x2 - left, 0), 24), min(max(y2 - top, 0), 24)]
            if b[2] > b[0] and b[3] > b[1]:
                expected.append(b)
                kept.append(k)
        assert out["boxes"].tolist() == expected
        assert out["labels"].tolist() == target["labels"][kept].tolist()
        assert out["difficult"].tolist() == target["difficult"][kept].tolist()
        # every visible object pixel in the crop lies inside a kept box of its class
        m = out["mask"].numpy()
        ys, xs = np.mgrid[0:24, 0:24]
        covered = np.zeros_like(m, dtype=bool)
        for (x1, y1, x2, y2), lab in zip(out["boxes"].tolist(), out["labels"].tolist()):
            covered |= (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2) & (m == lab + 1)
        assert covered[m > 0].all()


def test_random_crop_pads_small_images_with_fill_and_ignore():
    image, target = ShapesDataset(1, image_size=16, seed=4)[0]
    out_img, out = RandomCrop((20, 24), fill=0.5, seed=0)(image, target)
    assert out_img.shape == (3, 20, 24) and out["mask"].shape == (20, 24)
    top, left = _find_offset(out_img, image)  # padding is bottom/right, crop keeps all of it
    assert (top, left) == (0, 0)
    assert (out["mask"][16:, :] == 255).all() and (out["mask"][:, 16:] == 255).all()
    assert (out_img[:, 16:, :] == 0.5).all() and (out_img[:, :, 16:] == 0.5).all()
    assert torch.equal(out["boxes"], target["boxes"])


def test_random_crop_drops_boxes_outside_and_handles_no_boxes():
    image = torch.rand(3, 30, 30)
    target = {"boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 30.0, 30.0]]),
              "labels": torch.tensor([1, 2]), "image_id": 0}
    gen = torch.Generator().manual_seed(int(torch.randint(0, 1000, ()).item()))
    for _ in range(20):
        _, out = RandomCrop(10, generator=gen)(image, target)
        assert (out["boxes"][:, 2:] - out["boxes"][:, :2] > 0).all()
        assert out["labels"].tolist()[-1] == 2  # the full-image box always survives
        assert out["boxes"][-1].tolist() == [0.0, 0.0, 10.0, 10.0]
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    _, out = RandomCrop(10)(image, empty)
    assert out["boxes"].shape == (0, 4) and out["labels"].shape == (0,)


def _naive_nearest(mask, out_h, out_w):
    """Output pixel (r, c) takes the source pixel under its centre, in exact fractions."""
    from fractions import Fraction
    h, w = mask.shape
    rows = [min(int((Fraction(2 * r + 1, 2) * h) / out_h), h - 1) for r in range(out_h)]
    cols = [min(int((Fraction(2 * c + 1, 2) * w) / out_w), w - 1) for c in range(out_w)]
    return mask[rows][:, cols]


def test_random_scale_range_mask_sampling_and_boxes():
    scale = RandomScale(0.5, 1.5, seed=int(torch.randint(0, 1000, ()).item()))
    for image, target in _lone_object_samples(8, size=40):
        out_img, out = scale(image, target)
        h, w = out_img.shape[-2:]
        assert 20 <= h <= 60 and h == w and out["mask"].shape == (h, w)
        assert torch.equal(out["mask"], _naive_nearest(target["mask"], h, w))
        assert torch.allclose(out["boxes"], target["boxes"] * (h / 40))
        # a pixel is kept when the source pixel under its centre is the object's, so every
        # object pixel lies within the scaled box grown by half a pixel
        ext = _extent(out["mask"], int(target["labels"][0]) + 1)
        if ext is not None:
            b = out["boxes"][0].numpy()
            assert ext[0] >= b[0] - 0.5 - 1e-4 and ext[1] >= b[1] - 0.5 - 1e-4
            assert ext[2] <= b[2] + 0.5 + 1e-4 and ext[3] <= b[3] + 0.5 + 1e-4


def test_nearest_resize_is_exact_at_awkward_ratios():
    mask = torch.arange(40 * 40).reshape(40, 40)
    for out in (27, 13, 1, 39, 41, 97):
        assert torch.equal(Resize(out)(torch.zeros(3, 40, 40), {"mask": mask})[1]["mask"],
                           _naive_nearest(mask, out, out))


def test_compose_runs_in_order_and_input_target_is_not_modified():
    image, target = ShapesDataset(1, image_size=32, seed=6)[0]
    boxes_before = target["boxes"].clone()
    t = Compose([Resize(64), RandomHorizontalFlip(1.0), Normalize((0.5,) * 3, (0.5,) * 3)])
    out_img, out = t(image, target)
    ref_img, ref = RandomHorizontalFlip(1.0)(*Resize(64)(image, target))
    assert torch.allclose(out_img, (ref_img - 0.5) / 0.5)
    assert torch.equal(out["mask"], ref["mask"]) and torch.equal(out["boxes"], ref["boxes"])
    assert torch.equal(target["boxes"], boxes_before) and target["mask"].shape == (32, 32)


def test_transforms_reject_bad_arguments():
    with pytest.raises(ValueError, match="p must be"):
        RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="min_scale"):
        RandomScale(2.0, 1.0)
    with pytest.raises(ValueError, match="size"):
        RandomCrop((3, 4, 5))
    with pytest.raises(ValueError, match="positive"):
        Resize(0)
    with pytest.raises(ValueError, match="either generator or seed"):
        RandomCrop(4, generator=torch.Generator(), seed=1)


def test_shapes_dataset_applies_transforms():
    ds = ShapesDataset(4, image_size=32, transforms=Compose([RandomScale(1.0, 2.0), RandomCrop(40)]))
    for i in range(4):
        image, target = ds[i]
        assert image.shape == (3, 40, 40) and target["mask"].shape == (40, 40)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(deadline=None, max_examples=40)
@given(h=st.integers(1, 40), w=st.integers(1, 40), ch=st.integers(1, 30), cw=st.integers(1, 30),
       n=st.integers(0, 6), seed=st.integers(0, 2**31 - 1))
def test_crop_and_flip_keep_boxes_valid_for_any_sizes(h, w, ch, cw, n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w, h])
    wh = torch.rand(n, 2, generator=g) * torch.tensor([w, h]) + 0.01
    boxes = torch.cat([xy, torch.minimum(xy + wh, torch.tensor([float(w), float(h)]))], 1)
    target = {"boxes": boxes, "labels": torch.arange(n), "mask": torch.zeros(h, w, dtype=torch.int64)}
    image = torch.rand(3, h, w, generator=g)
    out_img, out = RandomCrop((ch, cw), generator=g)(image, target)
    assert out_img.shape == (3, ch, cw) and out["mask"].shape == (ch, cw)
    b = out["boxes"]
    assert b.shape == (len(out["labels"]), 4) and len(out["labels"]) <= n
    assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()
    assert (b >= 0).all() and (b[:, 0::2] <= cw).all() and (b[:, 1::2] <= ch).all()
    # padded rows/columns of the mask are void, the rest is the original background 0
    assert set(out["mask"].unique().tolist()) <= {0, 255}
    flipped = RandomHorizontalFlip(1.0)(out_img, out)[1]["boxes"]
    assert torch.allclose(flipped[:, 2] - flipped[:, 0], b[:, 2] - b[:, 0], atol=1e-5)
    assert torch.allclose(cw - flipped[:, 2], b[:, 0], atol=1e-5)  # float32 rounding of w - x


def test_letterbox_keeps_the_aspect_ratio_and_pads_centred():
    from tritonvision.data import Letterbox, letterbox_geometry
    from tritonvision.data.transforms import LETTERBOX_FILL

    image = torch.rand(3, 20, 40)                  # wide: fitted to 8 x 16, 4 rows above and below
    mask = torch.ones(20, 40, dtype=torch.int64)
    boxes = torch.tensor([[0.0, 0.0, 40.0, 20.0], [10.0, 5.0, 20.0, 15.0]])
    out, target = Letterbox(16)(image, {"mask": mask, "boxes": boxes, "labels": torch.tensor([0, 1])})
    assert out.shape == (3, 16, 16) and target["mask"].shape == (16, 16)
    assert letterbox_geometry(20, 40, (16, 16)) == (8, 16, 4, 0)
    assert torch.all(out[:, :4] == LETTERBOX_FILL) and torch.all(out[:, 12:] == LETTERBOX_FILL)
    assert torch.all(target["mask"][:4] == 255) and torch.all(target["mask"][4:12] == 1)
    torch.testing.assert_close(target["boxes"], torch.tensor([[0.0, 4.0, 16.0, 12.0],
                                                              [4.0, 6.0, 8.0, 10.0]]))
    square, _ = Letterbox(16)(torch.rand(3, 32, 32), {})
    assert square.shape == (3, 16, 16)             # no padding when the shape already fits
