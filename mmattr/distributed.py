"""Sharding across processes started by ``accelerate launch`` (or torchrun); a no-op otherwise.

Two levels: a search step's candidate batch is split across processes and the embeddings are
gathered back (the RegionStack does this, so every search strategy gets it for free and every
process takes the same decisions on the same gathered tensor), and dataset-level commands split
their items with `shard_items` and collect results with `gather_items`.

Ref. Hugging Face Accelerate (``PartialState``, ``gather``, ``gather_object``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar

import torch

T = TypeVar("T")

__all__ = ["world_size", "rank", "is_main_process", "is_distributed", "shard_bounds",
           "gather_rows", "shard_items", "gather_items", "wait_for_everyone", "process_out_dir"]


def _launched() -> bool:
    # Read the launcher's environment first, so a plain run never imports accelerate.
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def _state():
    if not _launched():
        return None
    from accelerate import PartialState

    # Without cpu=True accelerate ignores a CPU-only launch (gloo) and runs each process alone.
    cpu = (not torch.cuda.is_available()
           or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"))
    return PartialState(cpu=cpu)


def is_distributed() -> bool:
    """True when more than one process takes part."""
    return world_size() > 1


def world_size() -> int:
    state = _state()
    return int(state.num_processes) if state is not None else 1


def rank() -> int:
    state = _state()
    return int(state.process_index) if state is not None else 0


def is_main_process() -> bool:
    """Only the main process writes files and prints results."""
    return rank() == 0


def wait_for_everyone() -> None:
    state = _state()
    if state is not None:
        state.wait_for_everyone()


def shard_bounds(count: int, index: int | None = None, size: int | None = None
                 ) -> tuple[int, int, int]:
    """Contiguous share of `count` rows for one process: (start, stop, rows per process).

    Every process gets ``ceil(count / size)`` rows except the last ones, so concatenating the
    shares in process order gives the rows back in their original order.
    """
    size = world_size() if size is None else size
    index = rank() if index is None else index
    per = -(-count // size) if count else 0
    start = min(count, index * per)
    return start, min(count, start + per), per


def gather_rows(local: torch.Tensor, count: int) -> torch.Tensor:
    """Concatenate every process's share (from `shard_bounds`) into the full (count, ...) tensor.

    Shares are padded to equal length because collective gathers need equal shapes; the padding
    only ever sits past `count` and is dropped.
    """
    size = world_size()
    if size == 1:
        return local
    from accelerate.utils import gather

    _, _, per = shard_bounds(count)
    if local.shape[0] < per:
        pad = local.new_zeros((per - local.shape[0], *local.shape[1:]))
        local = torch.cat([local, pad])
    return gather(local.contiguous())[:count]


def shard_items(items: Sequence[T]) -> list[T]:
    """This process's contiguous share of a dataset; all of it without a launcher.

    >>> mine = shard_items(manifest)            # e.g. in `mmattr evaluate`
    >>> rows = gather_items([run(x) for x in mine])   # every result, in manifest order
    """
    start, stop, _ = shard_bounds(len(items))
    return list(items[start:stop])


def gather_items(local: list[Any]) -> list[Any]:
    """Every process's results of `shard_items`, concatenated in the original item order."""
    if world_size() == 1:
        return list(local)
    from accelerate.utils import gather_object

    return list(gather_object(list(local)))


@contextmanager
def process_out_dir(out: str | Path) -> Iterator[Path]:
    """Where this process writes a result folder: `out` for the main process; for the others a
    throw-away copy of it, so every process takes the same skip-or-redo decision (they must,
    to meet in the same collectives) and only the main process writes the real folder."""
    out = Path(out)
    if is_main_process():
        yield out
        return
    with tempfile.TemporaryDirectory(prefix=f"mmattr-rank{rank()}-") as tmp:
        copy = Path(tmp) / out.name
        if out.is_dir():
            shutil.copytree(out, copy)
        yield copy
