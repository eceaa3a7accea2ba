"""dice_ce_loss / DiceCELoss against a naive float64 one-hot reference, plus the op contracts.

The reference builds the one-hot target explicitly (what the fused kernels never do),
takes torch.softmax in float64, and writes the cross-entropy by its definition
(label-smoothed target distribution times the class weights). Marked ``kernel`` tests
run the Triton kernels in the interpreter pass (small shapes).
"""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tritonvision.nn import CrossEntropy2d, DiceCELoss, DiceLoss
from tritonvision.ops import dice_ce_loss, dice_ce_stats

from conftest import KERNEL_TEST_MODE


def reference_dice_ce(logits, target, *, include_background=True, smooth_nr=1e-5, smooth_dr=1e-5,
                      squared_pred=False, batch=False, lambda_ce=1.0, lambda_dice=1.0, weight=None,
                      reduction="mean", ignore_index=-100, label_smoothing=0.0):
    """MONAI-style DiceCE in float64 with an explicit one-hot target; ignored pixels zeroed out."""
    x = logits.double()
    num_classes = x.shape[1]
    if target.dim() == x.dim():
        target = target[:, 0]
    valid = (target != ignore_index).unsqueeze(1).double()                      # [B, 1, *sp]
    onehot = F.one_hot(torch.where(target != ignore_index, target, 0).long(), num_classes)
    onehot = onehot.movedim(-1, 1).double() * valid                               # [B, C, *sp]
    prob = x.softmax(1) * valid
    dims = ([0] if batch else []) + list(range(2, x.dim()))
    inter = (prob * onehot).sum(dims)
    pred = (prob ** 2 if squared_pred else prob).sum(dims)
    truth = onehot.sum(dims)
    dice = 1 - (2 * inter + smooth_nr) / (pred + truth + smooth_dr)
    w = torch.ones(num_classes, dtype=torch.float64, device=x.device) if weight is None else weight.double()
    dice_w = w
    if not include_background and num_classes > 1:
        dice, dice_w = dice[..., 1:], w[1:]
    if weight is not None:
        dice = dice * dice_w
    dice = {"mean": dice.mean(), "sum": dice.sum(), "none": dice}[reduction]
    # cross-entropy by definition: q = (1 - eps) onehot + eps / C on valid pixels
    wb = w.reshape((1, -1) + (1,) * (x.dim() - 2))
    q = (1 - label_smoothing) * onehot + label_smoothing / num_classes * valid
    numerator = -(q * wb * torch.where(valid.bool(), x.log_softmax(1), 0.0)).sum()
    denominator = (onehot * wb).sum()
    ce = numerator / denominator if denominator > 0 else x.new_zeros(())
    return lambda_dice * dice + lambda_ce * ce


def reference_sigmoid(logits, target, *, include_background=True, smooth_nr=1e-5, smooth_dr=1e-5,
                      squared_pred=False, batch=False, lambda_ce=1.0, lambda_dice=1.0, weight=None,
                      reduction="mean"):
    """Sigmoid Dice + BCE-with-logits by definition (pos_weight per class along dim 1), float64."""
    x, t = logits.double(), target.double()
    p = torch.sigmoid(x)
    dims = ([0] if batch else []) + list(range(2, x.dim()))
    inter = (p * t).sum(dims)
    pred = (p * p if squared_pred else p).sum(dims)
    truth = (t * t if squared_pred else t).sum(dims)
    dice = 1 - (2 * inter + smooth_nr) / (pred + truth + smooth_dr)
    pw = torch.ones(x.shape[1], dtype=torch.float64) if weight is None else weight.double()
    dice_w = pw
    if not include_background:
        dice, dice_w = dice[..., 1:], pw[1:]
    if weight is not None:
        dice = dice * dice_w
    dice = {"mean": dice.mean(), "sum": dice.sum(), "none": dice}[reduction]
    pwb = pw.reshape((1, -1) + (1,) * (x.dim() - 2))
    bce = -(pwb * t * F.logsigmoid(x) + (1 - t) * F.logsigmoid(-x)).mean()   # log(1 - sigmoid(x)) = logsigmoid(-x)
    return lambda_dice * dice + lambda_ce * bce


def _inputs(shape, num_classes, dtype=torch.float32, ignore_frac=0.2, ignore_index=-100):
    b, spatial = shape[0], tuple(shape[1:])
    logits = (torch.randn((b, num_classes) + spatial) * 2).to(dtype)
    target = torch.randint(0, num_classes, (b,) + spatial)
    target[torch.rand(target.shape) < ignore_frac] = ignore_index
    return logits, target


