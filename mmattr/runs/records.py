"""Append-only JSONL record logs: one file per process, fsynced per record, read deduplicated.

A record carries ``item`` (the item's key), ``digest`` (the content hash of the item's image
and mask when it was made) and ``task``; (item, digest, task) is its key. A record is appended
and fsynced in one write, so a kill leaves at most a partial last line, which `repair` cuts and
readers ignore. Lines with equal keys (two runs racing, a rerun beside a killed one) are read
once: the first wins. A record whose digest differs from the item's content now is stale and
is never reused (see `runs.work.run_items`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["RecordLog", "append_line", "record_key", "launch_rank"]


def launch_rank() -> int:
    """This process's rank under a multi-process launch (0 otherwise), from the launcher's
    environment, so a record file's name (and checking a folder) imports no torch."""
    try:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return int(os.environ.get("RANK", "0"))
    except ValueError:
        pass
    return 0


def record_key(record: dict) -> tuple:
    """The key of a record: (item, digest, task)."""
    return record.get("item"), record.get("digest"), record.get("task")


def append_line(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line in one write and fsync it before returning (survives a crash)."""
    line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


class RecordLog:
    """The record files ``NAME.jsonl`` (main process) and ``NAME.rankR.jsonl`` of a folder.

    `key` maps a record to its key (default `record_key`); `before_append` runs before each
    append (the output folder marks itself there, once).
    """

    def __init__(self, out: str | os.PathLike, name: str = "records",
                 key: Callable[[dict], tuple] | None = None,
                 before_append: Callable[[], None] | None = None) -> None:
        self.out = Path(out)
        self.name = name
        self._key = key or record_key
        self._before_append = before_append

    def key(self, record: dict) -> tuple:
        return self._key(record)

    def path_for(self, rank: int) -> Path:
        return self.out / (f"{self.name}.jsonl" if rank == 0 else f"{self.name}.rank{rank}.jsonl")

    @property
    def path(self) -> Path:
        return self.path_for(launch_rank())

    def files(self) -> list[Path]:
        """Every process's record file, the main one first, then by rank."""
        if not self.out.is_dir():
            return []
        pattern = re.compile(rf"{re.escape(self.name)}\.rank(\d+)\.jsonl")
        ranks = sorted((int(m.group(1)), self.out / n) for n in os.listdir(self.out)
                       if (m := pattern.fullmatch(n)))
        main = self.out / f"{self.name}.jsonl"
        return ([main] if main.is_file() else []) + [p for _, p in ranks if p.is_file()]

    def repair(self) -> None:
        """Cut the partial last line of every record file (left by a kill mid-write). Run by
        the main process, before any process appends."""
        for path in self.files():
            _cut_partial_line(path)

    def iter_records(self) -> Iterator[dict]:
        """Every complete record of every process, streamed; the first of equal keys wins."""
        seen: set[tuple] = set()
        for path in self.files():
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.endswith("\n"):
                        continue  # partial last line of a killed writer
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if not isinstance(rec, dict):
                        continue
                    k = self._key(rec)
                    if k in seen:
                        continue
                    seen.add(k)
                    yield rec

    def read(self) -> list[dict]:
        return list(self.iter_records())

    def append(self, record: dict) -> None:
        """Append one JSON line and fsync it before returning, so it survives a crash."""
        if self._before_append is not None:
            self._before_append()
        append_line(self.path, record)


def _cut_partial_line(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        # find the last newline, reading backwards in blocks (files can be large)
        pos, cut = size, 0
        while pos > 0:
            start = max(0, pos - 65536)
            f.seek(start)
            block = f.read(pos - start)
            i = block.rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
            pos = start
    with open(path, "r+b") as f:
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
