"""Errors that reach the user as one line, without a traceback, in the caller's words."""

from __future__ import annotations

import shlex
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator


class MmattrError(Exception):
    """Base of every error mmattr reports to the user as a single line."""


class InputError(MmattrError, ValueError):
    """The user's input (file, option, text) cannot be used."""


class ModelError(MmattrError):
    """A model cannot be found, loaded or used for the request."""


class MmattrWarning(UserWarning):
    """Something the user should know that does not stop the run (the CLI prints one line)."""


# -- the caller's words ----------------------------------------------------------------------
# One message serves two audiences: the command line writes a setting as a flag
# (``--regions 100000``), Python as a keyword (``regions=100000``). Messages name a setting by
# its Python keyword through `arg`; the CLI runs every command inside ``caller("cli")``.

#: "python" (the default: library calls) or "cli" (set by the command line for one command)
_CALLER: ContextVar[str] = ContextVar("mmattr_caller", default="python")
#: Python keyword → command-line flag, where the flag is not the keyword in kebab case
_FLAGS = {"class_name": "--class", "out_dir": "--out", "options": "-O"}
_UNSET: Any = object()


@contextmanager
def caller(kind: str) -> Iterator[None]:
    """Within this block messages use `kind`'s words: ``cli`` (flags) or ``python`` (keywords)."""
    if kind not in ("cli", "python"):
        raise ValueError(f"caller is cli or python, not {kind!r}")
    token = _CALLER.set(kind)
    try:
        yield
    finally:
        _CALLER.reset(token)


def from_cli() -> bool:
    """Whether the current call came from the command line."""
    return _CALLER.get() == "cli"


def arg(name: str, value: Any = _UNSET) -> str:
    """A setting as the caller writes it, named by its Python keyword: ``--batch-size 8`` on
    the command line, ``batch_size=8`` from Python (without `value`: ``--batch-size`` /
    ``batch_size=``)."""
    if from_cli():
        flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
        return flag if value is _UNSET else f"{flag} {shlex.quote(str(value))}"
    return f"{name}=" if value is _UNSET else f"{name}={value!r}"


def warn(message: str) -> None:
    """One `MmattrWarning`, attributed to the first line outside mmattr that led to it (the
    caller's), so Python's default filter says it once per place in the caller's code and
    shows that line rather than mmattr's; the CLI prints it as one line."""
    import os
    import sys
    import warnings

    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 2  # level 2: warn's caller
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(here):
        frame, level = frame.f_back, level + 1
    warnings.warn(MmattrWarning(message), stacklevel=level)