def _loss_and_grad(fn, logits, target, **kw):
    x = logits.detach().clone().requires_grad_()
    loss = fn(x, target, **kw)
    seed = torch.randn_like(loss) if loss.dim() else torch.ones_like(loss)
    (grad,) = torch.autograd.grad(loss, x, seed.to(loss.dtype))
    return loss, grad, seed


def _assert_matches_float64_reference(logits, target, **opts):
    """Loss and gradient of dice_ce_loss equal the one-hot float64 reference's (float64 logits)."""
    ours, grad, _ = _loss_and_grad(dice_ce_loss, logits, target, **opts)
    ref, ref_grad, _ = _loss_and_grad(reference_dice_ce, logits, target, **opts)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(grad, ref_grad, atol=1e-12, rtol=1e-9)


OPTIONS = [
    dict(),
    dict(include_background=False),
    dict(batch=True, squared_pred=True),
    dict(weight="rand", label_smoothing=0.1),
    dict(weight="rand", include_background=False, reduction="sum", lambda_ce=0.5, lambda_dice=2.0),
    dict(reduction="none", smooth_nr=0.0, smooth_dr=1.0, label_smoothing=0.3),
    dict(reduction="none", batch=True, include_background=False, weight="rand"),
    dict(lambda_dice=0.0, weight="rand", label_smoothing=0.2),
    dict(lambda_ce=0.0, squared_pred=True, ignore_index=4),
]
SHAPES = [(2, 37), (2, 7, 9), (1, 3, 4, 5)]  # 1D, 2D, 3D spatial


def _resolve(opts, num_classes):
    opts = dict(opts)
    if opts.get("weight") == "rand":
        opts["weight"] = torch.rand(num_classes) + 0.1
    return opts


@pytest.mark.kernel
@pytest.mark.parametrize("shape", SHAPES, ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("opts", OPTIONS, ids=[",".join(o) or "default" for o in OPTIONS])
def test_float64_value_and_grad_match_onehot_reference(shape, opts):
    num_classes = 5
    opts = _resolve(opts, num_classes)
    logits, target = _inputs(shape, num_classes, torch.float64, ignore_index=opts.get("ignore_index", -100))
    ours, grad, seed = _loss_and_grad(dice_ce_loss, logits, target, **opts)
    ref, ref_grad, _ = _loss_and_grad(reference_dice_ce, logits, target, **opts)
    assert ours.dtype == torch.float64 and ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-10)
    x = logits.clone().requires_grad_()
    (ref_grad,) = torch.autograd.grad(reference_dice_ce(x, target, **opts), x, seed.double())
    torch.testing.assert_close(grad, ref_grad, atol=1e-12, rtol=1e-9)


TOL = {torch.float32: dict(loss=1e-5, grad=1e-5), torch.float16: dict(loss=1e-5, grad=2e-3),
       torch.bfloat16: dict(loss=1e-5, grad=1e-2), torch.float64: dict(loss=1e-10, grad=1e-10)}


@pytest.mark.kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("opts", [dict(), dict(include_background=False, batch=True, weight="rand",
                                                label_smoothing=0.1, squared_pred=True)])
def test_low_precision_logits_accumulate_in_fp32(dtype, opts):
    """fp16/bf16 logits: the loss (fp32) matches the float64 reference on the same rounded logits;
    the gradient (in the logits' dtype) matches up to its own rounding."""
    num_classes = 6
    opts = _resolve(opts, num_classes)
    logits, target = _inputs((2, 16, 12), num_classes, dtype)
    ours, grad, _ = _loss_and_grad(dice_ce_loss, logits, target, **opts)
    ref, ref_grad, _ = _loss_and_grad(reference_dice_ce, logits.double(), target, **opts)
    assert ours.dtype == torch.float32 and grad.dtype == dtype
    torch.testing.assert_close(ours.double(), ref, atol=TOL[dtype]["loss"], rtol=TOL[dtype]["loss"])
    scale = ref_grad.abs().max().item()
    torch.testing.assert_close(grad.double(), ref_grad, atol=TOL[dtype]["grad"] * scale, rtol=TOL[dtype]["grad"])


