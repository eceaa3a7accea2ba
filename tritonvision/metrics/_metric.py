"""What every metric object shares, torchmetrics-style: an ``nn.Module`` (``.to(device)``
moves its state tensors), ``update`` / ``compute`` / ``reset``, and one meaning of
distributed synchronisation:

* ``compute()`` reduces over every rank of ``process_group`` by itself when
  ``torch.distributed`` is initialised (``sync_on_compute=True``, the default, as
  torchmetrics); the local state is left as it was, so ``update`` can go on;
* ``sync(process_group=None)`` replaces the local state by the reduced one, once, and
  returns the metric (for code that wants to read the global state itself).
"""
from __future__ import annotations

from typing import Any

import torch


def distributed_world(process_group: Any = None) -> int:
    """Ranks in ``process_group`` (the default group when None); 1 when not distributed."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(process_group)


class Metric(torch.nn.Module):
    """Base of :class:`MeanAveragePrecision` and :class:`SegmentationMetrics`.

    Subclasses implement ``_local_state()`` (what this rank holds), ``_reduce(states)``
    (the global state from every rank's, in rank order) and ``_load_state(state)``, plus
    ``_gather(state, group)`` when the state is not gathered as a Python object.
    """

    def __init__(self, sync_on_compute: bool = True, process_group: Any = None) -> None:
        super().__init__()
        self.sync_on_compute = sync_on_compute
        self.process_group = process_group

    def forward(self, *args: Any, **kwargs: Any) -> None:
        """``metric(...)`` is ``metric.update(...)``."""
        self.update(*args, **kwargs)

    def _gather(self, state: Any, group: Any) -> list:
        import torch.distributed as dist
        gathered: list = [None] * dist.get_world_size(group)
        dist.all_gather_object(gathered, state, group=group)
        return gathered

    def _global_state(self, process_group: Any = None) -> Any:
        """The state reduced over every rank (this rank's own when not distributed)."""
        group = self.process_group if process_group is None else process_group
        state = self._local_state()
        if distributed_world(group) == 1:
            return state
        return self._reduce(self._gather(state, group))

    def _state_for_compute(self) -> Any:
        return self._global_state() if self.sync_on_compute else self._local_state()

    def sync(self, process_group: Any = None) -> "Metric":
        """Replace this rank's state by the one reduced over every rank; returns the metric.
        A no-op when ``torch.distributed`` is not initialised."""
        group = self.process_group if process_group is None else process_group
        if distributed_world(group) > 1:
            self._load_state(self._global_state(group))
        return self
