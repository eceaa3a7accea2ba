"""Matrix NMS and greedy mask NMS against float64 references written as naive loops."""
import math

import pytest
import torch

import tritonvision.ops as T
from test_mask_iou import random_masks, reference_iou


def blob_masks(n, h=12, w=13, spread=4):
    """Random rectangles in a small image: many overlaps at every IoU level, some duplicates."""
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    for k in range(n):
        y0, x0 = int(torch.randint(0, h - 2, ())), int(torch.randint(0, w - 2, ()))
        masks[k, y0:y0 + int(torch.randint(1, spread + 2, ())), x0:x0 + int(torch.randint(1, spread + 2, ()))] = True
    if n > 4:
        masks[n - 1] = masks[0]                                       # an exact duplicate
    return masks


def _score_order(scores):
    return sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))


def reference_matrix_nms(masks, labels, scores, kernel, sigma):
    """The SOLOv2 definition, mask by mask in float64."""
    iou = reference_iou(masks, masks)
    order = _score_order(scores)
    comp, out = {}, torch.zeros(len(scores), dtype=torch.float64)
    for pos, j in enumerate(order):
        above = [i for i in order[:pos] if labels[i] == labels[j]]
        comp[j] = max([float(iou[i, j]) for i in above], default=0.0)
        decay = 1.0
        for i in above:
            if kernel == "gaussian":
                decay = min(decay, math.exp(-sigma * float(iou[i, j]) ** 2) / math.exp(-sigma * comp[i] ** 2))
            elif comp[i] < 1:                                           # linear; comp 1: skipped
                decay = min(decay, (1 - float(iou[i, j])) / (1 - comp[i]))
        out[j] = float(scores[j]) * decay
    return out


def mmdet_style_matrix_nms(masks, labels, scores, kernel, sigma):
    """mmdet's mask_matrix_nms tensor steps (no filter / top-k), float64, mapped back to input
    order: the conventions our op follows (upper triangle, compensation per row, min over dim 0)."""
    scores, sort_inds = torch.sort(scores.double(), descending=True, stable=True)
    flat = masks[sort_inds].flatten(1).double()
    area = flat.sum(1)
    n = len(scores)
    inter = flat @ flat.T
    expanded_area = area.expand(n, n)
    iou_matrix = (inter / (expanded_area + expanded_area.T - inter)).triu(diagonal=1)
    expanded_labels = labels[sort_inds].expand(n, n)
    label_matrix = (expanded_labels == expanded_labels.T).triu(diagonal=1)
    compensate_iou, _ = (iou_matrix * label_matrix).max(0)
    compensate_iou = compensate_iou.expand(n, n).T
    decay_iou = iou_matrix * label_matrix
    if kernel == "gaussian":
        coefficient, _ = (torch.exp(-sigma * decay_iou ** 2) / torch.exp(-sigma * compensate_iou ** 2)).min(0)
    else:
        coefficient, _ = ((1 - decay_iou) / (1 - compensate_iou)).min(0)
    return torch.empty_like(scores).scatter_(0, sort_inds, scores * coefficient)


def reference_greedy(masks, scores, threshold, labels=None, candidates=None):
    """torchvision's greedy loop on the float32 mask IoU, compared in float64."""
    iou = reference_iou(masks, masks).float().double()
    kept = []
    for j in _score_order(scores):
        if candidates is not None and not candidates[j]:
            continue
        if any(iou[i, j] > threshold and (labels is None or labels[i] == labels[j]) for i in kept):
            continue
        kept.append(j)
    return torch.tensor(kept, dtype=torch.int64)


# ----------------------------------------------------------------------------- matrix NMS
@pytest.mark.kernel
@pytest.mark.parametrize("kernel, sigma", [("gaussian", 2.0), ("gaussian", 0.5), ("linear", 2.0)])
def test_matrix_nms_matches_float64_reference(kernel, sigma):
    masks, labels, scores = blob_masks(30), torch.randint(0, 3, (30,)), torch.rand(30)
    got = T.matrix_nms(masks, labels, scores, kernel, sigma)
    assert got.shape == (30,) and got.dtype == torch.float32
    expected = reference_matrix_nms(masks, labels, scores, kernel, sigma)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_matrix_nms_follows_mmdet_conventions(kernel):
    masks = random_masks(25, 9, 11)[2:]                              # no empty mask (mmdet: 0/0)
    masks[:, 0, 0] = True
    labels, scores = torch.randint(0, 2, (23,)), torch.rand(23, dtype=torch.float64)
    torch.testing.assert_close(T.matrix_nms(masks, labels, scores, kernel),
                               mmdet_style_matrix_nms(masks, labels, scores, kernel, 2.0), rtol=1e-6, atol=1e-7)


