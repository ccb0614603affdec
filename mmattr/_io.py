"""Atomic file writes and the one temporary-file convention.

Every temporary entry mmattr makes (a file written before it is renamed into place, a folder a
result is assembled in, a write probe) is named ``TMP_PREFIX`` + random characters (+ the
target's suffix, so a picture writer still sees ``.png``). One name rule, so every place that
cleans up after a killed run recognises the same entries (`is_temp`) and nothing else.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

#: the prefix of every temporary file or folder mmattr makes
TMP_PREFIX = ".mmattr-tmp-"


def is_temp(name: str) -> bool:
    """Whether a file or folder name is one of mmattr's temporary entries."""
    return name.startswith(TMP_PREFIX)


def umask() -> int:
    """The process's umask: from /proc (Linux), else by setting and restoring it (there is no
    getter; that briefly changes it, so it is the fallback: files are written from threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fix_mode(path: str | Path, directory: bool = False) -> None:
    """Give `path` the permissions the user's umask asks for.

    `tempfile` creates files 0600 and folders 0700 whatever the umask; a result renamed from
    one must look like any other file the user makes.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def fix_tree_modes(path: str | Path) -> None:
    """`fix_mode` for a file, or a folder and everything in it (a result assembled in a
    temporary folder)."""
    path = Path(path)
    if path.is_symlink():
        return
    if not path.is_dir():
        fix_mode(path)
        return
    fix_mode(path, directory=True)
    for dirpath, dirnames, filenames in os.walk(path):
        for d in dirnames:
            if not os.path.islink(os.path.join(dirpath, d)):
                fix_mode(os.path.join(dirpath, d), directory=True)
        for f in filenames:
            if not os.path.islink(os.path.join(dirpath, f)):
                fix_mode(os.path.join(dirpath, f))


def temp_dir(where: str | Path) -> Path:
    """A new temporary folder inside `where` (named by the convention)."""
    return Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=where))


@contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=TMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        fix_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: str | bytes, mode: int | None = None) -> None:
    """Write text (UTF-8) or bytes to `path` atomically. `mode`: the file's permission bits
    (default: what the umask asks for, read per call; a writer of many files passes its own)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=TMP_PREFIX, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            os.fchmod(f.fileno(), (0o666 & ~umask()) if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
