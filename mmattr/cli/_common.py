"""What every command shares: one-line errors, progress bars."""

from __future__ import annotations

import functools
import sys
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import typer

from ..errors import MmattrError, MmattrWarning, caller


class _LazyConsole:
    """A rich Console made on first use (importing rich costs startup time)."""

    def __init__(self, **kwargs) -> None:
        self._kwargs = kwargs
        self._console = None

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._kwargs)
        return getattr(self._console, name)


console = _LazyConsole(stderr=True)
#: results (the summary a user may pipe or capture) go to stdout; messages and progress to stderr
stdout = _LazyConsole(soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit non-zero."""
    from rich.markup import escape

    # escaped: messages hold literal brackets, e.g. pip install 'mmattr[openclip]'
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def usage_error(exc: Exception) -> None:
    """A parsing error of the command line (click's or Typer's) as one line, then exit 2."""
    message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    usage = any(c.__name__ == "UsageError" for c in type(exc).__mro__)
    if usage and ctx is not None:
        message += f" (see {ctx.command_path} --help)"
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(2)  # outside the command: SystemExit, as click's own ending


def one_line_errors(fn: Callable) -> Callable:
    """Turn mmattr's errors into one line and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            # messages name settings as flags (--regions), not Python keywords (regions=)
            with warnings.catch_warnings(), caller("cli"):
                warnings.simplefilter("default", MmattrWarning)  # each message once
                warnings.showwarning = _warning_line
                return fn(*args, **kwargs)
        except MmattrError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            console.print("interrupted; nothing partial was written")
            raise typer.Exit(130)
        except MemoryError:
            fail("out of memory; lower --batch-size or --regions")

    return wrapper


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, MmattrWarning):
        from rich.markup import escape

        console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:  # other libraries' warnings, as Python shows them
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


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
    """A rich progress bar driven by a callback (done, total); plain lines on stderr when no
    terminal is attached (`mmattr.runs.progress.ProgressLines`)."""
    if not enabled:
        yield lambda done, total: None
        return
    if not sys.stderr.isatty():
        from ..runs.progress import ProgressLines

        yield ProgressLines(description)
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
