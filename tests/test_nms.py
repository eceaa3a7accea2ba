"""nms, batched_nms, batched_nms_padded: exactly torchvision's kept indices.

The anchor is torchvision's CPU kernel (the spec: greedy, IoU > threshold
strictly, stable descending score order), plus a naive float64 greedy written
here for the lecture's worked example. Kernel-marked tests run the Triton
kernels under TRITON_INTERPRET=1 (CI's second pass) and the CPU scan otherwise.
"""
from __future__ import annotations

import importlib
import math
import os

import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritonvision.ops import batched_nms, batched_nms_padded, nms

nms_module = importlib.import_module("tritonvision.ops.nms")

KERNEL_TEST_MODE = os.environ.get("TRITON_INTERPRET", "0") == "1"
EXAMPLES = 25 if KERNEL_TEST_MODE else 60
HYPOTHESIS = settings(deadline=None, max_examples=EXAMPLES,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
HYPOTHESIS_BATCHED = settings(HYPOTHESIS, max_examples=12 if KERNEL_TEST_MODE else 50)
WORD_BOUNDARIES = [31, 32, 33, 64, 65, 128]


def random_boxes(n: int, spread: float = 100.0, size: float = 40.0, generator=None,
                 dtype=torch.float32) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator, dtype=torch.float64) * spread
    wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size + 1
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


def random_scores(n: int, distinct: int | None, generator=None) -> torch.Tensor:
    """Scores in (0, 1); with ``distinct`` only that many values, so many exact ties."""
    if distinct is None:
        return torch.rand(n, generator=generator)
    return torch.randint(0, distinct, (n,), generator=generator).float() / distinct


def naive_nms_float64(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    """The lecture's loop, in Python floats: pick the best remaining, drop IoU > threshold."""
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union
    remaining = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    while remaining:
        best = remaining.pop(0)
        kept.append(best)
        remaining = [j for j in remaining if not iou(boxes[best], boxes[j]) > threshold]
    return kept


# ----------------------------------------------------------------------------- nms
@pytest.mark.kernel
@HYPOTHESIS
@given(n=st.sampled_from([0, 1, 2, 7] + WORD_BOUNDARIES),
       spread=st.sampled_from([10.0, 60.0, 300.0]),
       distinct=st.sampled_from([None, 3, 20]),
       threshold=st.one_of(st.sampled_from([0.0, 0.5, 0.7, 1.0]), st.floats(0.0, 1.0)),
       dtype=st.sampled_from([torch.float32, torch.float64]),
       seed=st.integers(0, 2**31 - 1))
def test_nms_matches_torchvision(n, spread, distinct, threshold, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(n, spread, generator=g, dtype=dtype)
    scores = random_scores(n, distinct, generator=g).to(dtype)
    expected = torchvision.ops.nms(boxes, scores, threshold)
    assert torch.equal(nms(boxes, scores, threshold), expected)


@pytest.mark.kernel
@pytest.mark.parametrize("n", WORD_BOUNDARIES)
def test_nms_word_boundaries_heavy_overlap(n):
    boxes = random_boxes(n, spread=15.0)
    scores = random_scores(n, 4)
    for threshold in (0.0, 0.4, 0.9):
        assert torch.equal(nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold))


@pytest.mark.kernel
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_nms_half_precision_equals_float32_upcast(dtype):
    # torchvision's CPU kernel rejects float16/bfloat16; ours compares their float32 values
    boxes = random_boxes(65, spread=40.0).to(dtype)
    scores = random_scores(65, 10).to(dtype)
    kept = nms(boxes, scores, 0.5)
    assert kept.dtype == torch.int64
    assert torch.equal(kept, torchvision.ops.nms(boxes.float(), scores.float(), 0.5))


@pytest.mark.kernel
def test_nms_empty_and_single_box():
    empty = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.int64
    assert nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([0.3]), 0.5).tolist() == [0]


@pytest.mark.kernel
def test_nms_keeps_lower_index_on_equal_scores():
    box = [10.0, 10.0, 20.0, 20.0]
    boxes = torch.tensor([[0.0, 0, 1, 1], box, box, box])
    scores = torch.tensor([0.1, 0.5, 0.5, 0.5])
    assert nms(boxes, scores, 0.5).tolist() == [1, 0]


