"""A helper process that draws overlay.png and curves.png, started before torch is imported.

A short `mmattr explain` spends about a second on its two figures, half of it importing
matplotlib. `start` forks a helper at the command's start (Linux only, and only while torch is
not imported yet: a fork never copies a thread pool); it imports matplotlib and loads its
fonts on the second core while the command imports torch, then waits for figures. `draw`
sends the figures to the idle helpers (one each while there are several) and waits; the files
are those `mmattr.viz` writes in-process, byte for byte. One helper is the default: on two
cores a second one slows the command's own torch import more than it saves. Whenever a helper is missing, fails or is
slow, the figure is drawn in-process as before, so results never depend on the helpers.
``MMATTR_FIGURE_WORKERS=0`` turns them off.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

ENV = "MMATTR_FIGURE_WORKERS"
#: seconds to wait for a helper's figure before drawing it in-process instead
TIMEOUT = 120.0

_workers: list[tuple[int, Any]] = []  # (pid, connection) of idle helpers


def available() -> int:
    return len(_workers)


def start(n: int = 1) -> int:
    """Fork `n` helpers unless unsupported here (returns how many run)."""
    if (_workers or n < 1 or not sys.platform.startswith("linux") or "torch" in sys.modules
            or os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off")
            or os.environ.get("WORLD_SIZE", "1") not in ("", "1")):  # launched: most never draw
        return len(_workers)
    from multiprocessing.connection import Pipe

    for _ in range(n):
        ours, theirs = Pipe()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            break
        if pid == 0:  # the helper: never returns
            ours.close()
            for _, other in _workers:  # the parent's ends to earlier helpers
                other.close()
            _serve(theirs)
        theirs.close()
        _workers.append((pid, ours))
    if _workers:
        import atexit

        atexit.register(stop)
    return len(_workers)


def stop() -> None:
    """Let idle helpers go (each exits when its connection closes) and reap them."""
    while _workers:
        pid, conn = _workers.pop()
        conn.close()
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _serve(conn) -> None:
    """The helper's life: warm matplotlib up, then draw the figures sent until EOF."""
    code = 0
    try:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
        from . import viz
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        import matplotlib.colorbar  # noqa: F401  (overlay.png's colour bar)
        import cv2  # noqa: F401

        warm = Figure(figsize=(1, 1))
        warm.text(0.5, 0.5, "1", fontweight="bold")
        warm.suptitle("a")
        FigureCanvasAgg(warm).draw()  # loads the font cache and the fonts
        while True:
            try:
                name, args, kwargs = conn.recv()
            except (EOFError, OSError):
                break
            try:
                getattr(viz, name)(*args, **kwargs)
                conn.send(None)
            except Exception as exc:  # noqa: BLE001 - the parent draws it in-process
                conn.send(f"{type(exc).__name__}: {exc}")
    except BaseException:  # noqa: BLE001 - never let a helper run the parent's code
        code = 1
    finally:
        os._exit(code)


def draw(jobs: list[tuple[str, tuple, dict]]) -> None:
    """Draw each ``(viz function name, args, kwargs)``: spread over the idle helpers (a helper
    draws its share one after the other), in-process when there is none or a helper fails."""
    from . import viz

    helpers, _workers[:] = list(_workers), []
    if not helpers:
        for job in jobs:
            _call(viz, job)
        return
    shares: list[list] = [[] for _ in helpers]
    for i, job in enumerate(jobs):
        shares[i % len(helpers)].append(job)
    failed: list[tuple[str, tuple, dict]] = []
    for (pid, conn), share in zip(helpers, shares):
        ok = True
        for job in share:
            try:
                conn.send(job)
            except (OSError, ValueError):
                ok = False
                break
        for job in share:
            try:
                ok = ok and conn.poll(TIMEOUT) and conn.recv() is None
            except (EOFError, OSError):
                ok = False
            if not ok:
                failed.append(job)
        if ok:
            _workers.append((pid, conn))
        else:
            _kill(pid, conn)
    for job in failed:
        _call(viz, job)


def _call(viz, job: tuple[str, tuple, dict]) -> None:
    name, args, kwargs = job
    fn: Callable = getattr(viz, name)
    fn(*args, **kwargs)


def _kill(pid: int, conn) -> None:
    import signal

    conn.close()
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
