"""The `mmattr` program's entry point: `main`, then a prompt exit.

A finished command has written and closed every file it makes; what Python's normal exit does
after that (atexit handlers aside) is tear down the modules one by one, which with torch loaded
takes half a second or more of a short run's wall time. `run` runs the atexit handlers, flushes
the standard streams and leaves with the command's exit code. `main` itself keeps Python's
normal exit (tests and wrappers call it and catch SystemExit); an uncaught exception other than
SystemExit also takes the normal path, so its traceback prints as usual.
"""

from __future__ import annotations

import atexit
import os
import sys

from .main import main


def run() -> None:
    """`main` as a program: the exit code of its SystemExit, without the interpreter teardown."""
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # as Python itself reports SystemExit("message")
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to write to
            pass
    os._exit(code)
