"""The box IoU family against a float64 reference written from the definitions, and torchvision."""
import importlib
import math

import pytest
import torch
import torchvision.ops as tv
from hypothesis import given, settings
from hypothesis import strategies as st

import tritonvision.ops as T
from conftest import KERNEL_TEST_MODE

VARIANTS = ["iou", "giou", "diou", "ciou"]
PUBLIC = {"iou": T.box_iou, "giou": T.generalized_box_iou, "diou": T.distance_box_iou,
          "ciou": T.complete_box_iou}
TORCHVISION = {"iou": tv.box_iou, "giou": tv.generalized_box_iou, "diou": tv.distance_box_iou,
               "ciou": tv.complete_box_iou}
TOL = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def reference_overlap(a, b, variant, eps=1e-7):
    """Pair by pair in float64 Python arithmetic, straight from the definitions."""
    x1, y1, x2, y2 = (float(v) for v in a)
    u1, v1, u2, v2 = (float(v) for v in b)
    area_a, area_b = (x2 - x1) * (y2 - y1), (u2 - u1) * (v2 - v1)
    inter = max(0.0, min(x2, u2) - max(x1, u1)) * max(0.0, min(y2, v2) - max(y1, v1))
    union = area_a + area_b - inter
    iou = 0.0 if union == 0 else inter / union
    if variant == "iou":
        return iou
    cw, ch = max(0.0, max(x2, u2) - min(x1, u1)), max(0.0, max(y2, v2) - min(y1, v1))
    if variant == "giou":
        return iou - (0.0 if cw * ch == 0 else (cw * ch - union) / (cw * ch))
    centre = ((x1 + x2) / 2 - (u1 + u2) / 2) ** 2 + ((y1 + y2) / 2 - (v1 + v2) / 2) ** 2
    diou = iou - centre / (cw ** 2 + ch ** 2 + eps)
    if variant == "diou":
        return diou

    def aspect(w, h):
        return 0.0 if w == 0 and h == 0 else math.atan(w / h) if h != 0 else math.copysign(math.pi / 2, w)
    v = 4 / math.pi ** 2 * (aspect(x2 - x1, y2 - y1) - aspect(u2 - u1, v2 - v1)) ** 2
    return diou - v / (1 - iou + v + eps) * v


def reference_matrix(boxes1, boxes2, variant):
    return torch.tensor([[reference_overlap(a, b, variant) for b in boxes2.double()]
                         for a in boxes1.double()], dtype=torch.float64).reshape(len(boxes1), len(boxes2))


def random_boxes(n, dtype=torch.float32, scale=100.0):
    xy = torch.rand(n, 2, dtype=torch.float64) * scale
    wh = torch.rand(n, 2, dtype=torch.float64) * scale / 2 + 0.5
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