@pytest.mark.kernel
def test_matrix_nms_batched_equals_per_image():
    masks, labels, scores = torch.stack([blob_masks(14) for _ in range(3)]), torch.randint(0, 2, (3, 14)), \
        torch.rand(3, 14)
    got = T.matrix_nms(masks, labels, scores)
    for b in range(3):
        torch.testing.assert_close(got[b], T.matrix_nms(masks[b], labels[b], scores[b]))


@pytest.mark.kernel
def test_matrix_nms_edge_cases():
    sigma = 2.0
    # all identical masks, one class: the top keeps its score, gaussian decays the others by
    # exp(-sigma) (comp = 1 cancels for the second row), linear zeroes them (no 0/0 NaN)
    masks = torch.ones(4, 5, 6, dtype=torch.bool)
    labels, scores = torch.zeros(4, dtype=torch.int64), torch.tensor([0.5, 0.9, 0.7, 0.9])
    gaussian = T.matrix_nms(masks, labels, scores, "gaussian", sigma)
    torch.testing.assert_close(gaussian, torch.tensor([0.5, 0.9, 0.7, 0.9]) * torch.tensor(
        [math.exp(-sigma), 1, math.exp(-sigma), math.exp(-sigma)]))      # tie: index 1 is above 3
    assert torch.equal(T.matrix_nms(masks, labels, scores, "linear"), torch.tensor([0, 0.9, 0, 0]))
    # different labels never decay each other; empty masks decay nothing
    assert torch.equal(T.matrix_nms(masks, torch.arange(4), scores), scores)
    assert torch.equal(T.matrix_nms(torch.zeros(4, 5, 6, dtype=torch.bool), labels, scores), scores)
    # single mask, no mask
    assert torch.equal(T.matrix_nms(masks[:1], labels[:1], scores[:1]), scores[:1])
    assert T.matrix_nms(masks[:0], labels[:0], scores[:0]).shape == (0,)


# ----------------------------------------------------------------------------- greedy
@pytest.mark.kernel
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.8])
def test_mask_nms_matches_greedy_reference(threshold):
    masks = blob_masks(45)
    scores = torch.randint(0, 12, (45,)).float() / 12                # many ties
    assert torch.equal(T.mask_nms(masks, scores, threshold), reference_greedy(masks, scores, threshold))


@pytest.mark.kernel
def test_mask_nms_edge_cases():
    same = torch.ones(5, 4, 4, dtype=torch.bool)
    scores = torch.tensor([0.3, 0.8, 0.8, 0.1, 0.8])
    assert T.mask_nms(same, scores, 0.5).tolist() == [1]               # tie: the lower index wins
    assert T.mask_nms(same, scores, 1.0).tolist() == [1, 2, 4, 0, 3]   # IoU 1 is not > 1
    assert T.mask_nms(same[:1], scores[:1], 0.5).tolist() == [0]
    assert T.mask_nms(same[:0], scores[:0], 0.5).shape == (0,)
    empty = torch.zeros(3, 4, 4, dtype=torch.bool)                     # IoU 0 with everything
    assert T.mask_nms(empty, scores[:3], 0.0).tolist() == [1, 2, 0]
    assert T.mask_nms(empty, scores[:3], -0.1).tolist() == [1]


@pytest.mark.kernel
@pytest.mark.parametrize("class_aware", [True, False])
def test_batched_mask_nms_padded_matches_per_image_reference(class_aware):
    batch, n, k = 3, 24, 7
    masks = torch.stack([blob_masks(n) for _ in range(batch)])
    scores, labels = torch.rand(batch, n), torch.randint(0, 3, (batch, n))
    masks[2, 10:] = False                                               # padding: empty masks, score 0
    scores[2, 10:] = 0
    out_scores, out_labels, out_indices, counts = T.batched_mask_nms_padded(
        masks, scores, labels if class_aware else None, 0.4, 0.2, k)
    for b in range(batch):
        kept = reference_greedy(masks[b], scores[b], 0.4, labels[b] if class_aware else None,
                                scores[b] > 0.2)[:k]
        c = len(kept)
        assert counts[b] == c
        assert torch.equal(out_indices[b, :c], kept) and (out_indices[b, c:] == -1).all()
        assert torch.equal(out_scores[b, :c], scores[b, kept]) and (out_scores[b, c:] == 0).all()
        expected_labels = labels[b, kept] if class_aware else torch.zeros(c, dtype=torch.int64)
        assert torch.equal(out_labels[b, :c], expected_labels) and (out_labels[b, c:] == -1).all()


