"""Calls that reach every Triton kernel at every configuration the ops launch on a GPU.

``CALLS`` is a list of :class:`KernelCall`: a name and ``run(device) -> list[Tensor]``, which
builds its inputs from a seeded CPU generator (then ``.to(device)``), runs one public op --
forward, and backward where the op is differentiable -- and returns the outputs and input
gradients. The same call on CUDA and on CPU returns tensors of the same shapes and dtypes,
so results can be compared across devices.

Sizes are odd and not powers of two, so every kernel sees partial tiles and masked lanes.
Coverage, per kernel: every dtype the op takes, every tile-size class its launcher picks
(``LAUNCH`` tables in ``tritonvision/ops/*.py``), each flag constexpr at least once.
Users: ``perf/resources.py`` (records the launches of these calls and compiles each for
sm_90), ``tests/test_kernels_compile_for_gpu.py`` through it, and the GPU smoke run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

import tritonvision.ops as ops

FLOATS = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32, "fp64": torch.float64}


@dataclass(frozen=True)
class KernelCall:
    """One op call: ``run(device)`` returns its outputs and gradients (comparable across devices).
    ``tf32``: float32 dots round their operands to TF32 on a GPU (10-bit mantissa), so a
    comparison with the CPU path takes half-precision bounds."""
    name: str
    run: Callable[[torch.device], list[Tensor]]
    tf32: bool = False


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(shape, g: torch.Generator, dtype: torch.dtype, device: torch.device, grad: bool = False) -> Tensor:
    t = torch.randn(shape, generator=g).to(device=device, dtype=dtype)
    return t.requires_grad_() if grad else t


def _boxes(n: int, g: torch.Generator, dtype: torch.dtype, device: torch.device, grad: bool = False) -> Tensor:
    """n well-formed (x1, y1, x2, y2) boxes in a 100 x 100 image, many overlapping."""
    xy = torch.rand(n, 2, generator=g) * 80
    wh = 1 + torch.rand(n, 2, generator=g) * 30
    boxes = torch.cat([xy, xy + wh], 1).to(device=device, dtype=dtype)
    return boxes.requires_grad_() if grad else boxes


def _with_grads(outputs: list[Tensor], inputs: list[Tensor], g: torch.Generator) -> list[Tensor]:
    """outputs + d(sum_i <outputs_i, w_i>)/d inputs, w_i seeded random weights."""
    weights = [torch.randn(o.shape, generator=g).to(o) for o in outputs]
    grads = torch.autograd.grad(outputs, inputs, weights)
    return [o.detach() for o in outputs] + list(grads)


# ----------------------------------------------------------------------------- box IoU family
def _overlap_call(variant: str, dtype_name: str, aligned: bool) -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        g = _generator(11)
        dtype = FLOATS[dtype_name]
        a = _boxes(301 if aligned else 45, g, dtype, device, grad=True)
        b = _boxes(301 if aligned else 133, g, dtype, device, grad=True)
        return _with_grads([ops.box_overlap(a, b, variant, aligned=aligned)], [a, b], g)
    return KernelCall(f"box_overlap/{variant}/{'aligned' if aligned else 'pairwise'}/{dtype_name}", run)


def _threshold_call(dtype_name: str, upper: bool) -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        g = _generator(12)
        a = torch.stack([_boxes(45, g, FLOATS[dtype_name], device) for _ in range(3)])
        b = torch.stack([_boxes(77, g, FLOATS[dtype_name], device) for _ in range(3)])
        return [ops.box_iou_threshold(a, b, 0.3, upper=upper)]
    return KernelCall(f"box_iou_threshold/{'upper' if upper else 'full'}/{dtype_name}", run)


def box_iou_calls() -> list[KernelCall]:
    calls = [_overlap_call(variant, dtype, aligned) for variant in ("iou", "giou", "diou", "ciou")
             for dtype in FLOATS for aligned in (False, True)]
    return calls + [_threshold_call(dtype, upper) for dtype in FLOATS for upper in (False, True)]


# ----------------------------------------------------------------------------- NMS
def _nms_call(dtype_name: str) -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        g = _generator(21)
        boxes = _boxes(157, g, FLOATS[dtype_name], device)
        return [ops.nms(boxes, torch.rand(157, generator=g).to(device), 0.45)]
    return KernelCall(f"nms/{dtype_name}", run)


def _segmented_nms_call() -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        # the registered op itself: the public batched_nms takes the coordinate-offset
        # path (one plain nms) for few boxes, at a device-dependent size
        g = _generator(22)
        boxes = _boxes(211, g, torch.float32, device)
        scores = torch.rand(211, generator=g).to(device)
        labels = torch.randint(0, 5, (211,), generator=g).to(device)
        return [torch.ops.tritonvision.batched_nms(boxes, scores, labels, 0.5)]
    return KernelCall("batched_nms/segmented/fp32", run)


def _padded_nms_call(class_agnostic: bool) -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        g = _generator(23)
        boxes = torch.stack([_boxes(29, g, torch.float32, device) for _ in range(2)])
        scores = torch.rand(2, 29, 5, generator=g).to(device)
        return list(ops.batched_nms_padded(boxes, scores, 0.5, 0.3, 37, class_agnostic=class_agnostic))
    return KernelCall(f"batched_nms_padded/{'agnostic' if class_agnostic else 'per_class'}/fp32", run)


def nms_calls() -> list[KernelCall]:
    return [_nms_call(dtype) for dtype in ("fp32", "fp64")] + [_segmented_nms_call()] + \
        [_padded_nms_call(agnostic) for agnostic in (False, True)]


# ----------------------------------------------------------------------------- Dice + CE
DICE_CLASS_COUNTS = (1, 3, 5, 11, 21, 37, 81, 150, 300, 1000)
"""One class count per class-tile size the launcher picks (BLOCK_C = 2, 4, ..., 1024)."""


def _dice_ce_call(dtype_name: str, classes: int, squared: bool) -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        g = _generator(31)
        size = (7, 9) if classes <= 64 else (3, 5)      # fewer pixels where a tile holds few
        logits = _randn((2, classes, *size), g, FLOATS[dtype_name], device, grad=True)
        target = torch.randint(0, classes, (2, *size), generator=g)
        target[0, 0, :3] = 255
        loss = ops.dice_ce_loss(logits, target.to(device), squared_pred=squared, ignore_index=255)
        return _with_grads([loss], [logits], g)
    return KernelCall(f"dice_ce_loss/C={classes}{'/squared' if squared else ''}/{dtype_name}", run)


def _sigmoid_call(dtype_name: str, squared: bool) -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        g = _generator(32)
        logits = _randn((2, 3, 37, 41), g, FLOATS[dtype_name], device, grad=True)
        target = (torch.rand(2, 3, 37, 41, generator=g) > 0.5).to(device=device, dtype=FLOATS[dtype_name])
        loss = ops.dice_ce_loss(logits, target, sigmoid=True, squared_pred=squared)
        return _with_grads([loss], [logits], g)
    return KernelCall(f"dice_ce_loss/sigmoid{'/squared' if squared else ''}/{dtype_name}", run)


def dice_ce_calls() -> list[KernelCall]:
    # float16/bfloat16 logits are converted to float32 as they are loaded: the float32 kernel
    # with other pointers, so three class counts (smallest, typical, largest tile) cover them
    calls = [_dice_ce_call(dtype, classes, False) for dtype in ("fp32", "fp64") for classes in DICE_CLASS_COUNTS]
    calls += [_dice_ce_call(dtype, classes, False) for dtype in ("fp16", "bf16") for classes in (1, 21, 1000)]
    calls += [_dice_ce_call(dtype, 21, True) for dtype in FLOATS]
    return calls + [_sigmoid_call(dtype, squared) for dtype in FLOATS for squared in (False, True)]


# ----------------------------------------------------------------------------- confusion matrix
CONFUSION_CLASS_COUNTS = (1, 2, 3, 5, 7, 11, 15, 21, 31, 45, 63, 70)
"""One class count per histogram size (K*K + 1 bins rounded up to 2, 8, ..., 4096) and one
past the per-program histogram (K >= 64: one atomic per pixel)."""


def _confusion_call(classes: int, label_dtype: torch.dtype) -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        g = _generator(41)
        preds = torch.randint(0, classes, (3, 37, 29), generator=g).to(device=device, dtype=label_dtype)
        target = torch.randint(0, classes, (3, 37, 29), generator=g).to(device=device, dtype=label_dtype)
        return [ops.confusion_matrix(preds, target, classes, ignore_index=None)]
    return KernelCall(f"confusion_matrix/K={classes}/{str(label_dtype).removeprefix('torch.')}", run)


def _confusion_logits_call(dtype_name: str, classes: int) -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        g = _generator(42)
        logits = _randn((3, classes, 37, 29), g, FLOATS[dtype_name], device)
        target = torch.randint(0, classes, (3, 37, 29), generator=g)
        target[0, :2] = 255
        return [ops.confusion_matrix_from_logits(logits, target.to(device), ignore_index=255)]
    return KernelCall(f"confusion_matrix_from_logits/K={classes}/{dtype_name}", run)


def confusion_matrix_calls() -> list[KernelCall]:
    calls = [_confusion_call(k, torch.int64) for k in CONFUSION_CLASS_COUNTS]
    calls += [_confusion_call(k, torch.uint8) for k in (5, 70)]
    return calls + [_confusion_logits_call(dtype, k) for dtype in FLOATS for k in (5, 70)]


# ----------------------------------------------------------------------------- deconv
def _deconv_call(dtype_name: str, cin: int, cout: int, kernel: int, stride: int, *, size: tuple[int, int] = (9, 7),
                 concat: bool = False,
                 channels_last: bool = False, tf32: bool = True, bias: bool = True, relu: bool = True) -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        g = _generator(51)
        dtype = FLOATS[dtype_name]
        x = _randn((2, cin, *size), g, dtype, device)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        x.requires_grad_()
        weight = _randn((cin, cout, kernel, kernel), g, dtype, device, grad=True)
        b = _randn((cout,), g, dtype, device, grad=True) if bias else None
        out_size = [(n - 1) * stride + kernel for n in size]
        skip = _randn((2, 5 if concat else cout, *out_size), g, dtype, device, grad=True)
        fn = ops.deconv_concat if concat else ops.deconv_skip
        previous = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = tf32
        try:
            out = fn(x, weight, b, skip, stride=stride, activation="relu" if relu else None)
            inputs = [x, weight, skip] + ([b] if bias else [])
            return _with_grads([out], inputs, g)
        finally:
            torch.backends.cudnn.allow_tf32 = previous
    flags = "".join(f"/{flag}" for flag, on in (("concat", concat), ("channels_last", channels_last),
                                                ("ieee", not tf32), ("no_bias", not bias), ("no_relu", not relu))
                    if on)
    return KernelCall(f"deconv/k{kernel}s{stride}/cin{cin}/cout{cout}{flags}/{dtype_name}", run,
                      tf32=tf32 and dtype_name == "fp32")


def deconv_calls() -> list[KernelCall]:
    calls = []
    for dtype in ("fp16", "bf16", "fp32"):
        # every (C_in, C_out) tile class (<= 32, more), then the other kernel sizes
        calls += [_deconv_call(dtype, cin, cout, 2, 2) for cin, cout in ((37, 29), (37, 45), (19, 133), (37, 133))]
        calls += [_deconv_call(dtype, 70, 21, 3, 2), _deconv_call(dtype, 70, 45, 4, 2, size=(5, 4))]
    # FCN's 16x16 / stride 8 (64 phases, 256 taps of grad_weight: slow in the interpreter, once)
    calls += [_deconv_call("fp32", 19, 7, 16, 8, size=(2, 2))]
    calls += [_deconv_call("fp32", 37, 45, 2, 2, tf32=False), _deconv_call("fp32", 37, 29, 4, 2, tf32=False),
              _deconv_call("fp32", 19, 133, 2, 2, tf32=False),
              _deconv_call("fp32", 37, 45, 2, 2, concat=True, channels_last=True, bias=False, relu=False)]
    # the cuDNN fallback + fused add/act kernel: float64, stride 1, kernel > 2 * stride
    calls += [_deconv_call(dtype, 11, 13, 3, 2) for dtype in ("fp64",)]
    calls += [_deconv_call(dtype, 11, 13, 3, 1) for dtype in ("fp16", "bf16", "fp32")]
    calls += [_deconv_call("fp32", 11, 13, 5, 2, concat=True, relu=False)]
    return calls


# ----------------------------------------------------------------------------- upsample
def _upsample_call(dtype_name: str, channels: int, size: tuple[int, int], scale: int,
                   channels_last: bool = False) -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        g = _generator(61)
        dtype = FLOATS[dtype_name]
        x = _randn((2, channels, *size), g, dtype, device)
        skip = _randn((2, channels, size[0] * scale + 1, size[1] * scale - 1), g, dtype, device)
        if channels_last:
            x, skip = x.to(memory_format=torch.channels_last), skip.to(memory_format=torch.channels_last)
        x.requires_grad_()
        skip.requires_grad_()
        return _with_grads([ops.upsample_bilinear_add(x, skip, scale)], [x, skip], g)
    layout = "/channels_last" if channels_last else ""
    return KernelCall(f"upsample_bilinear_add/x{scale}/C={channels}/{size[0]}x{size[1]}{layout}/{dtype_name}", run)


def upsample_calls() -> list[KernelCall]:
    calls = [_upsample_call(dtype, 3, (5, 7), 2) for dtype in FLOATS]
    calls += [_upsample_call("fp32", 2, (2, 521), 2), _upsample_call("fp32", 37, (5, 7), 2, channels_last=True),
              _upsample_call("fp16", 70, (3, 5), 2, channels_last=True)]
    return calls + [_upsample_call("fp32", 2, (2, 3), 8)]      # 18 x 17 candidates per gradient pixel


def _mask_iou_call(mask_dtype: torch.dtype, crowd: bool) -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        g = _generator(31)
        masks1 = (torch.rand(7, 9, 37, generator=g) < 0.4).to(mask_dtype).to(device)  # 333 px: 11 words
        masks2 = (torch.rand(5, 9, 37, generator=g) < 0.4).to(mask_dtype).to(device)
        iscrowd = (torch.rand(5, generator=g) < 0.5).to(device) if crowd else None
        return [ops.mask_iou(masks1, masks2, iscrowd)]
    return KernelCall(f"mask_iou/{str(mask_dtype).removeprefix('torch.')}{'/crowd' if crowd else ''}", run)


def _mask_nms_call() -> KernelCall:
    def run(device: torch.device) -> list[Tensor]:
        g = _generator(37)
        masks = (torch.rand(13, 11, 19, generator=g) < 0.5).to(device)
        scores = torch.rand(13, generator=g).to(device)
        labels = torch.randint(0, 3, (13,), generator=g).to(device)
        return [ops.mask_nms(masks, scores, 0.3), ops.matrix_nms(masks, labels, scores)]
    return KernelCall("mask_nms+matrix_nms/bool", run)


def mask_calls() -> list[KernelCall]:
    return [_mask_iou_call(torch.bool, False), _mask_iou_call(torch.uint8, True), _mask_nms_call()]


CALLS: list[KernelCall] = (box_iou_calls() + nms_calls() + dice_ce_calls() + confusion_matrix_calls()
                           + deconv_calls() + upsample_calls() + mask_calls())
"""Every call, in a fixed order; names are unique."""
