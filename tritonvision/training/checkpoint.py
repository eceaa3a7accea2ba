"""Checkpoints that resume exactly and load with ``torch.load(path, weights_only=True)``.

A checkpoint holds the model, optimizer and scheduler states, the epoch, every RNG state
(as tensors, lists and numbers: nothing pickled), the run's full configuration, the class
names and the history so far.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _numpy_rng_state() -> dict:
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}


def _set_numpy_rng_state(state: dict) -> None:
    np.random.set_state((state["name"], state["keys"].numpy().astype(np.uint32), state["position"],
                         state["has_gauss"], state["cached_gaussian"]))


def rng_state() -> dict:
    """The torch, CUDA, numpy and Python RNG states in ``weights_only``-loadable types."""
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state(),
             "python": {"version": version, "state": list(internal), "gauss_next": gauss_next}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    _set_numpy_rng_state(state["numpy"])
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, **payload: Any) -> Path:
    """Write ``payload`` (model, optimizer, epoch, ...) plus the RNG states, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save({**payload, "rng": rng_state()}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no code
    runs while loading); clear errors for missing, truncated or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a truncated file, a foreign one, or one holding pickled objects
        raise ValueError(f"checkpoint {path} could not be read ({str(error).splitlines()[0]}); "
                         f"a checkpoint from an earlier tritonvision holds pickled numpy state and "
                         f"cannot be loaded safely: train again") from error
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "config" not in checkpoint:
        raise ValueError(f"checkpoint {path} is not a tritonvision training checkpoint "
                         f"(no 'model' / 'config' entries)")
    return checkpoint
