"""The work loop: resumable, sharded per-item work whose records are keyed by content.

``run_items(folder, items, tasks, work)`` calls ``work(item, pending_tasks)`` for each item
with tasks left, sharded over the processes of a multi-process launch; each record the work
yields is appended to this process's record file and fsynced before the next task starts, so
a SIGKILL loses at most the record in flight. A record is reused by a rerun only when it was
made for the item's current content (the digest of its image and mask, `item_digest`): an
edited image is worked on again, and its old record is never read as the item's. The output
folder's settings check (`runs.folder`) guarantees every record in a folder was made with the
same settings. A work function raises `ItemError` for a bad item: it is skipped, counted and
returned in ``RunResult.bad``; the run goes on.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

from .. import distributed
from .dataset import BadItem, DataItem, ItemError, item_digest
from .folder import OutputFolder

__all__ = ["RunResult", "Work", "run_items", "item_digests"]

Work = Callable[[DataItem, list[str]], Iterable[tuple[str, dict]]]


@dataclass
class RunResult:
    """What `run_items` did, summed over every process."""

    new: int                  # records written by this run
    done_before: int          # (item, task) pairs already on disk for the current content
    bad: list[BadItem]        # items skipped by this run
    seconds: float = 0.0
    #: the current record of each item (its content now), every task on disk, once each
    records: list[dict] = field(default_factory=list)


def item_digests(items: Sequence[DataItem], workers: int = 4
                 ) -> tuple[dict[str, str], list[BadItem]]:
    """{item key: digest} of the items this process can read (each file hashed once, in
    threads), and the items it cannot."""
    paths: dict[tuple, str | Exception] = {}

    def one(it: DataItem) -> None:
        k = (it.path, it.mask_path)
        if k not in paths:
            try:
                paths[k] = item_digest(it)
            except ItemError as exc:
                paths[k] = exc

    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(one, items))
    out: dict[str, str] = {}
    bad: list[BadItem] = []
    for it in items:
        got = paths[(it.path, it.mask_path)]
        if isinstance(got, Exception):
            bad.append(BadItem(it.image, str(got), it.line))
        else:
            out[it.key] = got
    return out, bad


def run_items(folder: OutputFolder, items: Sequence[DataItem], tasks: Sequence[str], work: Work,
              *, progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Run `work` for every item with tasks not yet on disk for its current content; append
    each record it yields (the runner adds ``item``, ``digest`` and ``task``).

    ``work(item, pending)`` yields ``(task, record)`` for the tasks in `pending`, in any
    order. An `ItemError` skips the item (records already yielded for it are kept). Under a
    multi-process launch the items with work left are split across the processes (so a
    resumed run keeps every process busy), each appending to its own file; every process
    must call this with the same arguments. `progress(done, total)` counts this process's
    tasks.
    """
    t0 = time.perf_counter()
    log = folder.log
    if log is None:
        raise ValueError("run_items needs an OutputFolder with records=")
    # Each process hashes its share of the items; everyone gets every digest.
    mine_items = distributed.shard_items(list(items))
    digests_part, bad_part = item_digests(mine_items)
    digests: dict[str, str] = {}
    for part in distributed.gather_items([digests_part]):
        digests.update(part)
    bad: list[BadItem] = distributed.gather_items(bad_part)
    if distributed.is_main_process():
        log.repair()  # cut what a kill left, before anyone reads or appends
    distributed.wait_for_everyone()
    done = {(r.get("item"), r.get("task")) for r in _current(folder, digests)}
    todo: list[tuple[DataItem, list[str]]] = []
    readable = [it for it in items if it.key in digests]
    for it in readable:
        pending = [t for t in tasks if (it.key, t) not in done]
        if pending:
            todo.append((it, pending))
    done_before = len(readable) * len(tasks) - sum(len(p) for _, p in todo)
    if distributed.world_size() > 1:
        if todo and distributed.is_main_process():
            folder.begin()  # the marker and lock before any process appends
        distributed.wait_for_everyone()
    mine = distributed.shard_items(todo)
    total = sum(len(p) for _, p in mine)
    new = 0
    failed: list[BadItem] = []
    if progress is not None:
        progress(0, total)
    for it, pending in mine:
        left = set(pending)
        try:
            for task, record in work(it, pending):
                if task not in left:
                    raise ValueError(f"work yielded task {task!r} for {it.key}, "
                                     f"not one of {pending}")
                left.discard(task)
                log.append({"item": it.key, "digest": digests[it.key], "task": task, **record})
                new += 1
                if progress is not None:
                    progress(new, total)
        except ItemError as exc:
            failed.append(BadItem(it.image, str(exc), it.line))
            total -= len(left)
            if progress is not None:
                progress(new, total)
    distributed.wait_for_everyone()  # every record on disk before anyone reads them all
    new = sum(distributed.gather_items([new]))
    bad += distributed.gather_items(failed)
    records = list(_current(folder, digests))
    return RunResult(new, done_before, bad, time.perf_counter() - t0, records)


def _current(folder: OutputFolder, digests: dict[str, str]) -> Iterator[dict]:
    """The folder's records made for the items' current content. A folder being replaced
    (--overwrite, not yet begun) has none: its old records are removed at the first write."""
    if folder.state == "replace" or folder.log is None:
        return
    for r in folder.log.iter_records():
        item = r.get("item")
        if item in digests and r.get("digest") == digests[item]:
            yield r