@pytest.mark.kernel
def test_hard_predictions_give_the_lecture_set_dice():
    """With saturated softmax and smooth 0, the loss is 1 - 2|A & B| / (|A| + |B|) of the pixel sets."""
    num_classes, h, w = 3, 6, 7
    pred = torch.randint(0, num_classes, (1, h, w))
    target = torch.randint(0, num_classes, (1, h, w))
    target[0, 0, :3] = 0  # classes present in target
    logits = 60.0 * F.one_hot(pred, num_classes).movedim(-1, 1).double()
    expected = []
    for c in range(num_classes):
        a = {(i, j) for i in range(h) for j in range(w) if pred[0, i, j] == c}
        b = {(i, j) for i in range(h) for j in range(w) if target[0, i, j] == c}
        expected.append(1 - 2 * len(a & b) / (len(a) + len(b)) if a or b else float("nan"))
    got = dice_ce_loss(logits, target, lambda_ce=0.0, smooth_nr=0.0, smooth_dr=0.0, reduction="none")
    torch.testing.assert_close(got[0], torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0,
                               equal_nan=True)


@pytest.mark.kernel
def test_cross_entropy2d_equals_torch_cross_entropy():
    num_classes = 7
    logits, target = _inputs((2, 9, 11), num_classes, torch.float64, ignore_index=255)
    target = target.to(torch.uint8)
    weight = torch.rand(num_classes, dtype=torch.float64) + 0.2
    for kw in (dict(), dict(weight=weight), dict(weight=weight, label_smoothing=0.25)):
        x = logits.clone().requires_grad_()
        ours = CrossEntropy2d(ignore_index=255, **kw)(x, target)
        (g,) = torch.autograd.grad(ours, x)
        x2 = logits.clone().requires_grad_()
        ref = F.cross_entropy(x2, target.long(), ignore_index=255, **kw)
        (g2,) = torch.autograd.grad(ref, x2)
        torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(g, g2, atol=1e-12, rtol=1e-9)


@pytest.mark.kernel
def test_ignored_pixels_count_in_neither_term_and_get_zero_grad():
    logits, target = _inputs((2, 8, 8), 4, ignore_frac=0.3, ignore_index=9)
    ignored = (target == 9).unsqueeze(1).expand_as(logits)
    loss, grad, _ = _loss_and_grad(dice_ce_loss, logits, target, ignore_index=9, weight=torch.rand(4))
    assert (grad[ignored] == 0).all() and (grad[~ignored] != 0).any()
    scrambled = torch.where(ignored, torch.randn_like(logits) * 50, logits)
    loss2 = dice_ce_loss(scrambled, target, ignore_index=9, weight=None)
    loss1 = dice_ce_loss(logits, target, ignore_index=9, weight=None)
    torch.testing.assert_close(loss1, loss2, atol=1e-6, rtol=1e-6)


@pytest.mark.kernel
def test_every_pixel_ignored_gives_zero_loss_and_zero_grad():
    logits = torch.randn(2, 3, 4, 5)
    target = torch.full((2, 4, 5), -100)
    loss, grad, _ = _loss_and_grad(dice_ce_loss, logits, target)
    # CE: 0 (torch gives NaN); Dice: 1 - smooth_nr / smooth_dr = 0 for every class
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    assert (grad == 0).all()


@pytest.mark.kernel
def test_empty_spatial_and_single_pixel():
    logits = torch.randn(2, 3, 0, 4, requires_grad=True)
    target = torch.zeros(2, 0, 4, dtype=torch.long)
    loss = dice_ce_loss(logits, target)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-7) and logits.grad.shape == logits.shape
    one, t1 = torch.randn(1, 4, 1, 1, dtype=torch.float64), torch.tensor([[[2]]])
    torch.testing.assert_close(dice_ce_loss(one, t1, include_background=False), reference_dice_ce(
        one, t1, include_background=False), atol=1e-12, rtol=1e-10)


@pytest.mark.kernel
def test_single_class_softmax_is_constant_and_background_flag_ignored():
    """C == 1: p == 1 and every valid label is 0, so I = P = G, the Dice term is 0 even with
    smooth 0, and the CE is 0; as MONAI, include_background=False is ignored with one channel."""
    logits = torch.randn(2, 1, 5, 4, dtype=torch.float64)
    target = torch.zeros(2, 5, 4, dtype=torch.long)
    target[1, :2] = -100
    for ib in (True, False):
        got = dice_ce_loss(logits, target, include_background=ib, smooth_nr=0, smooth_dr=0, reduction="none")
        expected = torch.zeros(2, 1, dtype=torch.float64)
        torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


