"""What the launchers share: a kernel's launch configuration, and the device facts they size grids by.

Each op file declares its kernels' configurations (``LaunchConfig`` tables, per dtype or size
class) once, at the top of its launch section; the launcher reads them, and so do
``perf/resources.py`` and the compile-for-GPU test, which record the launches the ops make.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

SM90_MULTIPROCESSORS = 132
"""SMs of an H100 SXM / H200: what the launchers size their grids for when no GPU is present
(the sm_90 resource report, kernel-test mode)."""


@dataclass(frozen=True)
class LaunchConfig:
    """One kernel's launch configuration: its tile-size constexprs, warps per program and
    software-pipeline stages. ``kernel[grid](..., **config.kwargs)`` launches with it."""
    tiles: dict[str, int] = field(default_factory=dict)
    num_warps: int = 4
    num_stages: int = 3

    @property
    def kwargs(self) -> dict[str, int]:
        return {**self.tiles, "num_warps": self.num_warps, "num_stages": self.num_stages}


def multiprocessor_count(device: torch.device) -> int:
    """SMs of ``device``; for a CPU tensor (kernel-test mode, recording) those of an H100/H200."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return SM90_MULTIPROCESSORS


def needs_int64(*tensors: torch.Tensor) -> bool:
    """True when some element offset of ``tensors`` reaches 2**31: kernels then index in int64
    (their INT64 / WIDE constexpr); int32 offsets otherwise, which cost half the registers."""
    return any(t.numel() >= 2 ** 31 - 1
               or sum((size - 1) * abs(stride) for size, stride in zip(t.shape, t.stride())) >= 2 ** 31 - 1
               for t in tensors)
