"""Benchmark cases of the segmentation confusion matrix (the state of SegmentationMetrics).

Shapes: VOC-like evaluation batches, B = 8, 512 x 512, K = 21 (local-histogram path)
and K = 150 (ADE20K, one global atomic per pixel) ("full"); B = 1, 64 x 64, K = 21
("small"). Two inputs: int64 label maps, and fp32 / bf16 logits [B, K, H, W] with the
argmax fused.

Baselines: "eager" (the torchmetrics recipe: mask, ``bincount(t * K + p)``, reshape;
for logits an ``argmax`` first), "compile" (``torch.compile`` of the same), and
"torchmetrics" (``multiclass_confusion_matrix``) when torchmetrics is installed.

Minimum traffic: read the labels once (labels: 2 * 8 bytes per pixel; logits:
K * itemsize + 8 bytes per pixel), write K * K * 8 bytes.
"""
from __future__ import annotations

import torch

from perf.harness import BenchCase, compiled

SHAPES = {"tiny": [(1, 12, 5)], "small": [(1, 64, 21)], "full": [(8, 512, 21), (8, 512, 150)]}
IGNORE = 255


def eager_confmat(preds: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    ok = target != IGNORE
    return torch.bincount(target[ok] * k + preds[ok], minlength=k * k).reshape(k, k)


def eager_confmat_static(preds: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """The same without boolean indexing (compile-friendly: no data-dependent shape)."""
    pairs = torch.where(target != IGNORE, target * k + preds, k * k)
    return torch.bincount(pairs.reshape(-1), minlength=k * k + 1)[:k * k].reshape(k, k)


def cases(device: torch.device, size: str) -> list[BenchCase]:
    import tritonvision.ops as ops

    anchors = {}
    try:
        from torchmetrics.functional.classification import multiclass_confusion_matrix
        anchors["torchmetrics"] = multiclass_confusion_matrix
    except ImportError:
        pass

    found = []
    for b, hw, k in SHAPES[size]:
        shape = f"B={b} {hw}x{hw} K={k}"
        pixels = b * hw * hw

        def make_labels(i: int, b=b, hw=hw, k=k) -> tuple:
            generator = torch.Generator().manual_seed(3000 + i)
            target = torch.randint(0, k, (b, hw, hw), generator=generator)
            target[:, :4] = IGNORE
            preds = torch.where(torch.rand(b, hw, hw, generator=generator) < 0.7, target.clamp(max=k - 1),
                                torch.randint(0, k, (b, hw, hw), generator=generator))
            return preds.to(device), target.to(device)

        baselines = {"eager": lambda p, t, k=k: eager_confmat(p, t, k),
                     "compile": compiled(lambda p, t, k=k: eager_confmat_static(p, t, k))}
        if "torchmetrics" in anchors:
            baselines["torchmetrics"] = lambda p, t, k=k, f=anchors["torchmetrics"]: f(
                p, t, num_classes=k, ignore_index=IGNORE)
        found.append(BenchCase(
            family="confusion_matrix", name="confusion_matrix", shape=shape, dtype="int64",
            make_inputs=make_labels,
            ours=lambda p, t, k=k: ops.confusion_matrix(p, t, k, ignore_index=IGNORE),
            baselines=baselines, bytes_moved=pixels * 16 + k * k * 8))

        for dtype_name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
            item = torch.empty((), dtype=dtype).element_size()

            def make_logits(i: int, b=b, hw=hw, k=k, dtype=dtype) -> tuple:
                generator = torch.Generator().manual_seed(4000 + i)
                logits = torch.randn(b, k, hw, hw, generator=generator).to(device=device, dtype=dtype)
                target = torch.randint(0, k, (b, hw, hw), generator=generator)
                target[:, :4] = IGNORE
                return logits, target.to(device)

            def eager_logits(x, t, k=k):
                return eager_confmat(x.argmax(1), t, k)

            def static_logits(x, t, k=k):
                return eager_confmat_static(x.argmax(1), t, k)

            found.append(BenchCase(
                family="confusion_matrix", name="confusion_matrix_from_logits", shape=shape,
                dtype=dtype_name, make_inputs=make_logits,
                ours=lambda x, t: ops.confusion_matrix_from_logits(x, t, ignore_index=IGNORE),
                baselines={"eager": eager_logits, "compile": compiled(static_logits)},
                bytes_moved=pixels * (k * item + 8) + k * k * 8))
    return found