@pytest.mark.kernel
def test_nms_lecture_worked_example():
    """One best box and three others with IoU 0.78, 0.05, 0.07 against it; threshold 0.7."""
    def shift_for(iou):  # a 100 x 100 square shifted by d: IoU with the original (100 - d) / (100 + d)
        return 100.0 * (1 - iou) / (1 + iou)
    blue = [0.0, 0.0, 100.0, 100.0]
    orange = [shift_for(0.78), 0.0, 100.0 + shift_for(0.78), 100.0]
    purple = [-shift_for(0.05), 0.0, 100.0 - shift_for(0.05), 100.0]
    yellow = [0.0, shift_for(0.07), 100.0, 100.0 + shift_for(0.07)]
    boxes = [blue, orange, purple, yellow]
    ious = torchvision.ops.box_iou(torch.tensor(boxes, dtype=torch.float64)[:1],
                                   torch.tensor(boxes, dtype=torch.float64))[0, 1:]
    assert torch.allclose(ious, torch.tensor([0.78, 0.05, 0.07], dtype=torch.float64), atol=1e-9)
    scores = [0.9, 0.8, 0.75, 0.6]
    assert naive_nms_float64(boxes, scores, 0.7) == [0, 2, 3]
    kept = nms(torch.tensor(boxes), torch.tensor(scores), 0.7)
    assert kept.tolist() == [0, 2, 3]                       # orange (0.78 > 0.7) suppressed


@pytest.mark.kernel
def test_nms_nan_scores_sort_first_like_torchvision():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]])
    nan = float("nan")
    for scores in ([0.5, nan, 0.9, 0.1], [nan, 0.5, nan, 0.2], [nan, nan, nan, nan]):
        scores = torch.tensor(scores)
        expected = torchvision.ops.nms(boxes, scores, 0.5)
        assert torch.equal(nms(boxes, scores, 0.5), expected)
    # a NaN score outranks every number: box 1 is kept and suppresses boxes 0 and 2
    assert nms(boxes, torch.tensor([0.5, nan, 0.9, 0.1]), 0.5).tolist() == [1, 3]


@pytest.mark.kernel
@pytest.mark.parametrize("threshold", [-0.5, 0.0, 0.5, 1.0, 1.5, float("nan")])
def test_nms_degenerate_boxes_match_torchvision(threshold):
    nan = float("nan")
    boxes = torch.tensor([
        [0.0, 0, 0, 0], [0, 0, 0, 0],          # zero area: IoU 0/0 = NaN, never suppress
        [5, 5, 1, 1], [5, 5, 1, 1],             # inverted: positive signed area, no intersection
        [0, 0, 10, 0], [2, 2, 2, 9],            # zero width / height
        [0, 0, 10, 10], [0, 0, 10, 10],         # identical
        [nan, 0, 10, 10], [0, 0, 10, nan],      # NaN coordinates: never suppress, never suppressed
        [3, 3, 8, 8], [-5, -5, 5, 5],
    ])
    scores = torch.linspace(1.0, 0.1, boxes.shape[0])
    expected = torchvision.ops.nms(boxes, scores, threshold)
    assert torch.equal(nms(boxes, scores, threshold), expected)
    shuffled = torch.randperm(boxes.shape[0])
    assert torch.equal(nms(boxes[shuffled], scores[shuffled], threshold),
                       torchvision.ops.nms(boxes[shuffled], scores[shuffled], threshold))


def test_nms_zero_area_pair_survives_negative_threshold():
    # torchvision: IoU of two empty boxes is 0/0 = NaN, so not > -0.5: both kept
    boxes = torch.zeros(2, 4)
    assert nms(boxes, torch.tensor([0.9, 0.8]), -0.5).tolist() == [0, 1]
    # while an ordinary disjoint pair has IoU 0 > -0.5: suppressed
    boxes = torch.tensor([[0.0, 0, 1, 1], [5, 5, 6, 6]])
    assert nms(boxes, torch.tensor([0.9, 0.8]), -0.5).tolist() == [0]


