"""Fully convolutional networks for semantic segmentation, as the lecture draws them.

``SimpleFCN``: conv+ReLU+max-pool encoder stages, then stride-2 transposed convolutions
back to full resolution (no skips). ``FCN8s``: the same encoder, and a decoder that adds
the encoder maps back in (Long et al. 2015, "FCN-8s"): deconv to H/4 + skip add, deconv to
H/2 + skip add, bilinear x2 upsampling + add of the first feature map, 1x1 head.

Channel fix (the lecture's FCN-8s code does not run): its ``deconv1`` maps 256 -> 128
channels but is added to ``x3`` (256 channels), and ``deconv2`` maps 128 -> 64 but is added
to ``x2`` (128). Here every decoder deconvolution outputs exactly the channel count of the
encoder map it is added to (stage i has ``width * 2**i`` channels): the first deconv keeps
the deepest stage's channels (``4w -> 4w`` for depth 3), each further one halves them
(``4w -> 2w``), and a 1x1 convolution (``2w -> w``) brings the H/2 map to the first
stage's channels before the bilinear upsample-and-add. (A 1x1 conv commutes with bilinear
upsampling, so doing it at H/2 is the cheaper of the two equivalent orders.)

Inputs must have H and W divisible by ``2**depth``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from tritonvision.nn import DeconvSkip

from ._blocks import upsample_add


def _check_input(name: str, x: Tensor, factor: int) -> None:
    if x.dim() != 4 or x.shape[-1] % factor or x.shape[-2] % factor:
        raise ValueError(f"{name}: input must be [N, C, H, W] with H and W divisible by "
                         f"{factor}, got {list(x.shape)}; resize or pad the image")


class _Encoder(nn.Module):
    """``depth`` stages of conv3x3 + ReLU (+ 2x2 max-pool); stage i has ``width * 2**i`` channels."""

    def __init__(self, in_channels: int, width: int, depth: int):
        super().__init__()
        channels = [in_channels] + [width * 2 ** i for i in range(depth)]
        self.convs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], 3, padding=1)
                                   for i in range(depth))
        self.channels = channels[1:]

    def forward(self, x: Tensor) -> list[Tensor]:
        """The pre-pool feature map of every stage, then the last pooled map."""
        features: list[Tensor] = []
        for conv in self.convs:
            x = F.relu(conv(x))
            features.append(x)
            x = F.max_pool2d(x, 2)
        features.append(x)
        return features


class SimpleFCN(nn.Module):
    """The lecture's plain FCN: encoder stages, then stride-2 deconvolutions (ReLU between).

    Args:
        num_classes: output channels (one logit per class).
        width: channels of the first stage (stage i has ``width * 2**i``).
        depth: number of conv+pool stages (and of deconvolutions); the lecture uses 3.
        fused: True runs each deconv+ReLU as one ``tritonvision.ops.deconv_skip``; False
            uses plain torch (same parameters, same state_dict keys).

    Input Tensor[N, in_channels, H, W] (H, W divisible by ``2**depth``) -> logits
    Tensor[N, num_classes, H, W].
    """

    def __init__(self, num_classes: int, width: int = 64, depth: int = 3, fused: bool = True,
                 in_channels: int = 3):
        super().__init__()
        if depth < 1:
            raise ValueError(f"SimpleFCN: depth must be >= 1, got {depth}")
        self.depth = depth
        self.factor = 2 ** depth
        self.encoder = _Encoder(in_channels, width, depth)
        chans = self.encoder.channels
        # deconv i goes from the stage-(depth-1-i) channels to the next shallower stage's
        outs = [chans[depth - 2 - i] for i in range(depth - 1)] + [num_classes]
        ins = [chans[-1]] + outs[:-1]
        self.decoder = nn.ModuleList(
            DeconvSkip(ins[i], outs[i], activation="relu" if i < depth - 1 else None, fused=fused) for i in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        _check_input("SimpleFCN", x, self.factor)
        x = self.encoder(x)[-1]
        for step in self.decoder:
            x = step(x)
        return x


class FCN8s(nn.Module):
    """FCN-8s as the lecture draws it, with consistent channels (see the module docstring).

    Args:
        num_classes: output channels.
        width: channels of the first stage (stage i has ``width * 2**i``).
        depth: encoder stages (>= 2); the lecture's network is depth 3. The decoder deconvs
            back up to H/2 adding every stage's map but the first, then upsamples
            bilinearly to H and adds the first.
        fused: True runs the deconv+add steps as ``deconv_skip`` and the last step as
            ``upsample_bilinear_add``; False uses plain torch on the same parameters.

    Input Tensor[N, in_channels, H, W] (H, W divisible by ``2**depth``) -> logits
    Tensor[N, num_classes, H, W].
    """

    def __init__(self, num_classes: int, width: int = 64, depth: int = 3, fused: bool = True,
                 in_channels: int = 3):
        super().__init__()
        if depth < 2:
            raise ValueError(f"FCN8s: depth must be >= 2, got {depth}")
        self.depth = depth
        self.factor = 2 ** depth
        self.fused = fused
        self.encoder = _Encoder(in_channels, width, depth)
        chans = self.encoder.channels
        # deconv i: from the H/2**(depth-i) map to H/2**(depth-1-i), added to stage depth-1-i
        self.decoder = nn.ModuleList(
            DeconvSkip(chans[min(depth - 1, depth - i)], chans[depth - 1 - i], fused=fused)
            for i in range(depth - 1))
        self.reduce = nn.Conv2d(chans[1], chans[0], 1)
        self.final = nn.Conv2d(chans[0], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        _check_input("FCN8s", x, self.factor)
        features = self.encoder(x)
        x = features[-1]
        for i, step in enumerate(self.decoder):
            x = step(x, features[self.depth - 1 - i])
        x = upsample_add(self.reduce(x), features[0], self.fused)
        return self.final(x)