def test_errors_name_the_op_and_argument():
    masks, scores = torch.zeros(3, 4, 4, dtype=torch.bool), torch.rand(3)
    with pytest.raises(ValueError, match=r"matrix_nms: kernel must be one of \['gaussian', 'linear'\]"):
        T.matrix_nms(masks, torch.zeros(3, dtype=torch.int64), scores, "box")
    with pytest.raises(ValueError, match=r"matrix_nms: labels must have shape \[3\]"):
        T.matrix_nms(masks, torch.zeros(2, dtype=torch.int64), scores)
    with pytest.raises(TypeError, match=r"matrix_nms: labels must be an integer tensor"):
        T.matrix_nms(masks, scores, scores)
    with pytest.raises(ValueError, match=r"mask_nms: scores must have shape \[3\]"):
        T.mask_nms(masks, scores[:2], 0.5)
    with pytest.raises(TypeError, match=r"mask_nms: iou_threshold must be a Python float"):
        T.mask_nms(masks, scores, torch.tensor(0.5))
    with pytest.raises(ValueError, match=r"batched_mask_nms_padded: masks must have shape \[B, N, H, W\]"):
        T.batched_mask_nms_padded(masks, scores, None, 0.5, 0.1, 5)
    with pytest.raises(ValueError, match=r"max_output_per_image must be an int >= 0"):
        T.batched_mask_nms_padded(masks[None], scores[None], None, 0.5, 0.1, -1)


# ----------------------------------------------------------------------------- op machinery
@pytest.mark.kernel
def test_opcheck():
    masks, scores, labels = blob_masks(10).flatten(1), torch.rand(10), torch.randint(0, 2, (10,))
    torch.library.opcheck(torch.ops.tritonvision.matrix_nms, (masks[None], labels[None], scores[None],
                                                              "gaussian", 2.0))
    torch.library.opcheck(torch.ops.tritonvision.mask_nms, (masks, scores, 0.5))
    torch.library.opcheck(torch.ops.tritonvision.batched_mask_nms_padded,
                          (masks[None], scores[None], labels[None], 0.5, 0.1, 4, False))


class InstancePostprocess(torch.nn.Module):
    def forward(self, masks, labels, scores):
        decayed = T.matrix_nms(masks, labels, scores)
        return decayed, T.batched_mask_nms_padded(masks, decayed, labels, 0.5, 0.05, 5)


def test_compiles_fullgraph_without_graph_breaks():
    masks, labels, scores = torch.stack([blob_masks(12) for _ in range(2)]), torch.randint(0, 2, (2, 12)), \
        torch.rand(2, 12)
    explanation = torch._dynamo.explain(InstancePostprocess())(masks, labels, scores)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(InstancePostprocess(), fullgraph=True)
    got, expected = compiled(masks, labels, scores), InstancePostprocess()(masks, labels, scores)
    assert torch.equal(got[0], expected[0]) and all(torch.equal(a, b) for a, b in zip(got[1], expected[1]))
    counter = torch._dynamo.testing.CompileCounter()
    greedy = torch.compile(lambda m, s: T.mask_nms(m, s, 0.5) + 0, backend=counter, fullgraph=True)
    assert torch.equal(greedy(masks[0], scores[0]), reference_greedy(masks[0], scores[0], 0.5))
    assert counter.frame_count == 1


def test_export_round_trip():
    masks, labels, scores = torch.stack([blob_masks(12) for _ in range(2)]), torch.randint(0, 2, (2, 12)), \
        torch.rand(2, 12)
    program = torch.export.export(InstancePostprocess(), (masks, labels, scores))
    got, expected = program.module()(masks, labels, scores), InstancePostprocess()(masks, labels, scores)
    assert torch.equal(got[0], expected[0]) and all(torch.equal(a, b) for a, b in zip(got[1], expected[1]))


# ----------------------------------------------------------------------------- GPU
@pytest.mark.gpu
def test_gpu_mask_nms_is_sync_free_and_matches_cpu():
    masks = torch.stack([blob_masks(300, 96, 128, spread=40) for _ in range(4)])
    labels, scores = torch.randint(0, 5, (4, 300)), torch.rand(4, 300)
    expected = InstancePostprocess()(masks, labels, scores)
    args = masks.cuda(), labels.cuda(), scores.cuda()
    InstancePostprocess()(*args)                                        # warm up (Triton compiles)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = InstancePostprocess()(*args)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(got[0].cpu(), expected[0])
    for a, b in zip(got[1], expected[1]):
        assert torch.equal(a.cpu(), b)
    assert torch.equal(T.mask_nms(args[0][0], args[2][0], 0.5).cpu(), T.mask_nms(masks[0], scores[0], 0.5))