def test_nms_threshold_rounding_matches_torchvision():
    # IoU = 0.3 exactly in float32 rounding: torchvision compares it with the double 0.3
    boxes = torch.tensor([[0.0, 0, 13, 10], [3, 0, 16, 10]])   # inter 100, union 160: 0.625
    for t in (0.3, 0.625, float(torch.tensor(0.625).nextafter(torch.tensor(0.0))), 0.1 + 0.2):
        assert torch.equal(nms(boxes, torch.tensor([0.9, 0.8]), t),
                           torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), t))
    g = torch.Generator().manual_seed(0)
    boxes = torch.randint(0, 20, (200, 2), generator=g).float()
    boxes = torch.cat([boxes, boxes + torch.randint(1, 12, (200, 2), generator=g)], dim=1)
    scores = torch.rand(200, generator=g)
    for t in (0.1, 0.2, 0.3, 1 / 3, 0.4, 0.6, 0.7, 0.9):                # integer boxes: many exact ratios
        assert torch.equal(nms(boxes, scores, t), torchvision.ops.nms(boxes, scores, t))


@pytest.mark.kernel
def test_float64_nms_compares_with_the_unrounded_threshold():
    # IoU 7/10 = 0.7 exactly in float64: not above 0.7, so torchvision keeps both boxes
    # (a threshold rounded to float32, 0.699999988, would suppress box 1)
    boxes = torch.tensor([[0.0, 0, 10, 1], [0, 0, 7, 1]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8], dtype=torch.float64)
    assert torchvision.ops.nms(boxes, scores, 0.7).tolist() == [0, 1]
    assert nms(boxes, scores, 0.7).tolist() == [0, 1]
    assert torch.ops.tritonvision.batched_nms(boxes, scores, torch.zeros(2, dtype=torch.int64), 0.7).tolist() == [0, 1]
    assert batched_nms_padded(boxes[None], scores[None], 0.7, 0.0, 4)[4].tolist() == [2]
    xy = torch.randint(0, 20, (200, 2)).double()
    boxes = torch.cat([xy, xy + torch.randint(1, 12, (200, 2))], dim=1)   # integer boxes: exact ratios
    scores = torch.rand(200, dtype=torch.float64)
    for t in (0.1, 0.2, 0.3, 1 / 3, 0.4, 0.6, 0.7, 0.9):
        assert torch.equal(nms(boxes, scores, t), torchvision.ops.nms(boxes, scores, t)), t


def test_nms_large_cpu_input_matches_torchvision():
    for spread in (200.0, 2000.0):
        boxes = random_boxes(3000, spread=spread, size=100.0)
        scores = random_scores(3000, 50)
        assert torch.equal(nms(boxes, scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))


@settings(HYPOTHESIS, max_examples=40)
@given(n=st.sampled_from([9, 30, 64, 100]),
       classes=st.sampled_from([1, 4]),
       distinct=st.sampled_from([None, 6]),
       threshold=st.sampled_from([-0.5, 0.0, 0.3, 0.6]),
       seed=st.integers(0, 2**31 - 1))
def test_cpu_scan_across_many_blocks(n, classes, distinct, threshold, seed):
    """The CPU scan resolves CPU_BLOCK boxes at a time; shrink the block so small inputs
    cross many block boundaries (plain and per-class, dense and sparse scenes)."""
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(n, spread=float(torch.randint(10, 200, (1,), generator=g)), generator=g)
    scores = random_scores(n, distinct, generator=g)
    idxs = torch.randint(0, classes, (n,), generator=g)
    block = nms_module.CPU_BLOCK
    nms_module.CPU_BLOCK = int(torch.randint(1, 12, (1,), generator=g))
    try:
        got_nms = nms(boxes, scores, threshold)
        got_batched = torch.ops.tritonvision.batched_nms(boxes, scores, idxs, threshold)
    finally:
        nms_module.CPU_BLOCK = block
    assert torch.equal(got_nms, torchvision.ops.nms(boxes, scores, threshold))
    assert torch.equal(got_batched, per_class_reference(boxes, scores, idxs, threshold))


def test_nms_non_contiguous_inputs():
    boxes = random_boxes(80, spread=30.0)
    scores = torch.rand(80, 2)[:, 1]
    wide = torch.zeros(80, 8)
    wide[:, ::2] = boxes
    assert torch.equal(nms(wide[:, ::2], scores, 0.5), torchvision.ops.nms(boxes, scores.contiguous(), 0.5))


