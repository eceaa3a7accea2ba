"""Decoder helpers the models share besides ``tritonvision.nn.DeconvSkip`` / ``DeconvConcat``.

``fused=True`` calls the ``tritonvision`` custom op (one Triton kernel on CUDA);
``fused=False`` runs the same math on plain torch ops. Under ``torch.jit.script`` the fused
path calls ``torch.ops.tritonvision.<op>`` directly with positional arguments (TorchScript
cannot see through the Python wrappers' keyword arguments); only the wrapper's argument
checks are skipped.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor

from tritonvision.ops.upsample import upsample_bilinear_add


def _centre_crop(t: Tensor, height: int, width: int) -> Tensor:
    """The centre ``height x width`` window of ``t`` [N, C, H, W] (U-Net's "copy and crop")."""
    top = (t.shape[-2] - height) // 2
    left = (t.shape[-1] - width) // 2
    return t[:, :, top:top + height, left:left + width]


def upsample_add(x: Tensor, skip: Tensor, fused: bool) -> Tensor:
    """Bilinear x2 upsampling of ``x`` (align_corners=False) plus ``skip``."""
    if fused:
        if torch.jit.is_scripting():
            return torch.ops.tritonvision.upsample_bilinear_add(x, skip)
        else:
            return upsample_bilinear_add(x, skip, scale_factor=2)
    return F.interpolate(x, size=(skip.shape[-2], skip.shape[-1]), mode="bilinear",
                         align_corners=False) + skip
