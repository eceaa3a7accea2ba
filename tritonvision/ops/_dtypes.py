"""The arithmetic dtype of the kernels: float32 for every float input, float64 for float64."""
from __future__ import annotations

import torch
import triton.language as tl


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """torch dtype the ops compute in for inputs of ``dtype`` (fp16/bf16/fp32 -> fp32)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def tl_compute_dtype(dtype: torch.dtype) -> tl.dtype:
    """The same, as the Triton dtype passed to a kernel's COMPUTE constexpr."""
    return tl.float64 if dtype == torch.float64 else tl.float32
