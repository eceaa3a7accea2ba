"""U-Net (Ronneberger, Fischer and Brox, 2015) for semantic segmentation.

Contracting path: ``depth`` times a double 3x3 convolution block (conv, [BatchNorm], ReLU,
twice) then a 2x2 max-pool; channels double at each level (``width * 2**i``). Bottom: one
more double-conv block. Expanding path: a 2x2 stride-2 up-convolution halving the channels,
concatenated with the encoder map of the same level (``[up, skip]`` order; centre-cropped
to the up-sampled size with ``padding="valid"``, the paper's "copy and crop"), then a
double-conv block. A 1x1 convolution maps to the class logits.

``padding="same"`` (zero padding 1) keeps H x W; ``padding="valid"`` is the paper's
unpadded network, whose output is smaller than its input (572 -> 388 for depth 4): use
:meth:`UNet.output_size` to know by how much.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from tritonvision.nn import DeconvConcat

from ._blocks import _centre_crop


class DoubleConv(nn.Sequential):
    """(conv3x3 -> [BatchNorm] -> ReLU) x 2."""

    def __init__(self, in_channels: int, out_channels: int, padding: int, batch_norm: bool):
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=padding, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net with configurable width, depth and padding.

    Args:
        in_channels: input image channels.
        num_classes: output channels (one logit per class).
        width: channels of the first level (64 in the paper); level i has ``width * 2**i``.
        depth: number of 2x2 max-pool steps (4 in the paper).
        padding: "same" (output H x W = input) or "valid" (the paper's unpadded convs).
        batch_norm: add BatchNorm after each 3x3 conv (not in the paper; helps short runs).
        fused: True runs each up-convolution + concatenation as one
            ``tritonvision.ops.deconv_concat``; False uses plain torch (same parameters).

    Input Tensor[N, in_channels, H, W] -> logits Tensor[N, num_classes, H', W'] with
    ``(H', W') = output_size(H, W)`` (= (H, W) for "same"; H, W divisible by ``2**depth``).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int = 64,
                 depth: int = 4, padding: str = "same", batch_norm: bool = False,
                 fused: bool = True):
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"UNet: padding must be 'same' or 'valid', got {padding!r}")
        if depth < 1:
            raise ValueError(f"UNet: depth must be >= 1, got {depth}")
        self.depth = depth
        self.factor = 2 ** depth
        self.valid = padding == "valid"
        pad = 0 if self.valid else 1
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList(
            DoubleConv(in_channels if i == 0 else chans[i - 1], chans[i], pad, batch_norm)
            for i in range(depth))
        self.bottom = DoubleConv(chans[depth - 1], chans[depth], pad, batch_norm)
        levels = list(reversed(range(depth)))
        self.up = nn.ModuleList(DeconvConcat(chans[i + 1], chans[i], fused=fused)
                                for i in levels)
        self.up_conv = nn.ModuleList(DoubleConv(2 * chans[i], chans[i], pad, batch_norm)
                                     for i in levels)
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size of the logits for an input of ``height x width``."""
        if not self.valid:
            return height, width
        sizes = []
        for size in (height, width):
            for _ in range(self.depth):
                size = (size - 4) // 2
            size -= 4
            for _ in range(self.depth):
                size = size * 2 - 4
            sizes.append(size)
        return sizes[0], sizes[1]

    def forward(self, x: Tensor) -> Tensor:
        if not self.valid and (x.shape[-1] % self.factor or x.shape[-2] % self.factor):
            raise ValueError("UNet: input H and W must be divisible by 2**depth with "
                             "padding='same'; resize or pad the image")
        skips: list[Tensor] = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for i, (up, conv) in enumerate(zip(self.up, self.up_conv)):
            skip = skips[self.depth - 1 - i]
            if self.valid:
                skip = _centre_crop(skip, 2 * x.shape[-2], 2 * x.shape[-1]).contiguous()
            x = conv(up(x, skip))
        return self.head(x)