# ----------------------------------------------------------------------------- batched_nms
def per_class_reference(boxes, scores, idxs, threshold):
    """Independent per-class loop (Detectron2's), then torchvision's final score sort."""
    keep = torch.zeros_like(scores, dtype=torch.bool)
    for c in torch.unique(idxs):
        members = torch.where(idxs == c)[0]
        keep[members[torchvision.ops.nms(boxes[members], scores[members], threshold)]] = True
    kept = torch.where(keep)[0]
    return kept[scores[kept].sort(descending=True)[1]]


@pytest.mark.kernel
@HYPOTHESIS_BATCHED
@given(n=st.sampled_from([0, 1, 5] + WORD_BOUNDARIES),
       classes=st.sampled_from([1, 3, 7]),
       distinct=st.sampled_from([None, 5]),
       threshold=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
       seed=st.integers(0, 2**31 - 1))
def test_batched_nms_matches_torchvision(n, classes, distinct, threshold, seed):
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(n, 40.0, generator=g)
    scores = random_scores(n, distinct, generator=g)
    idxs = torch.randint(0, classes, (n,), generator=g) * 1000 - 7   # arbitrary, negative ids too
    assert torch.equal(batched_nms(boxes, scores, idxs, threshold),
                       torchvision.ops.batched_nms(boxes, scores, idxs, threshold))
    # the exact per-category op (what batched_nms uses beyond 1000 boxes) against a per-class loop
    exact = torch.ops.tritonvision.batched_nms(boxes, scores, idxs, threshold)
    assert torch.equal(exact, per_class_reference(boxes, scores, idxs, threshold))


def test_batched_nms_large_input_uses_exact_per_class_path():
    boxes = random_boxes(1500, spread=150.0)
    scores = random_scores(1500, 100)
    idxs = torch.randint(0, 5, (1500,))
    assert torch.equal(batched_nms(boxes, scores, idxs, 0.5),
                       torchvision.ops.batched_nms(boxes, scores, idxs, 0.5))


# ----------------------------------------------------------------------------- batched_nms_padded
def padded_reference(boxes, scores, iou_threshold, score_threshold, k, class_agnostic):
    """Per-image loop over torchvision: candidates (n, c) with score > threshold, NMS, top k."""
    if scores.dim() == 2:
        scores = scores[..., None]
    batch = boxes.shape[0]
    out = (torch.zeros(batch, k, 4, dtype=boxes.dtype), torch.zeros(batch, k, dtype=scores.dtype),
           torch.full((batch, k), -1), torch.full((batch, k), -1), torch.zeros(batch, dtype=torch.int64))
    for b in range(batch):
        n_idx, c_idx = (scores[b] > score_threshold).nonzero().unbind(1)
        cand_scores = scores[b][n_idx, c_idx]
        cand_boxes = boxes[b][n_idx]
        labels = torch.zeros_like(c_idx) if class_agnostic else c_idx
        kept = torch.zeros(n_idx.shape[0], dtype=torch.bool)
        for c in torch.unique(labels):                           # exact per-class NMS
            members = torch.where(labels == c)[0]
            kept[members[torchvision.ops.nms(cand_boxes[members].float(), cand_scores[members].float(),
                                             iou_threshold)]] = True
        kept = torch.where(kept)[0]                              # by score, ties: lower candidate first
        keep = kept[cand_scores[kept].sort(descending=True, stable=True).indices][:k]
        m = keep.numel()
        out[0][b, :m] = cand_boxes[keep]
        out[1][b, :m] = cand_scores[keep]
        out[2][b, :m] = c_idx[keep]
        out[3][b, :m] = n_idx[keep]
        out[4][b] = m
    return out