@pytest.mark.kernel
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_pairwise_overlap_matches_float64_reference(variant, dtype):
    a, b = random_boxes(37, dtype), random_boxes(45, dtype)
    got = PUBLIC[variant](a, b)
    assert got.dtype == dtype and got.shape == (37, 45)
    expected = reference_matrix(a, b, variant)
    torch.testing.assert_close(got.double(), expected, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.kernel
@pytest.mark.parametrize("variant", ["iou", "ciou"])
def test_pairwise_overlap_int64_offset_variant(monkeypatch, variant):
    # the INT64 kernel (N * M >= 2**31 pairs) on a small input
    box_iou_ops = importlib.import_module("tritonvision.ops.box_iou")  # the module, not ops.box_iou
    monkeypatch.setattr(box_iou_ops, "needs_int64", lambda *tensors: True)
    a, b = random_boxes(19), random_boxes(70)
    torch.testing.assert_close(PUBLIC[variant](a, b).double(), reference_matrix(a, b, variant),
                               rtol=TOL[torch.float32], atol=TOL[torch.float32])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pairwise_overlap_matches_torchvision(variant, dtype):
    a, b = random_boxes(64, dtype), random_boxes(33, dtype)
    torch.testing.assert_close(PUBLIC[variant](a, b), TORCHVISION[variant](a, b),
                               rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.kernel
@pytest.mark.parametrize("variant", VARIANTS)
def test_aligned_overlap_is_the_diagonal_of_the_matrix(variant):
    a, b = random_boxes(50), random_boxes(50)
    got = T.box_overlap(a, b, variant, aligned=True)
    torch.testing.assert_close(got, T.box_overlap(a, b, variant).diagonal())


@pytest.mark.kernel
@pytest.mark.parametrize("n, m", [(0, 5), (5, 0), (0, 0), (1, 1)])
def test_empty_and_single_box_shapes(n, m):
    a, b = random_boxes(n), random_boxes(m)
    for variant in VARIANTS:
        got = PUBLIC[variant](a, b)
        assert got.shape == (n, m)
        torch.testing.assert_close(got.double(), reference_matrix(a, b, variant), rtol=1e-6, atol=1e-6)


@pytest.mark.kernel
def test_degenerate_boxes_give_zero_overlap_never_nan():
    point = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    line = torch.tensor([[0.0, 1.0, 5.0, 1.0]])
    normal = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    for a, b in [(point, point), (point, normal), (line, line), (line, normal)]:
        assert T.box_iou(a, b).item() == 0.0
        for variant in VARIANTS:
            assert not torch.isnan(PUBLIC[variant](a, b)).any(), variant
    assert T.generalized_box_iou(point, point).item() == 0.0


@pytest.mark.kernel
def test_nan_coordinates_propagate_nan():
    a = random_boxes(4)
    a[1, 2] = float("nan")
    b = random_boxes(3)
    for variant in VARIANTS:
        got = PUBLIC[variant](a, b)
        assert torch.isnan(got[1]).all(), variant
        assert not torch.isnan(got[[0, 2, 3]]).any(), variant


@pytest.mark.kernel
def test_non_contiguous_and_mixed_dtype_inputs():
    a = random_boxes(20, torch.float64)[::2]
    b = random_boxes(10, torch.float64).t().contiguous().t()
    assert not b.is_contiguous()
    expected = reference_matrix(a, b, "iou")
    torch.testing.assert_close(T.box_iou(a, b), expected)
    mixed = T.box_iou(a.float(), b)
    assert mixed.dtype == torch.float64


@pytest.mark.kernel
@settings(deadline=None, max_examples=10 if KERNEL_TEST_MODE else 60)
@given(n=st.integers(1, 12), m=st.integers(1, 12), scale=st.sampled_from([1.0, 100.0, 1e4]),
       seed=st.integers(0, 2**31 - 1))
def test_iou_properties_symmetry_range_and_self_overlap(n, m, scale, seed):
    torch.manual_seed(seed)
    a, b = random_boxes(n, scale=scale), random_boxes(m, scale=scale)
    ab, ba = T.box_iou(a, b), T.box_iou(b, a)
    torch.testing.assert_close(ab, ba.t())
    assert ((ab >= 0) & (ab <= 1)).all()
    torch.testing.assert_close(T.box_iou(a, a).diagonal(), torch.ones(n), rtol=1e-6, atol=1e-6)
    giou = T.generalized_box_iou(a, b)
    assert ((giou >= -1 - 1e-6) & (giou <= ab + 1e-6)).all()


def reference_bitmask(a, b, threshold, upper):
    iou = reference_matrix(a, b, "iou")
    hit = iou > threshold
    if upper:
        hit &= torch.ones_like(hit).triu(1)
    return hit


@pytest.mark.kernel
@pytest.mark.parametrize("m", [1, 31, 32, 33, 64, 65, 130])
@pytest.mark.parametrize("upper", [False, True])
def test_iou_threshold_bitmask_matches_reference_at_word_boundaries(m, upper):
    a, b = random_boxes(m, scale=20.0), random_boxes(m, scale=20.0)
    mask = T.box_iou_threshold(a, b, 0.3, upper=upper)
    assert mask.dtype == torch.int32 and mask.shape == (m, -(-m // 32))
    assert torch.equal(T.unpack_bitmask(mask, m), reference_bitmask(a, b, 0.3, upper))


@pytest.mark.kernel
def test_iou_threshold_bitmask_is_strict_and_batched():
    # two boxes with IoU exactly 0.5: 0.5 > 0.5 is false, so the bit is clear
    a = torch.tensor([[[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]]])
    assert T.unpack_bitmask(T.box_iou_threshold(a, a, 0.5, upper=True), 2).sum() == 0
    assert T.unpack_bitmask(T.box_iou_threshold(a, a, 0.49, upper=True), 2)[0, 0, 1]
    batch_a = torch.stack([random_boxes(40, scale=20.0) for _ in range(3)])
    batch_b = torch.stack([random_boxes(35, scale=20.0) for _ in range(3)])
    masks = T.box_iou_threshold(batch_a, batch_b, 0.2)
    for g in range(3):
        assert torch.equal(T.unpack_bitmask(masks[g], 35), reference_bitmask(batch_a[g], batch_b[g], 0.2, False))


@pytest.mark.kernel
def test_iou_threshold_bitmask_compares_float64_ious_with_the_unrounded_threshold():
    # IoU 7/10 = 0.7 exactly in float64; float32(0.7) < 0.7, so a float32 threshold would set the bit
    a = torch.tensor([[0.0, 0, 10, 1], [0, 0, 7, 1]], dtype=torch.float64)
    assert T.unpack_bitmask(T.box_iou_threshold(a, a, 0.7), 2).tolist() == [[True, False], [False, True]]
    # and random integer boxes (many exact ratios) against the float64 reference at such thresholds
    xy = torch.randint(0, 20, (150, 2)).double()
    boxes = torch.cat([xy, xy + torch.randint(1, 12, (150, 2))], 1)
    for t in (0.1, 0.2, 0.3, 1 / 3, 0.6, 0.7, 0.9):
        mask = T.box_iou_threshold(boxes, boxes, t, upper=True)
        assert torch.equal(T.unpack_bitmask(mask, 150), reference_bitmask(boxes, boxes, t, True)), t


@pytest.mark.parametrize("variant", ["iou", "giou", "diou", "ciou"])
def test_gradients_pass_gradcheck_in_float64(variant):
    a = random_boxes(4, torch.float64)
    b = random_boxes(3, torch.float64)
    if variant == "ciou":
        # CIoU's alpha is a constant in the gradient (as torchvision), so its gradient is the
        # true derivative only where v = 0: boxes of one aspect ratio (2:1). Elsewhere it is
        # compared with torchvision's in test_gradients_match_torchvision.
        a[:, 3] = a[:, 1] + (a[:, 2] - a[:, 0]) / 2
        b[:, 3] = b[:, 1] + (b[:, 2] - b[:, 0]) / 2
    a.requires_grad_()
    b.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: T.box_overlap(x, y, variant), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: T.box_overlap(x, y, variant, aligned=True),
                                    (a, b.detach()[[0, 1, 2, 0]].requires_grad_()))


@pytest.mark.parametrize("variant", ["giou", "diou", "ciou"])
def test_gradients_match_torchvision(variant):
    a = random_boxes(6, torch.float64).requires_grad_()
    b = random_boxes(5, torch.float64).requires_grad_()
    weights = torch.randn(6, 5, dtype=torch.float64)
    ours = torch.autograd.grad((PUBLIC[variant](a, b) * weights).sum(), (a, b))
    theirs = torch.autograd.grad((TORCHVISION[variant](a, b) * weights).sum(), (a, b))
    for g, h in zip(ours, theirs):
        torch.testing.assert_close(g, h)


@pytest.mark.kernel
def test_opcheck_box_overlap_and_bitmask():
    a, b = random_boxes(9), random_boxes(7)
    for variant in range(4):
        torch.library.opcheck(torch.ops.tritonvision.box_overlap.default, (a, b, variant, 1e-7, False))
    torch.library.opcheck(torch.ops.tritonvision.box_overlap.default,
                          (a.double().requires_grad_(), random_boxes(9, torch.float64), 3, 1e-7, True))
    torch.library.opcheck(torch.ops.tritonvision.box_iou_threshold.default, (a[None], b[None], 0.4, True))


class GIoULoss(torch.nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (1 - torch.ops.tritonvision.box_overlap(pred, target, 1, 1e-7, True)).mean()


def test_compile_fullgraph_runs_and_trains():
    pred = random_boxes(16).requires_grad_()
    target = random_boxes(16)

    def step(p, t):
        loss = (1 - T.complete_box_iou(p, t).diagonal()).mean() + T.box_iou(p, t).sum() * 0
        return loss

    compiled = torch.compile(step, fullgraph=True, backend="inductor")
    loss = compiled(pred, target)
    loss.backward()
    expected = step(pred.detach().requires_grad_(), target)
    torch.testing.assert_close(loss, expected)
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_export_and_script_round_trips():
    pred, target = random_boxes(8), random_boxes(8)
    module = GIoULoss()
    expected = (1 - torch.diagonal(tv.generalized_box_iou(pred, target))).mean()
    exported = torch.export.export(module, (pred, target))
    torch.testing.assert_close(exported.module()(pred, target), expected)
    scripted = torch.jit.script(module)
    torch.testing.assert_close(scripted(pred, target), expected)


def test_box_area_and_convert_match_torchvision():
    boxes = random_boxes(10)
    torch.testing.assert_close(T.box_area(boxes), tv.box_area(boxes))
    for fmt in ["xywh", "cxcywh"]:
        converted = T.box_convert(boxes, "xyxy", fmt)
        torch.testing.assert_close(converted, tv.box_convert(boxes, "xyxy", fmt))
        torch.testing.assert_close(T.box_convert(converted, fmt, "xyxy"), boxes)
    torch.testing.assert_close(T.box_convert(T.box_convert(boxes, "xyxy", "xywh"), "xywh", "cxcywh"),
                               tv.box_convert(boxes, "xyxy", "cxcywh"))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"box_overlap: boxes1 must have shape \[N, 4\], got \[10, 5\]"):
        T.box_iou(torch.rand(10, 5), torch.rand(3, 4))
    with pytest.raises(TypeError, match="floating"):
        T.box_iou(torch.ones(2, 4, dtype=torch.int64), torch.rand(3, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        T.box_iou([[0, 0, 1, 1]], torch.rand(3, 4))
    with pytest.raises(ValueError, match="same device"):
        T.box_iou(torch.rand(2, 4), torch.rand(2, 4, device="meta"))
    with pytest.raises(ValueError, match="variant"):
        T.box_overlap(torch.rand(2, 4), torch.rand(2, 4), "eiou")
    with pytest.raises(ValueError, match="aligned"):
        T.box_overlap(torch.rand(2, 4), torch.rand(3, 4), aligned=True)
    with pytest.raises(ValueError, match="box_convert: in_fmt"):
        T.box_convert(torch.rand(2, 4), "xyzw", "xyxy")


@pytest.mark.gpu
def test_gpu_matches_cpu_for_every_variant_and_dtype():
    for dtype in [torch.float32, torch.float16, torch.bfloat16, torch.float64]:
        a, b = random_boxes(300, dtype), random_boxes(257, dtype)
        for variant in VARIANTS:
            got = PUBLIC[variant](a.cuda(), b.cuda()).cpu()
            torch.testing.assert_close(got.double(), PUBLIC[variant](a, b).double(),
                                       rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.gpu
def test_gpu_matrix_beyond_two_to_the_31_elements():
    n = 46_400  # n * n > 2**31
    a = random_boxes(n).cuda()
    out = T.box_iou(a, a)
    rows = torch.tensor([0, n // 2, n - 1])
    expected = tv.box_iou(a[rows].cpu(), a.cpu())
    torch.testing.assert_close(out[rows].cpu(), expected, rtol=1e-6, atol=1e-6)


def _overlap_and_grads(a, b, variant, aligned, weights):
    """box_overlap and the gradients of sum(weights * (1 - overlap)) (the box-loss form)."""
    a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
    overlap = T.box_overlap(a, b, variant, aligned=aligned)
    loss = ((1 - overlap.double()) * weights.to(a.device)).sum()
    return (overlap, *torch.autograd.grad(loss, (a, b)))


@pytest.mark.gpu
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "pairwise"])
def test_gpu_box_losses_and_gradients_match_float64_cpu(variant, dtype, aligned):
    n, m = (3000, 3000) if aligned else (300, 170)
    a, b = random_boxes(n, dtype), random_boxes(m, dtype)
    weights = torch.rand(n) if aligned else torch.rand(n, m)
    got = _overlap_and_grads(a.cuda(), b.cuda(), variant, aligned, weights)
    want = _overlap_and_grads(a.double(), b.double(), variant, aligned, weights)   # same rounded boxes
    assert got[0].dtype == dtype and got[1].dtype == dtype
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3}[dtype]
    for name, mine, theirs in zip(("overlap", "grad_boxes1", "grad_boxes2"), got, want):
        scale = max(1.0, theirs.abs().max().item())
        torch.testing.assert_close(mine.cpu().double() / scale, theirs / scale, atol=tol, rtol=tol, msg=name)
