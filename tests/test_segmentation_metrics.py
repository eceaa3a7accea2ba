"""Confusion-matrix op and SegmentationMetrics against float64 references written from the
lecture's definitions (per-pixel loops), plus the lecture's 90% / 8% / 2% example."""
import math
import os
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tritonvision.metrics.segmentation import SegmentationMetrics, metrics_from_confusion_matrix
from tritonvision.ops.confusion_matrix import confusion_matrix, confusion_matrix_from_logits


# ----------------------------------------------------------------------------- references
def reference_confmat(preds, target, k, ignore_index=None):
    m = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(target.reshape(-1).tolist(), preds.reshape(-1).tolist()):
        if ignore_index is not None and t == ignore_index:
            continue
        m[t, p] += 1
    return torch.from_numpy(m)


def reference_metrics(preds, target, k, ignore_index=None):
    """From the definitions, counting TP/FP/FN per class pixel by pixel (no confusion matrix)."""
    pairs = [(t, p) for t, p in zip(target.reshape(-1).tolist(), preds.reshape(-1).tolist())
             if ignore_index is None or t != ignore_index]
    total = len(pairs)
    tp = [sum(1 for t, p in pairs if t == c and p == c) for c in range(k)]
    fp = [sum(1 for t, p in pairs if t != c and p == c) for c in range(k)]
    fn = [sum(1 for t, p in pairs if t == c and p != c) for c in range(k)]
    n = [tp[c] + fn[c] for c in range(k)]
    iou = [tp[c] / (tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else math.nan for c in range(k)]
    dice = [2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else math.nan for c in range(k)]
    acc = [tp[c] / n[c] if n[c] else math.nan for c in range(k)]

    def mean(values):
        kept = [v for v in values if not math.isnan(v)]
        return sum(kept) / len(kept) if kept else math.nan

    return {
        "pixel_accuracy": sum(tp) / total if total else math.nan,
        "accuracy": acc, "mean_accuracy": mean(acc),
        "iou": iou, "miou": mean(iou),
        "fwiou": sum(n[c] / total * iou[c] for c in range(k) if n[c]) if total else math.nan,
        "dice": dice, "mean_dice": mean(dice),
    }


def assert_metrics_equal(got, expected):
    for name, value in expected.items():
        torch.testing.assert_close(got[name], torch.tensor(value, dtype=torch.float64),
                                   rtol=1e-12, atol=1e-12, equal_nan=True, msg=name)


# ----------------------------------------------------------------------------- the op
@pytest.mark.kernel
@pytest.mark.parametrize("k,shape", [(1, (2, 3, 4)), (5, (2, 9, 7)), (21, (1, 33, 17)), (70, (2, 11, 13))])
def test_confusion_matrix_matches_pixel_loop(k, shape):
    preds = torch.randint(0, k, shape)
    target = torch.randint(0, k, shape)
    target.view(-1)[torch.randperm(target.numel())[:5]] = -100
    assert torch.equal(confusion_matrix(preds, target, k), reference_confmat(preds, target, k, -100))
    assert confusion_matrix(preds, target, k).dtype == torch.int64


@pytest.mark.kernel
@settings(deadline=None, max_examples=15)
@given(k=st.integers(1, 9), b=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6),
       ignore=st.sampled_from([None, -100, 255, 0, 2]), seed=st.integers(0, 2 ** 31 - 1))
def test_confusion_matrix_hypothesis_against_pixel_loop(k, b, h, w, ignore, seed):
    generator = torch.Generator().manual_seed(seed)
    preds = torch.randint(0, k, (b, h, w), generator=generator)
    target = torch.randint(0, k, (b, h, w), generator=generator)
    if ignore is not None:
        target = torch.where(torch.rand(b, h, w, generator=generator) < 0.3, ignore, target)
    assert torch.equal(confusion_matrix(preds, target, k, ignore_index=ignore),
                       reference_confmat(preds, target, k, ignore))
    logits = torch.randn(b, k, h, w, generator=generator)
    assert torch.equal(confusion_matrix_from_logits(logits, target, ignore_index=ignore),
                       reference_confmat(logits.argmax(1), target, k, ignore))


