"""The decoder steps the models share, each with a fused and a plain-torch path.

Every block owns ``nn.ConvTranspose2d``-layout parameters (``weight`` [C_in, C_out, k, k],
``bias`` [C_out]) so ``fused=True`` and ``fused=False`` models have the same state_dict
keys and load each other's weights. ``fused=True`` calls the ``tritonvision`` custom op
(one Triton kernel on CUDA); ``fused=False`` runs the same math on plain torch ops.

Under ``torch.jit.script`` the fused path calls ``torch.ops.tritonvision.<op>`` directly
with positional arguments (TorchScript cannot see through the Python wrappers' keyword
arguments); the op's schema is the same, only the wrapper's argument checks are skipped.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tritonvision.ops.deconv import deconv_concat, deconv_skip
from tritonvision.ops.upsample import upsample_bilinear_add


def _centre_crop(t: Tensor, height: int, width: int) -> Tensor:
    """The centre ``height x width`` window of ``t`` [N, C, H, W] (U-Net's "copy and crop")."""
    top = (t.shape[-2] - height) // 2
    left = (t.shape[-1] - width) // 2
    return t[:, :, top:top + height, left:left + width]


class _Deconv(nn.Module):
    """Transposed convolution (kernel k, stride s) with ConvTranspose2d's parameter layout."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2,
                 fused: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.stride = stride
        self.fused = fused
        # ConvTranspose2d's default initialisation, so results match a drop-in nn module
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(self.weight.shape[1] * kernel_size * kernel_size)
        nn.init.uniform_(self.bias, -bound, bound)


class DeconvAddStep(_Deconv):
    """``activation(conv_transpose2d(x) + bias + skip)``; ``skip`` optional (FCN decoders)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2,
                 relu: bool = False, fused: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, fused)
        self.relu = relu

    def forward(self, x: Tensor, skip: Optional[Tensor] = None) -> Tensor:
        activation = "relu" if self.relu else "none"
        if self.fused:
            if torch.jit.is_scripting():
                return torch.ops.tritonvision.deconv_skip(
                    x, self.weight, self.bias, skip, self.stride, 0, 0, activation)
            else:
                return deconv_skip(x, self.weight, self.bias, skip=skip, stride=self.stride,
                                   activation=activation)
        y = F.conv_transpose2d(x, self.weight, self.bias, stride=self.stride)
        if skip is not None:
            y = y + skip
        if self.relu:
            y = F.relu(y)
        return y


class DeconvConcatStep(_Deconv):
    """``cat([conv_transpose2d(x) + bias, skip], dim=1)`` (U-Net's up-convolution + copy)."""

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        if self.fused:
            if torch.jit.is_scripting():
                return torch.ops.tritonvision.deconv_concat(
                    x, self.weight, self.bias, skip, self.stride, 0, 0, "none")
            else:
                return deconv_concat(x, self.weight, self.bias, skip, stride=self.stride)
        y = F.conv_transpose2d(x, self.weight, self.bias, stride=self.stride)
        return torch.cat([y, skip], dim=1)


def upsample_add(x: Tensor, skip: Tensor, fused: bool) -> Tensor:
    """Bilinear x2 upsampling of ``x`` (align_corners=False) plus ``skip``."""
    if fused:
        if torch.jit.is_scripting():
            return torch.ops.tritonvision.upsample_bilinear_add(x, skip)
        else:
            return upsample_bilinear_add(x, skip, scale_factor=2)
    return F.interpolate(x, size=(skip.shape[-2], skip.shape[-1]), mode="bilinear",
                         align_corners=False) + skip
