"""Benchmark cases of whole models: a training step of FCN-8s and U-Net, YOLO inference.

* ``fcn8s_train_step`` / ``unet_train_step``: forward + pixel cross-entropy + backward +
  AdamW step, "full" = 512x512, batch 8, width 64 (FCN-8s depth 3, U-Net depth 4), 21
  classes (VOC); "small" = 32x32, batch 2, width 4.
* ``yolo_infer_postprocess``: forward + decode + per-class NMS, "full" = batch 32 at 448x448
  (grid 14, stride 32, width 32, 20 classes); "small" = batch 2 at 64x64.

"ours" is the fused model (``deconv_skip`` / ``deconv_concat`` / ``upsample_bilinear_add``,
``CrossEntropy2d``; ``batched_nms_padded`` for YOLO) under ``torch.compile``, channels-last
on CUDA. Baselines: "eager" -- the same weights with ``fused=False`` (plain torch layers,
``F.cross_entropy``; for YOLO ``torchvision.ops.batched_nms`` image by image, which syncs)
-- and "compile" -- ``torch.compile`` of that unfused model (NMS stays torchvision's).
Each variant owns its model and optimizer, so repeated steps keep training each copy.
flops: 0 (not a single-op roofline); bytes_moved: 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from perf.harness import BenchCase

SEG = {
    "tiny": dict(size=16, batch=1, width=2, classes=3),
    "small": dict(size=32, batch=2, width=4, classes=4),
    "full": dict(size=512, batch=8, width=64, classes=21),
}
YOLO_SIZES = {
    "tiny": dict(size=32, batch=1, width=2, stride=16, classes=2),
    "small": dict(size=64, batch=2, width=4, stride=16, classes=3),
    "full": dict(size=448, batch=32, width=32, stride=32, classes=20),
}


def _seg_model(name: str, classes: int, width: int, fused: bool, size: str):
    from tritonvision.models import FCN8s, UNet
    if name == "fcn8s":
        return FCN8s(classes, width=width, depth=3, fused=fused)
    return UNet(3, classes, width=width, depth=4 if size == "full" else 2, batch_norm=True,
                fused=fused)


def _train_step(model, loss_fn, device: torch.device, compile_model: bool):
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    forward = torch.compile(model) if compile_model else model

    def train_step(images, masks):
        loss = loss_fn(forward(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()
    return train_step


def _seg_cases(device: torch.device, size: str) -> list[BenchCase]:
    from tritonvision.nn import CrossEntropy2d

    cfg = SEG[size]
    found = []
    for name in ("fcn8s", "unet"):
        reference = _seg_model(name, cfg["classes"], cfg["width"], True, size)
        state = reference.state_dict()

        def variant(fused: bool, compile_model: bool, name=name, state=state):
            model = _seg_model(name, cfg["classes"], cfg["width"], fused, size)
            model.load_state_dict(state)
            loss_fn = CrossEntropy2d(ignore_index=255) if fused else (
                lambda logits, target: F.cross_entropy(logits, target, ignore_index=255))
            return _train_step(model, loss_fn, device, compile_model)

        def make_inputs(n: int) -> tuple:
            generator = torch.Generator().manual_seed(5000 + n)
            images = torch.rand(cfg["batch"], 3, cfg["size"], cfg["size"], generator=generator)
            masks = torch.randint(0, cfg["classes"], (cfg["batch"], cfg["size"], cfg["size"]),
                                  generator=generator)
            images = images.to(device)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            return images, masks.to(device)

        found.append(BenchCase(
            family="models", name=f"{name}_train_step",
            shape=f"B={cfg['batch']} {cfg['size']}x{cfg['size']} width={cfg['width']}",
            dtype="float32", make_inputs=make_inputs, ours=variant(True, True),
            baselines={"eager": variant(False, False), "compile": variant(False, True)}))
    return found


def _yolo_cases(device: torch.device, size: str) -> list[BenchCase]:
    from tritonvision.models import YOLO, YOLOInference

    cfg = YOLO_SIZES[size]
    grid = cfg["size"] // cfg["stride"]
    reference = YOLO(cfg["classes"], grid_size=grid, width=cfg["width"], stride=cfg["stride"])
    state = reference.state_dict()

    def variant(fused: bool, compile_model: bool):
        model = YOLO(cfg["classes"], grid_size=grid, width=cfg["width"], stride=cfg["stride"],
                     fused=fused)
        model.load_state_dict(state)
        model = model.to(device).eval()
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        if fused:
            runner = YOLOInference(model, score_threshold=0.25, iou_threshold=0.5)
            return torch.compile(runner) if compile_model else runner
        network = torch.compile(model) if compile_model else model

        def eager_inference(images):
            return model.postprocess(network(images), 0.25, 0.5, 100)
        return eager_inference

    def no_grad(fn):
        def run(images):
            with torch.no_grad():
                return fn(images)
        return run

    def make_inputs(n: int) -> tuple:
        generator = torch.Generator().manual_seed(6000 + n)
        images = torch.rand(cfg["batch"], 3, cfg["size"], cfg["size"], generator=generator).to(device)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        return (images,)

    return [BenchCase(
        family="models", name="yolo_infer_postprocess",
        shape=f"B={cfg['batch']} {cfg['size']}x{cfg['size']} grid={grid} C={cfg['classes']}",
        dtype="float32", make_inputs=make_inputs, ours=no_grad(variant(True, True)),
        baselines={"eager": no_grad(variant(False, False)),
                   "compile": no_grad(variant(False, True))})]


def cases(device: torch.device, size: str) -> list[BenchCase]:
    return _seg_cases(device, size) + _yolo_cases(device, size)