@pytest.mark.kernel
def test_non_contiguous_logits_int32_and_channel_targets():
    num_classes = 5
    logits, target = _inputs((2, 6, 10), num_classes, torch.float64)
    channels_last = logits.contiguous(memory_format=torch.channels_last)
    transposed = logits.transpose(2, 3).contiguous().transpose(2, 3)
    ref = reference_dice_ce(logits, target, include_background=False)
    for x in (channels_last, transposed):
        for t in (target.int(), target[:, None]):
            torch.testing.assert_close(dice_ce_loss(x, t, include_background=False), ref, atol=1e-12, rtol=1e-10)


@pytest.mark.kernel
@pytest.mark.parametrize("num_classes", [1, 2, 150, 300])
def test_class_counts(num_classes):
    """One register tile up to MAX_TRITON_CLASSES (150 and 300 pad to 256 and 512)."""
    logits, target = _inputs((2, 5, 3), num_classes, torch.float64)
    opts = dict(weight=torch.rand(num_classes) + 0.1, label_smoothing=0.1, include_background=False)
    _assert_matches_float64_reference(logits, target, **opts)


@pytest.mark.kernel
def test_several_tiles_per_program_and_batch_chunks(monkeypatch):
    """Force tiny tiles, few programs and a 1-sample grid limit, so the kernel's strided tile
    loop and the host's batch chunking both run (the GPU sizes need them)."""
    import tritonvision.ops.dice_ce as module
    monkeypatch.setitem(module.TILE_ELEMENTS, torch.float64, 64)
    monkeypatch.setattr(module, "PROGRAMS", 6)
    monkeypatch.setattr(module, "MAX_GRID_Y", 1)
    logits, target = _inputs((3, 5, 7), 5, torch.float64)   # 35 pixels, 5 tiles of 8, 3 at most per program
    opts = dict(label_smoothing=0.1, squared_pred=True)
    _assert_matches_float64_reference(logits, target, **opts)


@pytest.mark.kernel
def test_backward_op_masks_out_of_range_labels():
    """Called directly (no validating forward), the backward never indexes with a bad label:
    those pixels get zero gradient, the others the gradient they would get if ignored."""
    logits, target = _inputs((1, 4, 4), 3, torch.float64, ignore_frac=0.0)
    bad = target.clone()
    bad[0, 1, :] = 7
    bad[0, 2, :2] = -5
    grad_stats = torch.randn(1, 5, 3, dtype=torch.float64)
    got = torch.ops.tritonvision.dice_ce_stats_backward(logits, bad, grad_stats, -100, False)
    ignored = torch.where((bad < 0) | (bad >= 3), -100, bad)
    expected = torch.ops.tritonvision.dice_ce_stats_backward(logits, ignored, grad_stats, -100, False)
    assert (got[0, :, 1] == 0).all() and (got[0, :, 2, :2] == 0).all()
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_many_classes_fall_back_to_torch_path():
    num_classes = 1100
    logits, target = _inputs((1, 3, 2), num_classes, torch.float64)
    _assert_matches_float64_reference(logits, target)


@pytest.mark.kernel
def test_deterministic_bitwise():
    logits, target = _inputs((3, 20, 17), 21, torch.float32)
    a = _loss_and_grad(dice_ce_loss, logits, target, batch=True)
    b = _loss_and_grad(dice_ce_loss, logits, target, batch=True)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.kernel
def test_nan_logit_gives_nan_loss():
    logits, target = _inputs((1, 4, 4), 3, ignore_frac=0.0)
    logits[0, 1, 2, 2] = float("nan")
    assert torch.isnan(dice_ce_loss(logits, target))


@pytest.mark.kernel
def test_stats_are_the_documented_sums():
    logits, target = _inputs((2, 5, 6), 4, torch.float64)
    stats = dice_ce_stats(logits, target, squared_pred=True)
    valid = (target != -100)
    for b in range(2):
        for c in range(4):
            p = logits[b].softmax(0)[c][valid[b]]
            lp = logits[b].log_softmax(0)[c][valid[b]]
            hit = target[b][valid[b]] == c
            expected = torch.stack([p[hit].sum(), (p * p).sum(), hit.sum().double(), -lp[hit].sum(), -lp.sum()])
            torch.testing.assert_close(stats[b, :, c], expected, atol=1e-12, rtol=1e-10)


# ----------------------------------------------------------------------------- sigmoid form
@pytest.mark.kernel
@pytest.mark.parametrize("opts", [dict(), dict(include_background=False, weight="rand", squared_pred=True),
                                  dict(batch=True, reduction="none", lambda_ce=0.3)])
