"""Sharding across processes started by ``accelerate launch`` (or torchrun); a no-op otherwise.

Two levels: a search step's candidate batch is split across processes and the embeddings are
gathered back (the RegionStack does this, so every search strategy gets it for free and every
process takes the same decisions on the same gathered tensor), and dataset-level commands split
their items with `shard_items` and collect results with `gather_items`.

Ref. Hugging Face Accelerate (``PartialState``, ``gather``, ``gather_object``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar

import torch

T = TypeVar("T")

__all__ = ["world_size", "rank", "is_main_process", "is_distributed", "shard_bounds",
           "gather_rows", "shard_items", "gather_items", "wait_for_everyone", "process_out_dir",
           "relaunch", "without_option", "step_bounds", "shutdown"]


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


def shutdown(synchronize: bool = True) -> None:
    """Leave the process group before the interpreter exits (a no-op when none was joined).

    A gloo group left to the interpreter's teardown can abort the process ("terminate called
    without an active exception", SIGABRT) after all its work is done, so a finished run would
    still exit non-zero. `synchronize` waits for the other processes first; pass False on an
    error path, where a peer may never arrive.

    Ref. PyTorch, "Shutdown" in the torch.distributed documentation (``destroy_process_group``).
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    if synchronize:
        wait_for_everyone()
    torch.distributed.destroy_process_group()


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


def step_bounds(count: int, processes: int) -> tuple[int, int]:
    """This process's rows of a search step's `count` candidates shared by `processes`
    processes (a `RunContext` says how many: all of them when 1)."""
    if processes <= 1:
        return 0, count
    start, stop, _ = shard_bounds(count)
    return start, stop


def gather_rows(local: torch.Tensor, count: int, processes: int) -> torch.Tensor:
    """Concatenate every process's share (from `step_bounds`) into the full (count, ...) tensor.

    Shares are padded to equal length because collective gathers need equal shapes; the padding
    only ever sits past `count` and is dropped.
    """
    if processes <= 1:
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


def without_option(argv: Sequence[str], option: str) -> list[str]:
    """`argv` minus ``option VALUE`` and ``option=VALUE`` (how a command drops the flag that
    asked for the relaunch, so the launched copies do not relaunch again)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def free_port() -> int:
    """A TCP port free right now, for the launcher's rendezvous: the fixed default (29500) can
    still be held by a run that has just ended, or by another run on the same machine."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def relaunch(num_processes: int, args: Sequence[str]) -> int:
    """Run ``mmattr ARGS`` in `num_processes` processes under ``accelerate launch``; its exit code.

    One machine; NCCL where there is a GPU per process, else every process on the CPU (gloo).
    Each process gets an equal share of the CPU threads so that N processes do not
    oversubscribe the cores.
    """
    threads = max(1, (os.cpu_count() or 1) // num_processes)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", str(num_processes), "--num_machines", "1",
           "--main_process_port", str(free_port()),
           "--mixed_precision", "no", "--dynamo_backend", "no",
           "--num_cpu_threads_per_process", str(threads), "-m", "mmattr", *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if torch.cuda.device_count() < num_processes:
        env["ACCELERATE_USE_CPU"] = "true"
    # The processes' stderr is passed through, except what would break the one-line-error
    # contract: the same error from every process (shown once) and the launcher's own failure
    # report (its log lines and a traceback of the launcher, not of mmattr).
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stderr is not None
    errors: set[str] = set()
    report = False
    for line in proc.stderr:
        if _LAUNCHER_LOG.match(line):
            report = report or line.startswith("E")
            continue
        if report:
            continue
        if line.startswith("error:"):
            if line in errors:
                continue
            errors.add(line)
        sys.stderr.write(line)
        sys.stderr.flush()
    code = proc.wait()
    return 2 if code and errors else code


_LAUNCHER_LOG = re.compile(r"^[EWI]\d{4} [\d:.]+ +\d+ .*torch/distributed/")