@pytest.mark.kernel
@pytest.mark.parametrize("k", [3, 70])
def test_confusion_matrix_many_chunks_per_row(monkeypatch, k):
    # 16-pixel blocks: several blocks per program and several programs per image row,
    # on both the local-histogram (k=3) and the per-pixel atomics (k=70) paths
    import importlib
    from tritonvision.ops._launch import LaunchConfig
    cm_ops = importlib.import_module("tritonvision.ops.confusion_matrix")   # the module, not the function
    monkeypatch.setattr(cm_ops, "COUNT", LaunchConfig(dict(BLOCK=16)))
    shape = (2, 40, 30) if k == 3 else (2, 5, 9)        # k=3: 4 blocks per program too
    logits = torch.randn(shape[0], k, *shape[1:])
    target = torch.randint(0, k, shape)
    target[:, 0] = -100
    expected = reference_confmat(logits.argmax(1), target, k, -100)
    assert torch.equal(confusion_matrix_from_logits(logits, target), expected)
    assert torch.equal(confusion_matrix(logits.argmax(1), target, k), expected)


@pytest.mark.kernel
def test_confusion_matrix_uint8_masks_with_255_ignored_and_int32_preds():
    target = torch.randint(0, 4, (2, 6, 5), dtype=torch.uint8)
    target[0, :2] = 255
    preds = torch.randint(0, 4, (2, 6, 5), dtype=torch.int32)
    assert torch.equal(confusion_matrix(preds, target, 4, ignore_index=255),
                       reference_confmat(preds, target, 4, 255))


@pytest.mark.kernel
def test_confusion_matrix_ignore_everywhere_and_empty():
    preds = torch.randint(0, 3, (2, 4, 4))
    assert torch.equal(confusion_matrix(preds, torch.full((2, 4, 4), 7), 3, ignore_index=7),
                       torch.zeros(3, 3, dtype=torch.int64))
    empty = torch.zeros(0, 4, 4, dtype=torch.int64)
    assert torch.equal(confusion_matrix(empty, empty, 3), torch.zeros(3, 3, dtype=torch.int64))
    assert torch.equal(confusion_matrix_from_logits(torch.randn(0, 3, 4, 4), empty),
                       torch.zeros(3, 3, dtype=torch.int64))


@pytest.mark.kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_confusion_matrix_from_logits_equals_argmax_input(dtype):
    k = 6
    logits = torch.randn(2, k, 5, 7).to(dtype)
    target = torch.randint(0, k, (2, 5, 7))
    target[1, 0] = -100
    expected = reference_confmat(logits.float().argmax(1), target, k, -100)
    assert torch.equal(confusion_matrix_from_logits(logits, target), expected)
    assert torch.equal(confusion_matrix(logits, target, k), expected)
    channels_last = logits.to(memory_format=torch.channels_last)
    assert torch.equal(confusion_matrix_from_logits(channels_last, target), expected)


@pytest.mark.kernel
def test_confusion_matrix_from_logits_ties_go_to_lower_class_and_nan_is_largest():
    logits = torch.zeros(1, 3, 1, 4)
    logits[0, :, 0, 0] = torch.tensor([1.0, 5.0, 5.0])                  # tie: class 1
    logits[0, :, 0, 1] = torch.tensor([2.0, float("nan"), 3.0])         # NaN: class 1
    logits[0, :, 0, 2] = torch.tensor([float("-inf")] * 3)              # all -inf: class 0
    logits[0, :, 0, 3] = torch.tensor([0.0, 0.0, 9.0])                  # class 2
    target = torch.tensor([[[0, 0, 0, 0]]])
    cm = confusion_matrix_from_logits(logits, target)
    assert cm[0].tolist() == [1, 2, 1]