@pytest.mark.parametrize("shape", [(2, 3, 9), (2, 3, 5, 6), (1, 2, 3, 4, 5)], ids=["1d", "2d", "3d"])
def test_sigmoid_multilabel_matches_reference(opts, shape):
    opts = _resolve(opts, shape[1])
    logits = torch.randn(shape, dtype=torch.float64)
    target = (torch.rand(shape) < 0.4).double()
    ours, grad, seed = _loss_and_grad(dice_ce_loss, logits, target, sigmoid=True, **opts)
    x = logits.clone().requires_grad_()
    ref = reference_sigmoid(x, target, **opts)
    (ref_grad,) = torch.autograd.grad(ref, x, seed.double())
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(grad, ref_grad, atol=1e-12, rtol=1e-9)


@pytest.mark.kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sigmoid_low_precision_and_soft_targets(dtype):
    shape = (2, 3, 7, 9)
    logits = (torch.randn(shape) * 3).to(dtype)
    target = torch.rand(shape)                      # soft labels are allowed
    opts = dict(weight=torch.rand(3) + 0.5, batch=True)
    ours, grad, _ = _loss_and_grad(dice_ce_loss, logits, target, sigmoid=True, **opts)
    ref, ref_grad, _ = _loss_and_grad(reference_sigmoid, logits.double(), target, **opts)
    assert ours.dtype == torch.float32 and grad.dtype == dtype
    torch.testing.assert_close(ours.double(), ref, atol=1e-5, rtol=1e-5)
    tol = TOL[dtype]["grad"]
    torch.testing.assert_close(grad.double(), ref_grad, atol=tol * ref_grad.abs().max().item(), rtol=tol)


@pytest.mark.kernel
def test_sigmoid_empty_and_saturated_logits():
    empty = torch.randn(2, 3, 0, requires_grad=True)
    loss = dice_ce_loss(empty, torch.zeros(2, 3, 0), sigmoid=True)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    big = torch.tensor([[[-200.0, 200.0, 0.0]]], dtype=torch.float64)
    t = torch.tensor([[[0.0, 1.0, 1.0]]], dtype=torch.float64)
    torch.testing.assert_close(dice_ce_loss(big, t, sigmoid=True), reference_sigmoid(big, t), atol=1e-12, rtol=1e-10)


# ----------------------------------------------------------------------------- errors
@pytest.mark.kernel
@pytest.mark.parametrize("bad_label", [5, -1, 300])
def test_out_of_range_label_raises_before_launch(bad_label):
    logits, target = _inputs((2, 4, 4), 5, ignore_frac=0.0)
    target[1, 2, 3] = bad_label
    with pytest.raises(ValueError, match=rf"dice_ce_loss: target has label {bad_label} but logits have 5 classes"):
        dice_ce_loss(logits, target)
    target[1, 2, 3] = 255
    with pytest.raises(ValueError, match="set ignore_index=255"):
        DiceCELoss()(logits, target.to(torch.uint8))
    assert torch.isfinite(DiceCELoss(ignore_index=255)(logits, target))


def _labels(*shape):
    return torch.zeros(shape, dtype=torch.long)


BAD_INPUTS = [  # logits, target, options, error, message
    (torch.randint(0, 3, (2, 3, 4, 4)), _labels(2, 4, 4), {}, TypeError, "logits must be a floating"),
    (torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4), {}, TypeError, "target must be an integer tensor"),
    (torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool), {}, TypeError, "integer tensor"),
    (torch.randn(2, 3, 4, 4), _labels(2, 4, 5), {}, ValueError,
     r"target must have shape \[B, \*spatial\] = \[2, 4, 4\]"),
    (torch.randn(2, 3, 4, 4), _labels(3, 4, 4), {}, ValueError, "target must have shape"),
    (torch.randn(2, 3), _labels(2), {}, ValueError, "logits must have shape"),
    (torch.randn(2, 3, 4), _labels(2, 4), dict(weight=torch.ones(4)), ValueError, "weight must have shape"),
    (torch.randn(2, 3, 4), _labels(2, 4), dict(reduction="avg"), ValueError, "reduction must be one of"),
    (torch.randn(2, 3, 4), _labels(2, 4), dict(label_smoothing=1.5), ValueError, "label_smoothing"),
    (torch.randn(2, 3, 4), _labels(2, 4), dict(lambda_ce=-1.0), ValueError, "lambda"),
    (torch.randn(2, 3, 4), _labels(2, 3, 4), dict(sigmoid=True), TypeError, "float mask"),
    (torch.randn(2, 3, 4), torch.zeros(2, 4), dict(sigmoid=True), ValueError, "logits' shape"),
    (torch.randn(2, 3, 4), torch.zeros(2, 3, 4), dict(sigmoid=True, label_smoothing=0.1), ValueError,
     "label_smoothing"),
]


