"""Decoder layers: a transposed convolution fused with its skip connection.

``DeconvSkip`` (FCN-8s, U-Net with additive skips) and ``DeconvConcat`` (U-Net) hold the
same parameters as ``nn.ConvTranspose2d`` -- ``weight [C_in, C_out, k, k]`` and
``bias [C_out]``, same names, shapes and initialisation -- so a ConvTranspose2d's
``state_dict`` loads into them unchanged. ``fused=False`` runs plain
``F.conv_transpose2d`` + add / cat (for A/B comparisons and as an oracle).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tritonvision.ops.deconv import deconv_concat, deconv_skip


class _DeconvBase(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2,
                 padding: int = 0, output_padding: int = 0, bias: bool = True,
                 activation: Optional[str] = None, fused: bool = True, device=None, dtype=None):
        super().__init__()
        if activation not in (None, "none", "relu"):
            raise ValueError(f"{type(self).__name__}: activation must be None or 'relu', got {activation!r}")
        if not 0 <= output_padding < stride:
            raise ValueError(f"{type(self).__name__}: output_padding must be in [0, stride), "
                             f"got {output_padding} with stride {stride}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.output_padding = output_padding
        self.activation: str = "relu" if activation == "relu" else "none"
        self.fused = fused
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels, kernel_size, kernel_size, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.ConvTranspose2d's initialisation (fan_in of weight [C_in, C_out, k, k] is C_out * k * k)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                nn.init.uniform_(self.bias, -bound, bound)

    def _deconv(self, x: Tensor) -> Tensor:
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, output_padding={self.output_padding}, bias={self.bias is not None}, "
                f"activation={self.activation}, fused={self.fused}")


class DeconvSkip(_DeconvBase):
    """``act(ConvTranspose2d(x) + skip)`` in one fused kernel (see :func:`tritonvision.ops.deconv_skip`).

    forward(x: Tensor[B, C_in, H, W], skip: Optional[Tensor[B, C_out, H_out, W_out]]) ->
    Tensor[B, C_out, H_out, W_out].
    """

    def forward(self, x: Tensor, skip: Optional[Tensor] = None) -> Tensor:
        if not self.fused:
            y = self._deconv(x)
            if skip is not None:
                y = y + skip
            return torch.relu(y) if self.activation == "relu" else y
        if torch.jit.is_scripting():
            return torch.ops.tritonvision.deconv_skip(x, self.weight, self.bias, skip, self.stride, self.padding,
                                                      self.output_padding, self.activation)
        return deconv_skip(x, self.weight, self.bias, skip, self.stride, self.padding, self.output_padding,
                           self.activation)


class DeconvConcat(_DeconvBase):
    """``cat([act(ConvTranspose2d(x)), skip], 1)`` written once (see :func:`tritonvision.ops.deconv_concat`).

    forward(x: Tensor[B, C_in, H, W], skip: Tensor[B, C_skip, H_out, W_out]) ->
    Tensor[B, C_out + C_skip, H_out, W_out].
    """

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        if not self.fused:
            y = self._deconv(x)
            return torch.cat([torch.relu(y) if self.activation == "relu" else y, skip], dim=1)
        if torch.jit.is_scripting():
            return torch.ops.tritonvision.deconv_concat(x, self.weight, self.bias, skip, self.stride, self.padding,
                                                        self.output_padding, self.activation)
        return deconv_concat(x, self.weight, self.bias, skip, self.stride, self.padding, self.output_padding,
                             self.activation)