@pytest.mark.kernel
def test_confusion_matrix_classification_shapes():
    preds, target = torch.randint(0, 4, (50,)), torch.randint(0, 4, (50,))
    assert torch.equal(confusion_matrix(preds, target, 4), reference_confmat(preds, target, 4))
    logits = torch.randn(50, 4)
    assert torch.equal(confusion_matrix_from_logits(logits, target),
                       reference_confmat(logits.argmax(1), target, 4))


def test_confusion_matrix_errors_name_the_label():
    preds = torch.randint(0, 3, (1, 4, 4))
    target = torch.randint(0, 3, (1, 4, 4))
    target[0, 0, 0] = 23
    with pytest.raises(ValueError, match=r"confusion_matrix: target has label 23 but num_classes is 3 "
                                         r"\(set ignore_index=23"):
        confusion_matrix(preds, target, 3)
    assert confusion_matrix(preds, target, 3, ignore_index=23).sum() == 15
    bad_preds = preds.clone()
    bad_preds[0, 1, 1] = -2
    with pytest.raises(ValueError, match="preds has label -2"):
        confusion_matrix(bad_preds, target, 3, ignore_index=23)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(preds[:, :2], target, 3)
    with pytest.raises(TypeError, match="target must be an integer tensor"):
        confusion_matrix(preds, target.float(), 3)
    with pytest.raises(TypeError, match="preds must be integer class indices"):
        confusion_matrix(preds.float(), target, 3)
    with pytest.raises(ValueError, match="logits have 5 classes but num_classes is 3"):
        confusion_matrix(torch.randn(1, 5, 4, 4), target, 3, ignore_index=23)
    with pytest.raises(ValueError, match="confusion_matrix_from_logits: target has label 23"):
        confusion_matrix_from_logits(torch.randn(1, 3, 4, 4), target)


@pytest.mark.kernel
def test_confusion_matrix_opcheck():
    preds, target = torch.randint(0, 4, (2, 3, 5)), torch.randint(0, 4, (2, 3, 5))
    torch.library.opcheck(torch.ops.tritonvision.confusion_matrix.default, (preds, target, 4, -100))
    torch.library.opcheck(torch.ops.tritonvision.confusion_matrix_from_logits.default,
                          (torch.randn(2, 4, 15), target.reshape(2, 15), -100))