@pytest.mark.parametrize("logits,target,kw,error,match", BAD_INPUTS)
def test_bad_input_gives_clear_error(logits, target, kw, error, match):
    with pytest.raises(error, match=match):
        dice_ce_loss(logits, target, **kw)


def test_non_tensor_and_device_mismatch_errors():
    logits = torch.randn(1, 3, 4)
    with pytest.raises(TypeError, match="dice_ce_loss: target must be a torch.Tensor"):
        dice_ce_loss(logits, [0, 1, 2, 0])
    with pytest.raises(ValueError, match="same device"):
        dice_ce_loss(logits, torch.zeros(1, 4, dtype=torch.long, device="meta"))


# ----------------------------------------------------------------------------- modules
def test_modules_wrap_the_function():
    num_classes = 4
    logits, target = _inputs((2, 6, 6), num_classes, torch.float64)
    w = [0.5, 1.0, 2.0, 1.5]
    loss_fn = DiceCELoss(include_background=False, weight=w, batch=True, label_smoothing=0.1)
    assert isinstance(loss_fn.weight, torch.Tensor) and "weight" in dict(loss_fn.named_buffers())
    expected = reference_dice_ce(logits, target, include_background=False, weight=torch.tensor(w), batch=True,
                                 label_smoothing=0.1)
    torch.testing.assert_close(loss_fn.double()(logits, target), expected, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(DiceLoss(squared_pred=True)(logits, target),
                               reference_dice_ce(logits, target, squared_pred=True, lambda_ce=0.0),
                               atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(CrossEntropy2d()(logits, target), F.cross_entropy(logits, target),
                               atol=1e-12, rtol=1e-10)


@settings(deadline=None, max_examples=15)
@given(b=st.integers(1, 3), c=st.integers(1, 9), h=st.integers(1, 7), w=st.integers(1, 7),
       batch=st.booleans(), ib=st.booleans(), squared=st.booleans(), smoothing=st.sampled_from([0.0, 0.3]),
       ignore=st.floats(0.0, 1.0), seed=st.integers(0, 2 ** 31 - 1))
def test_random_shapes_match_reference(b, c, h, w, batch, ib, squared, smoothing, ignore, seed):
    torch.manual_seed(seed)
    logits, target = _inputs((b, h, w), c, torch.float64, ignore_frac=ignore)
    opts = dict(batch=batch, include_background=ib, squared_pred=squared, label_smoothing=smoothing,
                weight=torch.rand(c) + 0.1)
    _assert_matches_float64_reference(logits, target, **opts)


# ----------------------------------------------------------------------------- op contracts
@pytest.mark.kernel
def test_opcheck():
    logits, target = _inputs((2, 5, 3), 4)
    torch.library.opcheck(torch.ops.tritonvision.dice_ce_stats.default,
                          (logits.requires_grad_(), torch.where(target < 0, 2, target).int(), 2, True))
    torch.library.opcheck(torch.ops.tritonvision.dice_ce_stats_backward.default,
                          (logits.detach(), target, torch.randn(2, 5, 4), -100, True))
    x = logits.detach().movedim(-1, 1).contiguous()                      # [2, 3, 4, 5]
    mask = torch.rand_like(x)
    torch.library.opcheck(torch.ops.tritonvision.sigmoid_dice_bce_stats.default,
                          (x.clone().requires_grad_(), mask, True))
    torch.library.opcheck(torch.ops.tritonvision.sigmoid_dice_bce_stats_backward.default,
                          (x, mask, torch.randn(2, 5, 3), False))


@pytest.mark.kernel
def test_gradcheck_float64():
    logits, target = _inputs((2, 3, 2), 3, torch.float64)
    weight = torch.rand(3, dtype=torch.float64) + 0.1
    x = logits.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: dice_ce_loss(t, target, weight=weight, label_smoothing=0.2, squared_pred=True,
                               include_background=False, reduction="none"), (x,), fast_mode=True)
    mask = torch.rand(logits.shape, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda t: dice_ce_loss(t, mask, weight=weight, squared_pred=True, sigmoid=True, reduction="none"),
        (x,), fast_mode=True)


class _Net(nn.Module):
    """A per-class scale and bias as the 'head' (cheap to compile), then the loss module."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.rand(5, 1, 1) + 0.5)
        self.bias = nn.Parameter(torch.randn(5, 1, 1))
        self.loss = DiceCELoss(include_background=False, weight=torch.rand(5) + 0.1, ignore_index=255)

    def forward(self, features, target):
        return self.loss(features * self.scale + self.bias, target)


@pytest.mark.kernel
def test_compile_fullgraph_forward_and_backward():
    """Inductor in the normal pass; in the interpreter pass aot_eager (the same dynamo trace and
    AOT-autograd graphs over the fake implementations, then the real Triton kernels) -- inductor's
    C++ build costs many seconds of CPU and says nothing more about the kernel."""
    torch._dynamo.reset()
    model = _Net()
    image = torch.randn(2, 5, 6, 5)
    target = torch.randint(0, 5, (2, 6, 5))
    target[0, 0] = 255
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager" if KERNEL_TEST_MODE else "inductor")
    loss = compiled(image, target)
    loss.backward()
    grad = model.scale.grad.clone()
    model.zero_grad()
    expected = model(image, target)
    expected.backward()
    torch.testing.assert_close(loss, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(grad, model.scale.grad, atol=1e-6, rtol=1e-5)
    target[1, 2, 3] = 7                                  # the compiled graph still validates labels
    with pytest.raises(ValueError, match="target has label 7 but logits have 5 classes"):
        compiled(image, target)


@pytest.mark.kernel
def test_export_round_trip():
    model = _Net()
    image = torch.randn(2, 5, 6, 5)
    target = torch.randint(0, 5, (2, 6, 5))
    exported = torch.export.export(model, (image, target))
    assert any("dice_ce_stats" in str(n.target) for n in exported.graph.nodes)
    torch.testing.assert_close(exported.module()(image, target), model(image, target), atol=1e-6, rtol=1e-6)


class _Scripted(nn.Module):
    """TorchScript sees the registered op directly (the public function has keyword-only options)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        stats = torch.ops.tritonvision.dice_ce_stats(logits, target, -100, False)
        inter, pred, truth = stats[:, 0], stats[:, 1], stats[:, 2]
        dice = 1.0 - (2.0 * inter + 1e-5) / (pred + truth + 1e-5)
        return dice.mean() + stats[:, 3].sum() / truth.sum()


@pytest.mark.kernel
def test_torchscript_round_trip():
    logits, target = _inputs((2, 5, 4), 3)
    scripted = torch.jit.script(_Scripted())
    x = logits.clone().requires_grad_()
    got = scripted(x, target)
    got.backward()
    expected = reference_dice_ce(logits, target)
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-5)
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------------- GPU
def _assert_close_to_reference(ours, grad, ref, ref_grad, dtype, loss_tol=None):
    """Loss and gradient against the float64 reference, the gradient relative to its largest entry
    plus one subnormal step of its dtype (a mean over 10^5 pixels gives fp16 gradients of ~1e-6,
    below fp16's normal range, where its absolute resolution is 2^-24)."""
    tol = TOL[dtype]
    loss_tol = loss_tol or tol["loss"]
    torch.testing.assert_close(ours.double().cpu(), ref, atol=loss_tol, rtol=loss_tol)
    scale = ref_grad.abs().max().item()
    subnormal_step = torch.finfo(grad.dtype).smallest_normal * torch.finfo(grad.dtype).eps
    torch.testing.assert_close(grad.double().cpu(), ref_grad, atol=tol["grad"] * scale + subnormal_step,
                               rtol=tol["grad"])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("b,c", [(8, 21), (2, 150)])
