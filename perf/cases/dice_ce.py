"""Benchmark cases of the fused Dice + cross-entropy loss, forward + backward (d loss / d logits).

Shapes ("full"): B=8, C=21, 512x512 (VOC-like) and B=2, C=150, 512x512 (ADE20K-like);
"small" (CPU smoke): B=2, C=5, 32x32 and B=1, C=12, 32x32. fp32 and bf16 logits, int64 labels.

Baselines: "eager" -- the MONAI-style DiceCE written below with a one-hot target
(softmax and one-hot in the logits' dtype, as MONAI's DiceCELoss does, Dice per
(sample, class), mean, plus ``F.cross_entropy``), and "compile" -- ``torch.compile`` of it.

Minimum traffic of ours: logits read twice (forward and backward), labels read twice,
the gradient written once: 3 * B*C*H*W * sizeof(logits) + 2 * B*H*W * 8 bytes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from perf.harness import BenchCase, compiled

SIZES = {"tiny": [(1, 3, 6, 6)], "small": [(2, 5, 32, 32), (1, 12, 32, 32)], "full": [(8, 21, 512, 512), (2, 150, 512, 512)]}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def eager_dice_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MONAI's DiceCELoss(softmax=True, to_onehot_y=True) math, with the one-hot target built."""
    num_classes = logits.shape[1]
    prob = torch.softmax(logits, 1)
    onehot = F.one_hot(target, num_classes).movedim(-1, 1).to(prob.dtype)
    dims = list(range(2, logits.dim()))
    inter = (prob * onehot).sum(dims)
    denominator = prob.sum(dims) + onehot.sum(dims)
    dice = (1.0 - (2.0 * inter + 1e-5) / (denominator + 1e-5)).mean()
    return dice + F.cross_entropy(logits, target)


def _fwd_bwd(loss_fn):
    def run(logits: torch.Tensor, target: torch.Tensor):
        return torch.autograd.grad(loss_fn(logits, target), logits)
    run.__name__ = f"fwd_bwd_{getattr(loss_fn, '__name__', 'loss')}"
    return run


def cases(device: torch.device, size: str) -> list[BenchCase]:
    import tritonvision.ops as ops

    found = []
    for b, c, h, w in SIZES[size]:
        for dtype_name, dtype in DTYPES.items():
            def make_inputs(k: int, b=b, c=c, h=h, w=w, dtype=dtype) -> tuple:
                generator = torch.Generator().manual_seed(2000 + k)
                logits = torch.randn(b, c, h, w, generator=generator).to(device=device, dtype=dtype)
                target = torch.randint(0, c, (b, h, w), generator=generator).to(device)
                return logits.requires_grad_(), target

            logits_bytes = b * c * h * w * dtype.itemsize
            found.append(BenchCase(
                family="dice_ce", name="dice_ce_loss_fwd_bwd", shape=f"B={b} C={c} {h}x{w}", dtype=dtype_name,
                make_inputs=make_inputs, ours=_fwd_bwd(ops.dice_ce_loss),
                baselines={"eager": _fwd_bwd(eager_dice_ce), "compile": _fwd_bwd(compiled(eager_dice_ce))},
                bytes_moved=3 * logits_bytes + 2 * b * h * w * 8))
    return found