def assert_padded_equal(got, expected):
    names = ("boxes", "scores", "labels", "indices", "counts")
    for name, g, e in zip(names, got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape, (name, g.dtype, e.dtype, g.shape, e.shape)
        assert torch.equal(g, e), name


@pytest.mark.kernel
@pytest.mark.parametrize("class_agnostic", [False, True])
@pytest.mark.parametrize("classes,max_out", [(None, 10), (3, 4), (3, 40), (5, 12)])
def test_batched_nms_padded_matches_per_image_torchvision(classes, max_out, class_agnostic):
    batch, n = 3, 33
    boxes = torch.stack([random_boxes(n, 40.0) for _ in range(batch)])
    shape = (batch, n) if classes is None else (batch, n, classes)
    scores = torch.randint(0, 12, shape).float() / 12          # ties across boxes and classes
    got = batched_nms_padded(boxes, scores, 0.5, 0.2, max_out, class_agnostic)
    expected = padded_reference(boxes, scores, 0.5, 0.2, max_out, class_agnostic)
    assert_padded_equal(got, expected)


@pytest.mark.kernel
def test_batched_nms_padded_padding_and_empty_images():
    boxes = torch.stack([random_boxes(20, 30.0), random_boxes(20, 30.0)])
    scores = torch.rand(2, 20, 2)
    scores[1] = 0.0                                              # nothing above the threshold
    scores[0, 3, 1] = float("nan")                               # never a candidate
    out_boxes, out_scores, labels, indices, counts = batched_nms_padded(boxes, scores, 0.6, 0.05, 30)
    assert counts[1] == 0
    assert counts[0] <= 30 and counts[0] > 0
    for b in range(2):
        pad = torch.arange(30) >= counts[b]
        assert (labels[b][pad] == -1).all() and (indices[b][pad] == -1).all()
        assert (out_scores[b][pad] == 0).all() and (out_boxes[b][pad] == 0).all()
        assert (labels[b][~pad] >= 0).all() and (out_scores[b][~pad] > 0.05).all()
        assert (out_scores[b][~pad].diff() <= 0).all()           # sorted by descending score
    assert not ((indices[0] == 3) & (labels[0] == 1)).any()
    assert_padded_equal((out_boxes, out_scores, labels, indices, counts),
                        padded_reference(boxes, scores, 0.6, 0.05, 30, False))
    zero = batched_nms_padded(torch.zeros(2, 0, 4), torch.zeros(2, 0, 3), 0.5, 0.1, 5)
    assert [t.shape for t in zero] == [(2, 5, 4), (2, 5), (2, 5), (2, 5), (2,)]
    assert zero[4].tolist() == [0, 0] and (zero[2] == -1).all()
    none = batched_nms_padded(boxes, scores, 0.5, 0.1, 0)
    assert [t.shape for t in none] == [(2, 0, 4), (2, 0), (2, 0), (2, 0), (2,)]


@pytest.mark.kernel
def test_batched_nms_padded_half_precision():
    boxes = torch.stack([random_boxes(40, 50.0) for _ in range(2)]).half()
    scores = torch.rand(2, 40, 3).half()
    got = batched_nms_padded(boxes, scores, 0.45, 0.25, 25)
    assert got[0].dtype == torch.float16 and got[1].dtype == torch.float16
    assert_padded_equal(got, padded_reference(boxes, scores, 0.45, 0.25, 25, False))


def copies_and_disjoint(copies: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[1, copies + 10, 4] boxes: ``copies`` copies of one box (score 0.9), then 10 disjoint
    boxes (scores 0.5 .. 0.4); torchvision's NMS at 0.5 keeps 11."""
    same = torch.tensor([[0.0, 0, 10, 10]]).expand(copies, 4)
    disjoint = torch.tensor([[100.0 * i + 20, 0, 100 * i + 30, 10] for i in range(10)])
    scores = torch.cat([torch.full((copies,), 0.9), torch.linspace(0.5, 0.4, 10)])
    return torch.cat([same, disjoint])[None], scores[None]


def check_pre_nms_top_k_cut(boxes, scores, fits: int, cut: int) -> None:
    """pre_nms_top_k=fits (all candidates) gives torchvision's 11; =cut (copies only) gives the first copy."""
    expected = torchvision.ops.nms(boxes[0].cpu(), scores[0].cpu(), 0.5)
    assert expected.numel() == 11
    got = batched_nms_padded(boxes, scores, 0.5, 0.1, 20, pre_nms_top_k=fits)
    assert got[4].tolist() == [11] and torch.equal(got[3][0, :11].cpu(), expected)
    assert_padded_equal([t.cpu() for t in got], padded_reference(boxes.cpu(), scores.cpu(), 0.5, 0.1, 20, False))
    trimmed = batched_nms_padded(boxes, scores, 0.5, 0.1, 20, pre_nms_top_k=cut)
    assert trimmed[4].tolist() == [1] and trimmed[3][0, 0] == 0     # equal scores: lowest id first


@pytest.mark.kernel
def test_batched_nms_padded_equals_torchvision_when_candidates_fit_pre_nms_top_k():
    boxes, scores = copies_and_disjoint(100)
    check_pre_nms_top_k_cut(boxes, scores, fits=110, cut=100)


def test_batched_nms_padded_default_pre_nms_top_k_with_4100_copies():
    # more than the default 4096 candidates: the copies fill the cut, as torchvision's
    # detection models' pre_nms_top_n would; a large enough pre_nms_top_k gives torchvision's answer
    assert nms_module.PRE_NMS_TOP_K == 4096
    boxes, scores = copies_and_disjoint(4100)
    check_pre_nms_top_k_cut(boxes, scores, fits=4110, cut=nms_module.PRE_NMS_TOP_K)
    default = batched_nms_padded(boxes, scores, 0.5, 0.1, 20)
    assert default[4].tolist() == [1]


def test_batched_nms_padded_beyond_pre_nms_top_k_keeps_the_best_candidates():
    n, classes, top_k = 110, 40, 1000                            # 4400 (box, class) pairs
    boxes = random_boxes(n, 80.0)[None]
    scores = torch.randint(1, 400, (1, n, classes)).float() / 400   # ties at the cut too
    sorted_scores = scores.flatten().sort(descending=True).values
    # fewer valid candidates than top_k: same as torchvision
    threshold = float(sorted_scores[top_k - 100])
    assert_padded_equal(batched_nms_padded(boxes, scores, 0.5, threshold, 300, pre_nms_top_k=top_k),
                        padded_reference(boxes, scores, 0.5, threshold, 300, False))
    # more: the top_k best candidates (equal scores: lower id n * C + c first) are the ones considered
    got = batched_nms_padded(boxes, scores, 0.5, 0.0, 300, pre_nms_top_k=top_k)
    best = scores.flatten().sort(descending=True, stable=True).indices[:top_k]
    trimmed = torch.zeros(n * classes).index_put_((best,), scores.flatten()[best]).view(1, n, classes)
    assert_padded_equal(got, padded_reference(boxes, trimmed, 0.5, 0.0, 300, False))
    assert_padded_equal(got, batched_nms_padded(boxes, trimmed, 0.5, 0.0, 300, pre_nms_top_k=n * classes))


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_op_and_argument():
    boxes, scores = random_boxes(5), torch.rand(5)
    with pytest.raises(ValueError, match=r"nms: boxes must have shape \[N, 4\]"):
        nms(torch.rand(5, 5), scores, 0.5)
    with pytest.raises(ValueError, match="nms: scores must have shape"):
        nms(boxes, torch.rand(4), 0.5)
    with pytest.raises(TypeError, match="nms: boxes must be a floating tensor"):
        nms(boxes.long(), scores, 0.5)
    with pytest.raises(TypeError, match="batched_nms: idxs must be an integer tensor"):
        batched_nms(boxes, scores, torch.zeros(5), 0.5)
    with pytest.raises(ValueError, match="batched_nms: idxs must have shape"):
        batched_nms(boxes, scores, torch.zeros(4, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match=r"batched_nms_padded: boxes must have shape \[B, N, 4\]"):
        batched_nms_padded(boxes, scores, 0.5, 0.1, 10)
    with pytest.raises(ValueError, match="batched_nms_padded: scores must have shape"):
        batched_nms_padded(boxes[None], torch.rand(1, 4, 3), 0.5, 0.1, 10)
    with pytest.raises(ValueError, match="batched_nms_padded: max_output_per_image"):
        batched_nms_padded(boxes[None], scores[None], 0.5, 0.1, -1)
    for top_k in (0, 2.5, True):
        with pytest.raises(ValueError, match="batched_nms_padded: pre_nms_top_k must be an int >= 1"):
            batched_nms_padded(boxes[None], scores[None], 0.5, 0.1, 10, pre_nms_top_k=top_k)


# ----------------------------------------------------------------------------- op machinery
@pytest.mark.kernel
def test_opcheck():
    g = torch.Generator().manual_seed(1)
    boxes = random_boxes(24, 40.0, generator=g)
    scores = torch.rand(24, generator=g)
    idxs = torch.randint(0, 3, (24,), generator=g)
    torch.library.opcheck(torch.ops.tritonvision.nms, (boxes, scores, 0.5))
    torch.library.opcheck(torch.ops.tritonvision.batched_nms, (boxes, scores, idxs, 0.5))
    torch.library.opcheck(torch.ops.tritonvision.batched_nms_padded,
                          (boxes.view(2, 12, 4), torch.rand(2, 12, 3, generator=g), 0.5, 0.2, 8, False))


class YoloPostprocess(torch.nn.Module):
    def forward(self, boxes: torch.Tensor, scores: torch.Tensor):
        return batched_nms_padded(boxes, scores, 0.5, 0.25, 16)


def test_batched_nms_padded_compiles_fullgraph_without_graph_breaks():
    boxes = torch.stack([random_boxes(30, 40.0) for _ in range(2)])
    scores = torch.rand(2, 30, 4)
    explanation = torch._dynamo.explain(YoloPostprocess())(boxes, scores)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(YoloPostprocess(), fullgraph=True)
    assert_padded_equal(compiled(boxes, scores), YoloPostprocess()(boxes, scores))


def test_nms_compiles_with_data_dependent_output():
    counter = torch._dynamo.testing.CompileCounter()
    boxes, scores = random_boxes(50, 30.0), torch.rand(50)
    compiled = torch.compile(lambda b, s: nms(b, s, 0.5) + 0, backend=counter, fullgraph=True)
    assert torch.equal(compiled(boxes, scores), torchvision.ops.nms(boxes, scores, 0.5))
    assert counter.frame_count == 1
    idxs = torch.randint(0, 3, (50,))
    compiled = torch.compile(lambda b, s, i: batched_nms(b, s, i, 0.5), backend=counter, fullgraph=True)
    assert torch.equal(compiled(boxes, scores, idxs), torchvision.ops.batched_nms(boxes, scores, idxs, 0.5))
    assert counter.frame_count == 2


def test_export_round_trip():
    boxes = torch.stack([random_boxes(30, 40.0) for _ in range(2)])
    scores = torch.rand(2, 30, 4)
    program = torch.export.export(YoloPostprocess(), (boxes, scores))
    fresh = torch.stack([random_boxes(30, 40.0) for _ in range(2)]), torch.rand(2, 30, 4)
    assert_padded_equal(program.module()(*fresh), YoloPostprocess()(*fresh))

    class Nms(torch.nn.Module):
        def forward(self, boxes, scores):
            return nms(boxes, scores, 0.5)
    program = torch.export.export(Nms(), (random_boxes(20, 30.0), torch.rand(20)))
    b, s = random_boxes(20, 30.0), torch.rand(20)
    assert torch.equal(program.module()(b, s), torchvision.ops.nms(b, s, 0.5))


def test_torchscript_round_trip():
    class Scripted(torch.nn.Module):
        def forward(self, boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor):
            keep = torch.ops.tritonvision.batched_nms(boxes, scores, idxs, 0.5)
            padded = torch.ops.tritonvision.batched_nms_padded(boxes[None], scores[None, :, None],
                                                                0.5, 0.1, 10, False)
            return keep, torch.ops.tritonvision.nms(boxes, scores, 0.5), padded[4]
    module = torch.jit.script(Scripted())
    boxes, scores, idxs = random_boxes(40, 30.0), torch.rand(40), torch.randint(0, 3, (40,))
    keep, kept_all, count = module(boxes, scores, idxs)
    assert torch.equal(keep, per_class_reference(boxes, scores, idxs, 0.5))
    assert torch.equal(kept_all, torchvision.ops.nms(boxes, scores, 0.5))
    assert torch.equal(count, padded_reference(boxes[None], scores[None], 0.5, 0.1, 10, False)[4])


# ----------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize("n", [1, 33, 1000, 5000])
def test_gpu_kernels_match_torchvision_cpu(n, dtype):
    boxes = random_boxes(n, spread=math.sqrt(n) * 10, size=30.0, dtype=dtype)
    scores = random_scores(n, 50).to(dtype)
    upcast = torch.float64 if dtype == torch.float64 else torch.float32  # as nms compares half boxes
    expected = torchvision.ops.nms(boxes.to(upcast), scores.to(upcast), 0.5)
    assert torch.equal(nms(boxes.cuda(), scores.cuda(), 0.5).cpu(), expected)
    idxs = torch.randint(0, 4, (n,))
    kept = torch.ops.tritonvision.batched_nms(boxes.cuda(), scores.cuda(), idxs.cuda(), 0.5).cpu()
    expected = per_class_reference(boxes.to(upcast), scores.to(upcast), idxs, 0.5)
    # equal sets; the order of equal scores is whatever torch.sort gives on each device
    assert torch.equal(kept.sort().values, expected.sort().values)
    assert torch.equal(scores[kept], scores[expected])


@pytest.mark.gpu
def test_gpu_float64_threshold_and_pre_nms_top_k_match_torchvision():
    boxes = torch.tensor([[0.0, 0, 10, 1], [0, 0, 7, 1]], dtype=torch.float64, device="cuda")
    scores = torch.tensor([0.9, 0.8], dtype=torch.float64, device="cuda")
    assert nms(boxes, scores, 0.7).tolist() == [0, 1]                 # IoU exactly 0.7 is not above it
    assert batched_nms_padded(boxes[None], scores[None], 0.7, 0.0, 4)[4].tolist() == [2]
    boxes, scores = copies_and_disjoint(4100)
    check_pre_nms_top_k_cut(boxes.cuda(), scores.cuda(), fits=4110, cut=nms_module.PRE_NMS_TOP_K)


PADDED_GPU_CASES = [  # batch, boxes per image, classes, pre_nms_top_k
    (4, 500, 8, nms_module.PRE_NMS_TOP_K),                        # 4000 candidate pairs: all fit
    (2, 700, 8, 1000),                                            # 5600 > 1000: past the limit
    (2, 1600, 4, nms_module.PRE_NMS_TOP_K),                       # ~4480 of 6400 pass: > the default
]


def _padded_inputs(batch, n, classes):
    return torch.stack([random_boxes(n, 200.0) for _ in range(batch)]), torch.rand(batch, n, classes)


def padded_reference_top_k(boxes, scores, iou_threshold, score_threshold, k, top_k):
    """padded_reference (exact per-class NMS) over the ``top_k`` best candidates per image above
    ``score_threshold`` (equal scores: lower id first), as batched_nms_padded's pre_nms_top_k."""
    below = torch.full_like(scores, min(score_threshold, 0.0) - 1.0)
    flat = torch.where(scores > score_threshold, scores, below).flatten(1)
    best = flat.sort(dim=1, descending=True, stable=True).indices[:, :top_k]
    trimmed = below.flatten(1).scatter_(1, best, flat.gather(1, best)).view_as(scores)
    return padded_reference(boxes, trimmed, iou_threshold, score_threshold, k, False)


@pytest.mark.gpu
@pytest.mark.kernel
@pytest.mark.parametrize("batch,n,classes,top_k", PADDED_GPU_CASES)
def test_gpu_batched_nms_padded_is_sync_free_and_graph_capturable(batch, n, classes, top_k):
    from conftest import capture, no_host_sync

    boxes, scores = _padded_inputs(batch, n, classes)
    static_boxes, static_scores = boxes.cuda(), scores.cuda()

    def run():
        return batched_nms_padded(static_boxes, static_scores, 0.5, 0.3, 50, pre_nms_top_k=top_k)
    run()                                                        # warm up (Triton compiles)
    torch.cuda.synchronize()
    with no_host_sync():
        got = run()
    assert_padded_equal([t.cpu() for t in got], padded_reference_top_k(boxes, scores, 0.5, 0.3, 50, top_k))
    graph, static_out = capture(run)
    fresh_boxes, fresh_scores = _padded_inputs(batch, n, classes)
    static_boxes.copy_(fresh_boxes)
    static_scores.copy_(fresh_scores)
    graph.replay()
    torch.cuda.synchronize()
    assert_padded_equal([t.cpu() for t in static_out],
                        padded_reference_top_k(fresh_boxes, fresh_scores, 0.5, 0.3, 50, top_k))
