"""Benchmark cases of non-maximum suppression: nms and batched_nms_padded, fp32.

* nms over N boxes of a 640x640 image (2..100 px wide, random scores), IoU 0.5:
  N = 1k, 10k, 100k ("full"); 1k and 10k ("small": the 10k case is the CPU
  comparison with torchvision's CPU kernel). Anchor: ``torchvision.ops.nms``.
* batched_nms_padded over B images x N boxes x C classes, YOLO-like scores (about
  0.5% of (box, class) pairs above the 0.25 score threshold), IoU 0.45, at most 300
  detections per image: B=16, N=5000, C=80 ("full"); B=2, N=500, C=10 ("small").
  Anchor: the per-image Python loop people write today (score filter, then
  ``torchvision.ops.batched_nms``, then the top 300). On CUDA, "ours-graph" replays a
  CUDA graph of our call (possible because it never syncs with the host).

Minimum traffic: boxes and scores read once (16 + 4 bytes per box for nms; 16 per box
plus 4 per (box, class) score for the padded op), the outputs written once.
"""
from __future__ import annotations

import torch

from perf.harness import BenchCase

NMS_SIZES = {"tiny": [60], "small": [1_000, 10_000], "full": [1_000, 10_000, 100_000]}
PADDED_SIZES = {"tiny": (1, 40, 3), "small": (2, 500, 10), "full": (16, 5000, 80)}
IOU = 0.5
PADDED_IOU, SCORE_THRESHOLD, MAX_OUT = 0.45, 0.25, 300


def _boxes(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Boxes of a 640x640 image, 2..100 px wide: clusters of overlaps and isolated boxes."""
    xy = torch.rand(*shape, 2, generator=generator) * 600
    wh = 2 + torch.rand(*shape, 2, generator=generator) * 98
    return torch.cat([xy, xy + wh], dim=-1)


def torchvision_per_image(boxes: torch.Tensor, scores: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """The usual YOLO postprocess: per image, score filter, batched_nms, top MAX_OUT."""
    import torchvision.ops as tv

    results = []
    for b in range(boxes.shape[0]):
        n_idx, c_idx = (scores[b] > SCORE_THRESHOLD).nonzero().unbind(1)
        cand_scores = scores[b][n_idx, c_idx]
        keep = tv.batched_nms(boxes[b][n_idx], cand_scores, c_idx, PADDED_IOU)[:MAX_OUT]
        results.append((boxes[b][n_idx[keep]], cand_scores[keep], c_idx[keep], n_idx[keep]))
    return results


def _graph_replay(fn):
    """A CUDA graph of ``fn`` captured on the first call's shapes; each call copies the
    inputs into the static buffers and replays."""
    state = {}

    def call(*inputs):
        if "graph" not in state:
            static = [t.clone() for t in inputs]
            fn(*static)                                     # warm-up: Triton compiles outside capture
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = fn(*static)
            state.update(graph=graph, static=static, out=out)
        for dst, src in zip(state["static"], inputs):
            dst.copy_(src)
        state["graph"].replay()
        return state["out"]
    return call


def cases(device: torch.device, size: str) -> list[BenchCase]:
    import torchvision.ops as tv

    import tritonvision.ops as ops

    found = []
    for n in NMS_SIZES[size]:
        def make_nms_inputs(k: int, n: int = n) -> tuple:
            generator = torch.Generator().manual_seed(2000 + k)
            return (_boxes((n,), generator).to(device), torch.rand(n, generator=generator).to(device))
        found.append(BenchCase(
            family="nms", name="nms", shape=f"N={n} iou={IOU}", dtype="float32",
            make_inputs=make_nms_inputs,
            ours=lambda b, s: ops.nms(b, s, IOU),
            baselines={"torchvision": lambda b, s: tv.nms(b, s, IOU)},
            bytes_moved=n * 20 + n * 8))

    batch, n, classes = PADDED_SIZES[size]

    def make_padded_inputs(k: int) -> tuple:
        generator = torch.Generator().manual_seed(3000 + k)
        boxes = _boxes((batch, n), generator)
        scores = torch.rand(batch, n, classes, generator=generator) ** 300   # ~0.5% above 0.25
        return boxes.to(device), scores.to(device)

    def ours_padded(boxes: torch.Tensor, scores: torch.Tensor):
        return ops.batched_nms_padded(boxes, scores, PADDED_IOU, SCORE_THRESHOLD, MAX_OUT)

    baselines = {"torchvision": torchvision_per_image}
    if device.type == "cuda":
        baselines["ours-graph"] = _graph_replay(ours_padded)
    found.append(BenchCase(
        family="nms", name="batched_nms_padded", shape=f"B={batch} N={n} C={classes} K={MAX_OUT}",
        dtype="float32", make_inputs=make_padded_inputs, ours=ours_padded, baselines=baselines,
        bytes_moved=batch * n * (16 + 4 * classes) + batch * MAX_OUT * (16 + 4 + 8 + 8)))
    return found
