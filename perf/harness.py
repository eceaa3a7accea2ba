"""What a benchmark case is. Every op family describes its cases once, in
``perf/cases/<family>.py`` as ``cases(device, size) -> list[BenchCase]``; the
pytest-benchmark suite and the ``tritonvision bench`` runner both time them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class BenchCase:
    """One op at one shape and dtype, with ours and every baseline on the same inputs.

    ``make_inputs(k)`` builds the k-th input set (rotated between repetitions so
    caches do not flatter anyone); ``ours`` and each baseline take ``*inputs``.
    ``bytes_moved`` / ``flops`` are the minimum traffic / work of the op, for the
    roofline fraction (0 when not meaningful).
    """
    family: str
    name: str
    shape: str
    dtype: str
    make_inputs: Callable[[int], tuple]
    ours: Callable[..., Any]
    baselines: dict[str, Callable[..., Any]] = field(default_factory=dict)
    bytes_moved: int = 0
    flops: int = 0


def compiled(fn: Callable[..., Any], **compile_kwargs: Any) -> Callable[..., Any]:
    """``torch.compile(fn, **compile_kwargs)``, built on the first call: collecting cases
    (and running only ours) then costs nothing; the runner's warm-up call compiles."""
    state: dict[str, Callable[..., Any]] = {}

    def call(*args: Any, **kwargs: Any) -> Any:
        if "fn" not in state:
            import torch

            state["fn"] = torch.compile(fn, **compile_kwargs)
        return state["fn"](*args, **kwargs)

    call.__name__ = f"compiled_{getattr(fn, '__name__', 'fn')}"
    return call
