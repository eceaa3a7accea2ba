"""Run independent chunks of numpy work on every core: numpy releases the GIL inside its
loops, so threads over chunks of a batch scale without copying data to processes."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def workers() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, the items spread over ``workers()`` threads (in
    this thread alone when there is one item or one core); results in item order."""
    items = list(items)
    count = min(workers(), len(items))
    if count <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(fn, items))
