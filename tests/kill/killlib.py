"""What the kill suites share: the real command in a forked child of the test process (no
interpreter start per kill: seconds, not minutes)."""

from __future__ import annotations

import os
import sys


def run_forked(argv: list[str], env: dict[str, str] | None = None) -> None:
    """The body of a forked child: `mmattr ARGV` (with `env` set), then a hard exit."""
    import torch

    from mmattr.cli.main import app

    torch.set_num_threads(1)
    os.environ.update(env or {})
    sys.stdout = sys.stderr = open(os.devnull, "w")
    code = 0
    try:
        app(argv, prog_name="mmattr", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        code = 1
    os._exit(code)
