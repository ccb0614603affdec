"""Sharding across processes started by `relaunch` (``--num-processes N``), ``accelerate launch``
or torchrun; a no-op otherwise.

Two levels: a search step's candidate batch is split across processes and the embeddings are
gathered back (the RegionStack does this, so every search strategy gets it for free and every
process takes the same decisions on the same gathered tensor; how many processes share a step
is the explainer's `RunContext`'s, never module state), and dataset-level commands split their
items with `shard_items` and collect results with `gather_items`.

Ref. Hugging Face Accelerate (``PartialState``, ``gather``, ``gather_object``).
"""

from __future__ import annotations

import os
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
    """Run ``mmattr ARGS`` in `num_processes` processes on this machine; their exit code.

    The processes get the environment a torchrun-style launcher sets (RANK, LOCAL_RANK,
    WORLD_SIZE, MASTER_ADDR / MASTER_PORT), which accelerate's ``PartialState`` reads: NCCL
    where there is a GPU per process, else every process on the CPU (gloo), each with an equal
    share of the CPU threads. They run in one process group of their own, and each is bound
    to this process (Linux: a parent-death signal), so a SIGKILL of this process kills them
    all at once: nothing keeps appending behind a killed run. When one fails the others get a
    moment to report the same error (shown once), then the group is stopped.
    """
    import signal
    import threading

    threads = max(1, (os.cpu_count() or 1) // num_processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "WORLD_SIZE": str(num_processes),
           "LOCAL_WORLD_SIZE": str(num_processes), "GROUP_RANK": "0"}
    if torch.cuda.device_count() < num_processes:
        env["ACCELERATE_USE_CPU"] = "true"
    procs: list[subprocess.Popen] = []
    # The processes' stderr is passed through, except the same error from every process
    # (shown once), which would break the one-line-error contract.
    errors: set[str] = set()
    lock = threading.Lock()

    def pump(stream) -> None:
        for line in stream:
            with lock:
                if line.startswith("error:"):
                    if line in errors:
                        continue
                    errors.add(line)
                sys.stderr.write(line)
                sys.stderr.flush()

    readers = []
    try:
        for rank in range(num_processes):
            group = procs[0].pid if procs else 0
            proc = subprocess.Popen(
                [sys.executable, "-m", "mmattr", *args],
                env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank), "ROLE_RANK": str(rank)},
                stderr=subprocess.PIPE, text=True, bufsize=1,
                preexec_fn=_bound_child(os.getpid(), group))
            try:  # both sides set the group, so the next child can join it at once
                os.setpgid(proc.pid, group or proc.pid)
            except OSError:
                pass
            procs.append(proc)
            reader = threading.Thread(target=pump, args=(proc.stderr,), daemon=True)
            reader.start()
            readers.append(reader)
        code = _wait_all(procs)
    except KeyboardInterrupt:
        _stop_group(procs, signal.SIGINT)
        code = 130
    finally:
        _stop_group(procs, signal.SIGKILL, grace=0.0)
        for reader in readers:
            reader.join(timeout=5)
    return 2 if code and errors else code


#: seconds the other processes get to end on their own after one of them failed
FAILURE_GRACE = 10.0


def _wait_all(procs: list[subprocess.Popen]) -> int:
    """Wait for every process; after the first failure, stop the rest after a grace period
    (they may be blocked in a collective the failed one never joins). The first failure's
    code, else 0."""
    import signal
    import time

    failed_at = None
    code = 0
    while True:
        codes = [p.poll() for p in procs]
        if all(c is not None for c in codes):
            return code or next((c for c in codes if c), 0)
        bad = next((c for c in codes if c), None)
        if bad and failed_at is None:
            failed_at, code = time.monotonic(), bad
        if failed_at is not None and time.monotonic() - failed_at > FAILURE_GRACE:
            _stop_group(procs, signal.SIGTERM)
        time.sleep(0.05)


def _stop_group(procs: list[subprocess.Popen], sig: int, grace: float = 5.0) -> None:
    """Send `sig` to the processes' group, wait up to `grace` s, then kill what is left."""
    import signal
    import time

    if not procs:
        return
    try:
        os.killpg(procs[0].pid, sig)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    end = time.monotonic() + grace
    while time.monotonic() < end and any(p.poll() is None for p in procs):
        time.sleep(0.05)
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _bound_child(parent: int, group: int):
    """The function a launched process runs before ``exec``: join the launch's process group
    (`group`, 0 for a new one led by itself) and die with `parent` (Linux PR_SET_PDEATHSIG;
    elsewhere the group alone)."""
    import ctypes
    import signal

    try:  # loaded before the fork: no dlopen in the child
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None

    def child() -> None:
        try:
            os.setpgid(0, group)
        except OSError:
            pass
        if prctl is not None:
            prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above: follow it
            os._exit(1)

    return child