def test_gpu_full_size_matches_reference_and_is_deterministic(dtype, b, c):
    logits, target = _inputs((b, 256, 256), c, dtype, ignore_index=255)
    weight = torch.rand(c) + 0.1
    opts = dict(include_background=False, ignore_index=255)
    ours, grad, _ = _loss_and_grad(dice_ce_loss, logits.cuda(), target.cuda(), weight=weight.cuda(), **opts)
    again, grad2, _ = _loss_and_grad(dice_ce_loss, logits.cuda(), target.cuda(), weight=weight.cuda(), **opts)
    assert torch.equal(ours, again) and torch.equal(grad, grad2)
    assert grad.dtype == dtype and ours.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    ref, ref_grad, _ = _loss_and_grad(reference_dice_ce, logits.double(), target, weight=weight, **opts)
    _assert_close_to_reference(ours, grad, ref, ref_grad, dtype, loss_tol=1e-10 if dtype == torch.float64 else 1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_gpu_sigmoid_dice_matches_float64_reference(dtype):
    shape = (4, 5, 96, 80)
    logits = (torch.randn(shape) * 3).to(dtype)
    target = (torch.rand(shape) < 0.3).float()
    target[0] = torch.rand(shape[1:])                             # soft labels in one sample
    weight = torch.rand(shape[1]) + 0.5
    for opts in (dict(), dict(include_background=False, squared_pred=True, batch=True)):
        ours, grad, _ = _loss_and_grad(dice_ce_loss, logits.cuda(), target.cuda(), sigmoid=True,
                                       weight=weight.cuda(), **opts)
        ref, ref_grad, _ = _loss_and_grad(reference_sigmoid, logits.double(), target, weight=weight, **opts)
        _assert_close_to_reference(ours, grad, ref, ref_grad, dtype)


def _loss_case(sigmoid: bool, b: int = 4, c: int = 6, h: int = 64, w: int = 48):
    """(logits, target, options) on CPU: the softmax form with ignored pixels and class weights,
    or the sigmoid form with a mask and per-class pos_weight."""
    if sigmoid:
        logits = torch.randn(b, c, h, w) * 2
        return logits, (torch.rand(b, c, h, w) < 0.3).float(), dict(sigmoid=True, weight=torch.rand(c) + 0.5)
    logits, target = _inputs((b, h, w), c, ignore_index=255)
    return logits, target, dict(ignore_index=255, weight=torch.rand(c) + 0.1, include_background=False)


def _on_cuda(opts: dict) -> dict:
    return {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in opts.items()}


@pytest.mark.gpu
@pytest.mark.parametrize("sigmoid", [False, True], ids=["softmax", "sigmoid"])
def test_gpu_loss_forward_backward_is_sync_free_and_graph_capturable(sigmoid):
    from conftest import capture, no_host_sync

    logits, target, opts = _loss_case(sigmoid)
    reference = reference_sigmoid if sigmoid else reference_dice_ce
    ref_opts = {k: v for k, v in opts.items() if k != "sigmoid"}
    x, t, cuda_opts = logits.cuda().requires_grad_(), target.cuda(), _on_cuda(opts)

    def step():  # the loss is returned detached: a graph kept alive across steps would keep x's
        # AccumulateGrad node on the stream it was made on, which breaks the capture
        loss = dice_ce_loss(x, t, **cuda_opts)
        return loss.detach(), torch.autograd.grad(loss, x)[0]
    step()                                                       # warm up (Triton compiles)
    torch.cuda.synchronize()
    with no_host_sync():
        loss, grad = step()
    ref, ref_grad, _ = _loss_and_grad(reference, logits.double(), target, **ref_opts)
    _assert_close_to_reference(loss, grad, ref, ref_grad, torch.float32)

    graph, (static_loss, static_grad) = capture(step)
    fresh_logits, fresh_target, _ = _loss_case(sigmoid)
    with torch.no_grad():
        x.copy_(fresh_logits)
    t.copy_(fresh_target)
    graph.replay()
    torch.cuda.synchronize()
    ref, ref_grad, _ = _loss_and_grad(reference, fresh_logits.double(), fresh_target, **ref_opts)
    _assert_close_to_reference(static_loss, static_grad, ref, ref_grad, torch.float32)


BAD_LABEL_ON_CUDA = """
import torch
from tritonvision.ops import dice_ce_loss
logits = torch.randn(2, 3, 8, 8, device="cuda")
target = torch.randint(0, 3, (2, 8, 8), device="cuda")
dice_ce_loss(logits, target)                                     # warm up
torch.cuda.synchronize()
target[1, 4, 4] = 7
torch.cuda.set_sync_debug_mode("error")
loss = dice_ce_loss(logits, target)
torch.cuda.set_sync_debug_mode("default")
print(float(loss))
"""


@pytest.mark.gpu
def test_gpu_bad_label_fails_a_device_side_assertion_without_a_sync():
    from conftest import run_expecting_device_assert
    run_expecting_device_assert(BAD_LABEL_ON_CUDA)


@pytest.mark.gpu
def test_gpu_peak_memory_has_no_one_hot():
    b, c, h, w = 4, 64, 256, 256
    logits = torch.randn(b, c, h, w, device="cuda", requires_grad=True)
    target = torch.randint(0, c, (b, h, w), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    dice_ce_loss(logits, target).backward()
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    # the gradient itself (b*c*h*w*4 bytes) plus small per-program sums; a one-hot would double it
    assert extra < 1.25 * logits.numel() * 4, extra
