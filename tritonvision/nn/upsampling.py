"""The in-network upsampling family of the lecture, as layers.

Fixed upsampling: :class:`NearestUpsample`, :class:`BedOfNailsUpsample` (unpooling),
:class:`BilinearUpsample`, :class:`BicubicUpsample`; remembered-position unpooling:
:class:`MaxPoolWithIndices` + :class:`MaxUnpool`; learnable upsampling:
:class:`TransposedConv`. All are plain PyTorch (compile/export/script friendly);
the fused FCN decoder step is :func:`tritonvision.ops.upsample_bilinear_add`.

Conventions, checked against the lecture's 2x2 -> 4x4 examples (input 1 2 / 3 4):

* bilinear, ``align_corners=False`` (PyTorch's default, source position
  ``(Y + 0.5) / s - 0.5`` clamped at 0) reproduces the lecture's grid exactly:
  1.00 1.25 1.75 2.00 / 1.50 1.75 2.25 2.50 / 2.50 2.75 3.25 3.50 / 3.00 3.25 3.75 4.00.
* bicubic: PyTorch's ``mode="bicubic"`` with ``align_corners=False`` -- Keys' cubic
  convolution with a = -0.75 and border indices clamped -- gives
  0.6836 1.0156 1.5625 1.8945 / 1.3477 1.6797 2.2266 2.5586 / 2.4414 2.7734 3.3203
  3.6523 / 3.1055 3.4375 3.9844 4.3164, which is the lecture's table rounded to two
  decimals (every entry within 0.005). ``align_corners=True`` does not match (its
  corners are exactly 1, 2, 3, 4). The lecture prints only two decimals, so a = -0.75
  is the convention it agrees with, not one it pins down beyond that precision.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Scale = Union[int, tuple[int, int]]


def _pair(scale: Scale, name: str, layer: str) -> tuple[int, int]:
    pair = (scale, scale) if not isinstance(scale, (tuple, list)) else tuple(scale)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in pair):
        raise ValueError(f"{layer}: {name} must be a positive int or a pair of them, got {scale!r}")
    return pair  # type: ignore[return-value]


class _Interpolate(nn.Module):
    """``F.interpolate`` by an integer factor per axis; the subclasses fix the mode."""

    def __init__(self, scale_factor: Scale, mode: str, align_corners: Optional[bool]):
        super().__init__()
        self.scale_factor = _pair(scale_factor, "scale_factor", type(self).__name__)
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=(float(self.scale_factor[0]), float(self.scale_factor[1])),
                             mode=self.mode, align_corners=self.align_corners)

    def extra_repr(self) -> str:
        corners = "" if self.align_corners is None else f", align_corners={self.align_corners}"
        return f"scale_factor={self.scale_factor}{corners}"


class NearestUpsample(_Interpolate):
    """Nearest-neighbour upsampling: each input pixel becomes an s x s block of copies.

    Input Tensor[B, C, h, w] -> Tensor[B, C, h * s, w * s].
    """

    def __init__(self, scale_factor: Scale):
        super().__init__(scale_factor, "nearest", None)


class BedOfNailsUpsample(nn.Module):
    """"Bed of nails" unpooling: each input value goes to the top-left of its s x s block,
    zeros elsewhere (not in torch; the lecture's first unpooling).

    Input Tensor[B, C, h, w] -> Tensor[B, C, h * s, w * s]; the gradient w.r.t. the
    input is the output gradient subsampled at the nails.
    """

    def __init__(self, scale_factor: Scale):
        super().__init__()
        self.scale_factor = _pair(scale_factor, "scale_factor", "BedOfNailsUpsample")

    def forward(self, x: Tensor) -> Tensor:
        sh, sw = self.scale_factor
        b, c, h, w = x.shape
        nail = torch.zeros(sh, 1, sw, dtype=torch.bool, device=x.device)
        nail[0, 0, 0] = True
        spread = torch.where(nail, x[:, :, :, None, :, None], torch.zeros((), dtype=x.dtype, device=x.device))
        return spread.reshape(b, c, h * sh, w * sw)

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}"


class BilinearUpsample(_Interpolate):
    """Bilinear upsampling by an integer factor (``F.interpolate(mode="bilinear")``).

    ``align_corners=False`` (default) matches the lecture's 2x2 -> 4x4 example.
    Input Tensor[B, C, h, w] -> Tensor[B, C, h * s, w * s].
    """

    def __init__(self, scale_factor: Scale, align_corners: bool = False):
        super().__init__(scale_factor, "bilinear", align_corners)


class BicubicUpsample(_Interpolate):
    """Bicubic upsampling by an integer factor: Keys' cubic kernel with a = -0.75 over
    the 4 nearest input pixels per axis, borders clamped (``F.interpolate(mode="bicubic")``).

    With ``align_corners=False`` it reproduces the lecture's table to its two printed
    decimals (see the module docstring). Values can overshoot the input range.
    Input Tensor[B, C, h, w] -> Tensor[B, C, h * s, w * s].
    """

    def __init__(self, scale_factor: Scale, align_corners: bool = False):
        super().__init__(scale_factor, "bicubic", align_corners)


class MaxPoolWithIndices(nn.Module):
    """2-D max pooling that remembers where each maximum was, for :class:`MaxUnpool`.

    ``forward(x)`` with x Tensor[B, C, H, W] returns ``(values, indices)``, both
    [B, C, H', W']; indices are flat positions ``y * W + x`` within each H x W plane
    (PyTorch's convention; on ties the first position in scan order wins).
    """

    def __init__(self, kernel_size: Scale, stride: Optional[Scale] = None):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size", "MaxPoolWithIndices")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", "MaxPoolWithIndices")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        values, indices = F.max_pool2d(x, self.kernel_size, self.stride, return_indices=True)
        return values, indices

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MaxUnpool(nn.Module):
    """Max unpooling: put each value back at the position its max pooling remembered,
    zeros elsewhere (the lecture's "max unpooling").

    ``forward(x, indices, output_size=None)``: x and indices [B, C, h, w] as returned by
    :class:`MaxPoolWithIndices` with the same kernel_size and stride; output_size
    (H, W) resolves the size when the pooled input's size was not a multiple of the stride.
    """

    def __init__(self, kernel_size: Scale, stride: Optional[Scale] = None):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size", "MaxUnpool")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", "MaxUnpool")

    def forward(self, x: Tensor, indices: Tensor, output_size: Optional[list[int]] = None) -> Tensor:
        return F.max_unpool2d(x, indices, self.kernel_size, self.stride, output_size=output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class TransposedConv(nn.ConvTranspose2d):
    """Learnable upsampling: transposed convolution, ``nn.ConvTranspose2d``-compatible
    (same parameters, state-dict keys and output size
    ``(h - 1) * stride - 2 * padding + kernel_size + output_padding``).

    It multiplies by the transpose of the convolution's matrix: each input value
    weights a copy of the filter placed ``stride`` pixels apart in the output, and
    copies sum where they overlap (the lecture's 1-D example; tested there).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Scale, stride: Scale = 1,
                 padding: Scale = 0, output_padding: Scale = 0, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         output_padding=output_padding, bias=bias)
