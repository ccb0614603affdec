"""What the fuzz suites share: a snapshot of a user's folder, and the one-line-error check."""

from __future__ import annotations

import os
from pathlib import Path


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under `root` with its kind, bytes and permission bits (links as links)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (p.is_dir(), None if p.is_dir() or p.is_symlink()
                                             else p.read_bytes(), st.st_mode)
    return out


def assert_one_line(result, expect: str) -> str:
    """Exit 2 and exactly one line, ``error: ...`` holding `expect`, no traceback."""
    text = result.output.strip()
    assert result.exit_code == 2, (result.exit_code, text)
    assert len(text.splitlines()) == 1, text
    assert text.startswith("error: ") and expect in text, text
    assert "Traceback" not in text
    return text


def check_read_only_place(world: Path, run) -> None:
    """``run(out)`` (a command writing into `out`) refused in one line, nothing touched, for
    a place that cannot be written: a kernel file system for root (permission bits do not stop
    root), else a folder without write permission."""
    import pytest

    if os.geteuid() == 0:
        if os.path.exists("/sys/mmattr-fuzz"):
            pytest.skip("/sys/mmattr-fuzz exists")
        assert_one_line(run("/sys/mmattr-fuzz/out"), "read-only")
        assert not os.path.exists("/sys/mmattr-fuzz")
        return
    ro = world / "ro"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o555)
    try:
        before = snapshot(world)
        assert_one_line(run(str(ro / "out")), "read-only")
        assert snapshot(world) == before
    finally:
        ro.chmod(0o755)
