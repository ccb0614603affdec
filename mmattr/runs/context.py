"""The run context: what a run hands the explainers it calls, explicitly.

Before it, two module-level switches changed how an explanation ran without showing in any
signature: a counter in `distributed` (set by the dataset runner, read by the region stack)
and a map cache in `explainers._common` (switched on by evaluate). Now a `RunContext` is
passed to the explainer (``EXPLAINERS.get(name)(config, context=...)``, ``api.explain(...,
context=...)``), which hands it to its region stack and division:

- ``step_processes``: how many processes share one search step's candidates. None (the
  default): every process of the launch (one explanation under ``--num-processes``, each step
  split across them). 1: this process alone, as in the dataset commands, whose processes
  work on different images and must never meet in a step's collectives.
- ``maps``: a `MapCache` of baseline maps, so ``gradcam`` and ``smdl+prior:gradcam`` on one
  image compute gradcam's map once (evaluate makes one per item: bounded, never stale).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["RunContext", "MapCache"]


@dataclass
class MapCache:
    """At most `size` maps by key, least recently used dropped first."""

    size: int = 8
    _maps: "OrderedDict[Any, Any]" = field(default_factory=OrderedDict, repr=False)

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key in self._maps:
            self._maps.move_to_end(key)
            return self._maps[key]
        value = compute()
        self._maps[key] = value
        while len(self._maps) > self.size:
            self._maps.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._maps)


@dataclass(frozen=True)
class RunContext:
    """See the module docstring."""

    step_processes: int | None = None
    maps: MapCache | None = None

    def processes(self) -> int:
        """How many processes split each search step."""
        if self.step_processes is not None:
            return max(1, int(self.step_processes))
        from .. import distributed

        return distributed.world_size()

    @classmethod
    def per_item(cls, maps: MapCache | None = None) -> "RunContext":
        """The context of a dataset command: each process explains its own items alone."""
        return cls(step_processes=1, maps=maps)


#: the context of a plain call (no sharing of items, no map cache)
DEFAULT = RunContext()
