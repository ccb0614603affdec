"""Progress where no terminal draws a bar: one line on stderr every few seconds.

Every command's progress callback has the signature ``progress(done, total)``. On a terminal
the CLI draws a rich bar (`mmattr.cli._common.progress_bar`); in logs and pipes it uses
`ProgressLines`: a heartbeat at most once per `interval`, a last line at completion once any
line was printed, and nothing at all for a run shorter than the interval.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

__all__ = ["ProgressLines", "PROGRESS_LINE_SECONDS"]

#: with no terminal: the first progress line after this many seconds, then one per interval
PROGRESS_LINE_SECONDS = 5.0


class ProgressLines:
    """A ``progress(done, total)`` callback printing
    ``DESCRIPTION: done/total UNIT (pct%), elapsed[, about N s left]`` on `stream` (stderr)."""

    def __init__(self, description: str, interval: float = PROGRESS_LINE_SECONDS,
                 stream: Any = None, unit: str | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.description = description
        self.interval = interval
        self.stream = stream
        self.unit = unit
        self._clock = clock or time.monotonic
        self._start = self._clock()
        self._last = self._start
        self._printed = False
        self._ended = False

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        end = total > 0 and done >= total
        if done <= 0 or self._ended:
            return
        if end:
            if not self._printed and now - self._last < self.interval:
                self._ended = True  # a quick run stays quiet
                return
        elif now - self._last < self.interval:
            return
        self._last = now
        self._printed = True
        self._ended = end
        elapsed = now - self._start
        text = f"{self.description}: {done}"
        if total:
            text += f"/{total}"
        if self.unit:
            text += f" {self.unit}"
        if total:
            text += f" ({100 * done / total:.0f}%)"
        text += f", {elapsed:.0f} s"
        rate = done / elapsed if elapsed > 0 else 0.0
        if not end and rate > 0 and total > done:
            text += f", about {(total - done) / rate:.0f} s left"
        print(text, file=self.stream or sys.stderr, flush=True)
