"""DistributedDataParallel setup from the ``torchrun`` environment (RANK, WORLD_SIZE, ...).

Without those variables everything runs in one process (world size 1). With them, the
process group uses NCCL for CUDA devices and gloo for CPU; each rank takes GPU
``LOCAL_RANK``. Only rank 0 prints and saves.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, on ``device``."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str | None) -> torch.device:
    """The device the CLI's ``--device`` names: ``"cuda"``, ``"cpu"``, ``"cuda:1"`` or None (cuda
    if available, else cpu). A CUDA device with an index also becomes the current one
    (``torch.cuda.set_device``), so that whatever allocates or launches on "the current GPU"
    lands there too."""
    if name in (None, "", "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu")
        if device.index is not None:
            if device.index >= torch.cuda.device_count():
                raise ValueError(f"device {name!r} requested but there are only {torch.cuda.device_count()} "
                                 f"CUDA devices; use --device cuda:0 to cuda:{torch.cuda.device_count() - 1}")
            torch.cuda.set_device(device)
    return device


def setup_distributed(device_name: str | None = None) -> DistInfo:
    """Join the process group ``torchrun`` describes (if any) and pick this rank's device."""
    device = resolve_device(device_name)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(device=device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    initialised_here = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        initialised_here = True
    return DistInfo(rank, world_size, local_rank, device, initialised_here)


def cleanup_distributed(info: DistInfo) -> None:
    if info.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """The mean of a Python float over all ranks (itself when not distributed)."""
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64,
                     device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return float(t.item()) / info.world_size