class _Counter(torch.nn.Module):
    def forward(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.ops.tritonvision.confusion_matrix(preds, target, 4, 255)


@pytest.mark.kernel
def test_confusion_matrix_compile_export_script():
    preds, target = torch.randint(0, 4, (2, 3, 5)), torch.randint(0, 4, (2, 3, 5))
    target[0, 0, 0] = 255
    expected = reference_confmat(preds, target, 4, 255)
    compiled = torch.compile(lambda p, t: confusion_matrix(p, t, 4, ignore_index=255) * 1, fullgraph=True)
    assert torch.equal(compiled(preds, target), expected)
    assert torch.equal(torch.export.export(_Counter(), (preds, target)).module()(preds, target), expected)
    assert torch.equal(torch.jit.script(_Counter())(preds, target), expected)


# ----------------------------------------------------------------------------- the metrics
@pytest.mark.kernel
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_segmentation_metrics_match_definitions(ignore_index):
    k = 5
    preds = torch.randint(0, k, (3, 8, 6))
    target = torch.where(torch.rand(3, 8, 6) < 0.6, preds, torch.randint(0, k, (3, 8, 6)))
    if ignore_index is not None:
        target[0, :3] = ignore_index
    metric = SegmentationMetrics(k, ignore_index=ignore_index)
    metric.update(preds, target)
    assert_metrics_equal(metric.compute(), reference_metrics(preds, target, k, ignore_index))


@pytest.mark.kernel
def test_segmentation_metrics_absent_class_is_nan_and_left_out_of_means():
    # class 3 never appears in prediction or target; class 2 only in the prediction
    target = torch.tensor([[0, 0, 1, 1, 0, 1]])
    preds = torch.tensor([[0, 2, 1, 0, 0, 1]])
    metric = SegmentationMetrics(4)
    metric.update(preds, target)
    out = metric.compute()
    assert math.isnan(out["iou"][3]) and math.isnan(out["dice"][3])
    assert out["iou"][2] == 0 and math.isnan(out["accuracy"][2])
    # IoU: class 0: TP 2, FP 1, FN 1 -> 1/2; class 1: TP 2, FP 0, FN 1 -> 2/3; class 2: 0
    torch.testing.assert_close(out["miou"], torch.tensor((1 / 2 + 2 / 3 + 0) / 3, dtype=torch.float64))
    assert_metrics_equal(out, reference_metrics(preds, target, 4))


def test_segmentation_metrics_lecture_example_background_90_cat_8_dog_2():
    # 100 pixels: background 90, cat 8, dog 2; a lazy model predicts background everywhere
    target = torch.tensor([0] * 90 + [1] * 8 + [2] * 2).view(1, 10, 10)
    lazy = torch.zeros_like(target)
    metric = SegmentationMetrics(3)
    metric.update(lazy, target)
    out = metric.compute()
    assert out["pixel_accuracy"] == 0.9                       # looks good ...
    torch.testing.assert_close(out["iou"], torch.tensor([0.9, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(out["miou"], torch.tensor(0.3, dtype=torch.float64))   # ... is not
    torch.testing.assert_close(out["fwiou"], torch.tensor(0.9 * 0.9, dtype=torch.float64))
    torch.testing.assert_close(out["dice"], torch.tensor([180 / 190, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(out["mean_accuracy"], torch.tensor(1 / 3, dtype=torch.float64))
    # a model that finds the cat but calls the dog a cat
    better = target.clone()
    better[target == 2] = 1
    metric.reset()
    metric.update(better, target)
    out = metric.compute()
    assert out["pixel_accuracy"] == 0.98
    torch.testing.assert_close(out["iou"], torch.tensor([1.0, 0.8, 0.0], dtype=torch.float64))
    torch.testing.assert_close(out["fwiou"], torch.tensor(0.9 + 0.08 * 0.8, dtype=torch.float64))


@pytest.mark.kernel
def test_segmentation_metrics_merge_of_halves_equals_one_pass_and_logits_equal_labels():
    k = 4
    logits = torch.randn(4, k, 5, 6)
    target = torch.randint(0, k, (4, 5, 6))
    whole = SegmentationMetrics(k)
    whole.update(logits, target)
    first, second = SegmentationMetrics(k), SegmentationMetrics(k)
    first.update(logits[:2].argmax(1), target[:2])
    second.update(logits[2:].argmax(1), target[2:])
    merged = first.merge(second)
    assert torch.equal(merged.confmat, whole.confmat)
    assert_metrics_equal(merged.compute(), reference_metrics(logits.argmax(1), target, k))
    with pytest.raises(ValueError, match="same num_classes"):
        first.merge(SegmentationMetrics(k + 1))


def test_ignored_class_kept_by_default_dropped_as_torchmetrics_on_request():
    """ignore_index=0 inside [0, K): by default class 0 stays (its predictions elsewhere are
    its false positives: IoU 0, in the mean); drop_ignored_class=True leaves it out entirely."""
    preds = torch.tensor([[0, 1, 2, 2, 1, 0]])
    target = torch.tensor([[0, 1, 2, 1, 1, 2]])
    kept, dropped = SegmentationMetrics(3, ignore_index=0), SegmentationMetrics(3, ignore_index=0,
                                                                                  drop_ignored_class=True)
    kept.update(preds, target)
    dropped.update(preds, target)
    # counted pixels (target != 0): (t1,p1), (t2,p2), (t1,p2), (t1,p1), (t2,p0)
    # class 1: TP 2, FN 1 -> IoU 2/3; class 2: TP 1, FP 1, FN 1 -> IoU 1/3; class 0: FP 1 -> IoU 0
    k, d = kept.compute(), dropped.compute()
    assert k["iou"].tolist() == pytest.approx([0.0, 2 / 3, 1 / 3])
    assert k["miou"].item() == pytest.approx(1 / 3)
    assert torch.isnan(d["iou"][0]) and d["iou"][1:].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert d["miou"].item() == pytest.approx(1 / 2)


def test_metric_is_a_module_and_its_counts_move_with_to():
    metric = SegmentationMetrics(3)
    assert isinstance(metric, torch.nn.Module) and "confmat" in dict(metric.named_buffers())
    assert metric.to(torch.float64).confmat.dtype == torch.int64  # counts stay integers


def test_segmentation_metrics_empty_is_nan_and_reset_clears():
    metric = SegmentationMetrics(3, ignore_index=255)
    out = metric.compute()
    assert int(out.pop("confusion_matrix").sum()) == 0
    assert all(bool(torch.isnan(v).all()) for v in out.values())
    metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))
    assert metric.compute()["pixel_accuracy"] == 1.0
    metric.reset()
    assert int(metric.confmat.sum()) == 0
    with pytest.raises(ValueError, match=r"logits must be \[B, 3, \*spatial\]"):
        metric.update(torch.randn(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_segmentation_metrics_sync_is_a_no_op_without_torch_distributed():
    metric = SegmentationMetrics(3)
    metric.update(torch.tensor([[0, 1, 2, 2]]), torch.tensor([[0, 1, 1, 2]]))
    before = metric.confmat.clone()
    metric.sync()
    assert torch.equal(metric.confmat, before)


_SYNC_WORKER = """
import json, os, sys, torch, torch.distributed as dist
from tritonvision.metrics import SegmentationMetrics
rank, store, data = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
metric = SegmentationMetrics(4, ignore_index=255)
metric.update(torch.tensor(data["preds"][rank]), torch.tensor(data["target"][rank]))
local = metric.confmat.clone()
miou = metric.compute()["miou"].item()          # sums over the ranks by itself ...
assert torch.equal(metric.confmat, local)       # ... leaving this rank's counts as they were
metric.sync()                                   # sync(): this rank now holds the sum
print(json.dumps([metric.confmat.tolist(), miou]), flush=True)
dist.barrier()                  # neither rank leaves while the other still talks to it
dist.destroy_process_group()
os._exit(0)                     # skip interpreter teardown (gloo threads can abort it)
"""


def test_segmentation_metrics_compute_and_sync_sum_two_ranks():
    import json
    import subprocess
    import sys

    preds = torch.randint(0, 4, (2, 1, 5, 6))
    target = torch.randint(0, 4, (2, 1, 5, 6))
    target[1, 0, 0] = 255
    data = json.dumps({"preds": preds.tolist(), "target": target.tolist()})
    expected = reference_confmat(preds, target, 4, 255).tolist()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TRITON_INTERPRET", None)
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        workers = [subprocess.Popen([sys.executable, "-c", _SYNC_WORKER, str(rank), store, data],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                   for rank in range(2)]
        results = [w.communicate(timeout=120) for w in workers]
    expected_miou = metrics_from_confusion_matrix(torch.tensor(expected))["miou"].item()
    for worker, (out, err) in zip(workers, results):
        assert worker.returncode == 0, err
        confmat, miou = json.loads(out.strip().splitlines()[-1])
        assert confmat == expected and miou == pytest.approx(expected_miou, abs=1e-12)


# ----------------------------------------------------------------------------- GPU
def bincount_confmat(logits, target, k, ignore_index):
    """torch.bincount of (target, argmax) pairs on CPU, ignored pixels left out."""
    preds, target = logits.argmax(1).cpu(), target.cpu()
    ok = target != ignore_index if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    return torch.bincount((target[ok] * k + preds[ok]).long(), minlength=k * k).view(k, k)


def _segmentation_batch(k, b=4, h=96, w=80, dtype=torch.float32, ignore_index=255):
    logits = torch.randn(b, k, h, w).to(dtype)
    target = torch.randint(0, k, (b, h, w))
    if ignore_index is not None:
        target[:, :8] = ignore_index
    return logits, target


@pytest.mark.gpu
@pytest.mark.parametrize("k", [1, 2, 3, 21, 63, 64, 100])      # K <= 63: per-program histogram; above: atomics
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
@pytest.mark.parametrize("ignore_index", [255, None])
def test_confusion_matrix_cuda_matches_bincount(k, dtype, ignore_index):
    logits, target = _segmentation_batch(k, dtype=dtype, ignore_index=ignore_index)
    expected = bincount_confmat(logits, target, k, ignore_index)
    logits, target = logits.cuda(), target.cuda()
    preds = logits.argmax(1)
    assert torch.equal(confusion_matrix(preds, target, k, ignore_index=ignore_index).cpu(), expected)
    assert torch.equal(confusion_matrix_from_logits(logits, target, ignore_index=ignore_index).cpu(), expected)
    channels_last = logits.contiguous(memory_format=torch.channels_last)
    assert torch.equal(confusion_matrix_from_logits(channels_last, target, ignore_index=ignore_index).cpu(),
                       expected)


@pytest.mark.gpu
@pytest.mark.parametrize("k", [3, 64])
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "labels"])
def test_gpu_segmentation_metrics_update_is_sync_free_and_graph_capturable(k, from_logits):
    from conftest import capture, no_host_sync

    logits, target = _segmentation_batch(k)
    static_logits, static_target = logits.cuda(), target.cuda()
    metric = SegmentationMetrics(k, ignore_index=255, device="cuda")

    def update():
        metric.update(static_logits if from_logits else static_logits.argmax(1), static_target)
    update()                                                     # warm up (Triton compiles)
    torch.cuda.synchronize()
    with no_host_sync():
        update()
    assert torch.equal(metric.confmat.cpu(), 2 * bincount_confmat(logits, target, k, 255))
    graph, _ = capture(update)
    metric.confmat.zero_()                                       # in place: the graph adds into this tensor
    fresh_logits, fresh_target = _segmentation_batch(k)
    static_logits.copy_(fresh_logits)
    static_target.copy_(fresh_target)
    graph.replay()
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(metric.confmat.cpu(), 2 * bincount_confmat(fresh_logits, fresh_target, k, 255))
    expected = SegmentationMetrics(k, ignore_index=255)
    expected.update(fresh_logits.argmax(1), fresh_target)
    expected.update(fresh_logits.argmax(1), fresh_target)          # two replays: every count twice
    for name, value in metric.compute().items():
        torch.testing.assert_close(value.cpu(), expected.compute()[name], equal_nan=True)


BAD_LABEL_ON_CUDA = """
import torch
from tritonvision.metrics import SegmentationMetrics
metric = SegmentationMetrics(4, ignore_index=255, device="cuda")
logits = torch.randn(2, 4, 8, 8, device="cuda")
target = torch.randint(0, 4, (2, 8, 8), device="cuda")
metric.update(logits, target)                                    # warm up
torch.cuda.synchronize()
target[1, 4, 4] = 9
torch.cuda.set_sync_debug_mode("error")
metric.update(logits, target)
torch.cuda.set_sync_debug_mode("default")
print(metric.confmat.sum().item())
"""


@pytest.mark.gpu
def test_gpu_bad_label_fails_a_device_side_assertion_without_a_sync():
    from conftest import run_expecting_device_assert
    run_expecting_device_assert(BAD_LABEL_ON_CUDA)
