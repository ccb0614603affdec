"""Kill a process at the k-th file-system step of saving a result.

Every call that changes the disk while a result is saved (made folders, temporary folders,
written files, renames, chmods, removals) is one step. `install(k)` counts the steps from the
moment `OutputFolder.write_files` (mmattr.runs.folder) is entered and sends SIGKILL to this very process just
before step `k`, so a test can stop a save at each of its points in turn. Run as a script:
``python killhook.py K COUNT_FILE mmattr-args...`` (K = -1: never kill; the number of steps is
written to COUNT_FILE at exit).
"""

from __future__ import annotations

import functools
import os
import pathlib
import shutil
import signal
import sys
import tempfile
from typing import Callable


def _targets():
    import numpy
    from matplotlib.figure import Figure

    return [(os, "replace"), (os, "mkdir"), (os, "rmdir"), (os, "unlink"), (os, "chmod"),
            (tempfile, "mkdtemp"), (tempfile, "mkstemp"), (shutil, "rmtree"), (numpy, "save"),
            (pathlib.Path, "write_text"), (pathlib.Path, "write_bytes"), (Figure, "savefig")]


def install(kill_at: int, setattr_: Callable = setattr) -> dict:
    """Patch the disk-changing calls; returns the live counter ``{"armed", "steps"}``."""
    from mmattr.runs.folder import OutputFolder

    state = {"armed": False, "steps": 0}

    def step() -> None:
        if state["armed"]:
            if state["steps"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            state["steps"] += 1

    for owner, name in _targets():
        original = getattr(owner, name)

        def wrapped(*args, __original=original, **kwargs):
            step()
            return __original(*args, **kwargs)

        setattr_(owner, name, functools.wraps(original)(wrapped))

    original_write = OutputFolder.write_files

    def write_files(*args, **kwargs):
        state["armed"] = True
        try:
            return original_write(*args, **kwargs)
        finally:
            state["armed"] = False

    setattr_(OutputFolder, "write_files", write_files)
    return state


if __name__ == "__main__":
    kill_at, count_file, *argv = sys.argv[1:]
    state = install(int(kill_at))
    sys.argv = ["mmattr", *argv]
    from mmattr.cli import main

    try:
        main()
    finally:
        pathlib.Path(count_file).write_text(str(state["steps"]))
