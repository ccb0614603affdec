"""What every command shares: one-line errors, progress bars."""

from __future__ import annotations

import functools
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

import typer

from ..errors import MmattrError


class _LazyConsole:
    """rich's stderr Console, made on first use (importing rich costs startup time)."""

    _console = None

    def __getattr__(self, name: str):
        if _LazyConsole._console is None:
            from rich.console import Console

            _LazyConsole._console = Console(stderr=True)
        return getattr(_LazyConsole._console, name)


console = _LazyConsole()


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit non-zero."""
    from rich.markup import escape

    # escaped: messages hold literal brackets, e.g. pip install 'mmattr[openclip]'
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def one_line_errors(fn: Callable) -> Callable:
    """Turn mmattr's errors into one line and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MmattrError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            console.print("interrupted; nothing partial was written")
            raise typer.Exit(130)
        except MemoryError:
            fail("out of memory; lower --batch-size or --regions")

    return wrapper


def relaunch_if_asked(num_processes: int) -> None:
    """``--num-processes N``: rerun this very command line under ``accelerate launch`` with N
    processes and exit with its code (a no-op for N = 1 and inside a launched process)."""
    from ..distributed import relaunch, without_option, world_size

    if num_processes < 1:
        fail(f"--num-processes must be at least 1, got {num_processes}")
    if num_processes == 1 or world_size() > 1:
        return
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        fail("--num-processes needs accelerate: pip install 'mmattr[accelerate]'")
    raise typer.Exit(relaunch(num_processes, without_option(sys.argv[1:], "--num-processes")))


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar driven by a callback (done, total)."""
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
