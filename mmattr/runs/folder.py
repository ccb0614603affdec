"""The one output folder of every command: explain, evaluate, audit, represent, dataset and
demo-model train.

The rules, checked by `OutputFolder(...)` before any work (every refusal is one `InputError`
line naming the cause and the fix; nothing is touched):

1. The folder is new (made, with its parents, when the first file is written, so a run that
   fails earlier leaves nothing), empty (or holding only mmattr's temporary entries), or an
   earlier result of the *same command*, recognised by its marker file `MARKER`.
2. The marker names the command and its settings (model, dataset, every setting the results
   depend on). Same settings: the run resumes (finished work is kept or skipped). Other
   settings: refused unless ``overwrite``, which removes exactly the files the marker lists
   (every file mmattr wrote there, nothing else). Another command's result: refused.
3. A file, a folder holding files mmattr did not write, a place that cannot be written, and
   (for dataset commands) the dataset folder itself or a folder inside it are refused.
4. One run at a time: the main process holds an exclusive lock (``flock`` on the folder) from
   the check (an existing folder) or its creation until `close`; a second run is refused.
5. Every file is written atomically (a temporary entry named by `_io.TMP_PREFIX`, renamed into
   place); a result of several files is assembled in a temporary folder inside and moved into
   place. What a killed run left (temporary entries, write probes) is removed by the next one,
   under the lock.

Usage::

    with OutputFolder(out, "evaluate", settings, overwrite=False, records="results") as folder:
        ...                                    # checked: safe to work now
        folder.log.append(record)              # resumable records (see runs.records)
        folder.write_text("summary.md", text)  # atomic, listed in the marker
        folder.finish()
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .._io import TMP_PREFIX, atomic_write, fix_tree_modes, is_temp, temp_dir
from ..errors import InputError, from_cli
from .records import RecordLog, launch_rank

#: the marker file of a folder mmattr wrote (JSON: tool, version, command, settings, state,
#: key, files)
MARKER = ".mmattr"
#: the marker earlier versions of `evaluate` and `audit` wrote (read, and replaced on write)
LEGACY_MARKER = "run.json"

__all__ = ["MARKER", "OutputFolder", "read_marker", "is_complete", "check_dataset_out",
           "launch_rank"]


def _json(value: Any) -> Any:
    """As it reads back from disk (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value, default=str))


def read_marker(out: str | os.PathLike) -> dict[str, Any] | None:
    """The marker of `out` as ``{command, settings, state, key, files, records}``, or None
    when `out` holds no (readable) mmattr marker. Markers of earlier versions are read too:
    explain's (no command), ``dataset shapes``' (kind dataset) and evaluate's / audit's
    ``run.json``."""
    out = Path(out)
    try:
        data = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and data.get("tool") == "mmattr":
        if "command" not in data:  # before the runs package: explain's or a dataset export's
            data = {**data, "command": "dataset shapes" if data.get("kind") == "dataset"
                    else "explain", "settings": None}
        data.setdefault("files", [])
        return data
    return _legacy_run_json(out)


def _legacy_run_json(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / LEGACY_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("command") in ("evaluate", "audit"):
        command, settings = data["command"], data.get("settings")
    elif {"model", "score", "steps", "fill"} <= set(data):  # evaluate before the runner
        command, settings = "evaluate", data
    else:
        return None
    stem = "results" if command == "evaluate" else "explanations"
    return {"command": command, "settings": None if settings is None else settings,
            "state": "writing", "key": None, "files": [LEGACY_MARKER], "records": stem,
            "legacy": True}


def is_complete(out: str | os.PathLike, key: str | None = None) -> bool:
    """`out` holds a finished result (with this key, when one is given)."""
    marker = read_marker(Path(out))
    if marker is None or marker.get("state") != "complete":
        return False
    if key is not None and marker.get("key") != key:
        return False
    return all((Path(out) / name).exists() for name in marker.get("files", []))


def _inside(path: Path, root: Path) -> bool:
    p, r = os.path.realpath(path), os.path.realpath(root)
    return p == r or p.startswith(r.rstrip(os.sep) + os.sep)


def _writable(folder: Path) -> bool:
    """Can a folder be made in `folder`? Tried for real (and undone): permission bits do not
    tell root about read-only mounts or kernel file systems."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        probe = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=folder)
    except OSError:
        return False
    try:
        os.rmdir(probe)
    except OSError:  # another run's cleanup took it first: it was made, so writable
        pass
    return True


def _shown(names: Sequence[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _differences(old: Any, new: Any) -> list[str]:
    old = old if isinstance(old, dict) else {}
    new = new if isinstance(new, dict) else {}
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def check_dataset_out(out: str | os.PathLike, dataset: str | os.PathLike, what: str) -> None:
    """`InputError` when `out` is the dataset folder or inside it: results written there would
    be read back as data (an ImageFolder class, say) and mix with the user's files."""
    if Path(dataset).exists() and _inside(Path(out), Path(dataset)):
        raise InputError(f"{what} {out} is inside the dataset folder {dataset}; choose a folder "
                         "outside it (results written there would be read as data)")


class OutputFolder:
    """An output folder of `command` with `settings`, checked now (see the module's rules).

    `files` names what the command writes (to recognise an unmarked folder an earlier version
    wrote, with `recognise`); `records` is the stem of its record files (``results`` →
    ``results.jsonl``, ``results.rank1.jsonl``), whose log is `log`. `avoid` lists dataset
    folders `out` must not be or be inside. `what` names the folder in messages (``--out`` on
    the command line, ``folder`` from Python). `lock` (default: the main process of a launch)
    takes the folder's lock.
    """

    def __init__(self, out: str | os.PathLike, command: str, settings: Any = None, *,
                 overwrite: bool = False, files: Iterable[str] = (), records: str | None = None,
                 record_key: Callable[[dict], tuple] | None = None,
                 avoid: Iterable[str | os.PathLike] = (), what: str | None = None,
                 lock: bool | None = None,
                 recognise: Callable[[Path], bool] | None = None) -> None:
        self.out = Path(out)
        self.command = command
        self.settings = _json(settings)
        self.overwrite = overwrite
        self.files = tuple(files)
        self.records = records
        self.what = what or ("--out" if from_cli() else "folder")
        self._want_lock = launch_rank() == 0 if lock is None else lock
        self._recognise = recognise
        self._fd: int | None = None
        self._old: dict[str, Any] | None = None
        self._listed: list[str] = []
        self._begun = False
        self._fresh = False
        self._created: list[Path] = []
        for root in avoid:
            check_dataset_out(self.out, root, self.what)
        self.state = self._check()
        self.log = None
        if records is not None:
            # Only the main process marks the folder; under a launch it does so before the
            # other processes append (see runs.work.run_items).
            self.log = RecordLog(self.out, records, record_key,
                                 before_append=self.begin if launch_rank() == 0 else None)

    # -- context manager: the lock is released at the end of the block ----------------------
    def __enter__(self) -> "OutputFolder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Release the folder's lock (the process's exit releases it too)."""
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    # -- the check ---------------------------------------------------------------------------
    def _check(self) -> str:
        """``new``, ``empty``, ``same`` (an earlier result of this command and settings) or
        ``replace`` (other settings, with `overwrite`); anything else raises."""
        out, what = self.out, self.what
        if out.is_symlink() and not out.exists():
            raise InputError(f"{what} {out} is a broken symbolic link; choose another folder")
        if not out.exists():
            parent = out.absolute().parent
            while not parent.exists():
                if parent.is_symlink():
                    raise InputError(f"cannot create {what} {out}: {parent} is a broken "
                                     "symbolic link")
                parent = parent.parent
            if not parent.is_dir():
                raise InputError(f"cannot create {what} {out}: {parent} is a file, not a "
                                 "folder; choose another place")
            if not _writable(parent):
                raise InputError(f"cannot create {what} {out}: {parent} is read-only; choose "
                                 "another place")
            return "new"
        if not out.is_dir():
            raise InputError(f"{what} {out} is a file, not a folder; choose a new folder "
                             "(mmattr never replaces a file it did not write)")
        try:
            names = [e.name for e in os.scandir(out)]
        except OSError as exc:
            raise InputError(f"cannot read {what} {out}: {exc.strerror or exc}") from None
        state = self._classify(names)  # first: a folder of someone else's is not even probed
        if not os.access(out, os.W_OK | os.X_OK) or not _writable(out):
            raise InputError(f"cannot write into {what} {out}: it is read-only; choose another "
                             "folder")
        self._lock()
        return state

    def _classify(self, names: list[str]) -> str:
        out, what = self.out, self.what
        marker = read_marker(out)
        if marker is None and self._recognise is not None and self._recognise(out):
            marker = {"command": self.command, "settings": None, "state": "complete",
                      "key": None, "files": [n for n in names if not is_temp(n)]}
        if marker is None:
            foreign = [n for n in names if not is_temp(n)]
            if foreign:
                raise InputError(f"{what} {out} already holds files mmattr did not write "
                                 f"({_shown(foreign)}); choose a new or empty folder (mmattr "
                                 "never deletes files it did not write)")
            return "empty"
        if marker.get("command") != self.command:
            raise InputError(f"{what} {out} holds a result of `mmattr {marker.get('command')}`; "
                             f"choose another {what}")
        self._old = marker
        if self._holds_nothing(marker, names):
            return "empty"  # a marker and nothing else: a run killed before its first file
        old = marker.get("settings")
        if old is not None and old != self.settings:
            if not self.overwrite:
                raise InputError(
                    f"{what} {out} holds a result of `mmattr {self.command}` made with other "
                    f"settings ({', '.join(_differences(old, self.settings)) or 'settings'}); "
                    f"use the same settings to resume, --overwrite to replace it, or another "
                    f"{what}")
            return "replace"
        self._listed = [f for f in marker.get("files", []) if f != LEGACY_MARKER]
        return "same"

    def _holds_nothing(self, marker: dict, names: list[str]) -> bool:
        if marker.get("legacy") or marker.get("state") == "complete" or marker.get("files"):
            return False
        rest = [n for n in names if n != MARKER and not is_temp(n)]
        return not rest

    def _lock(self) -> None:
        """Take the folder's lock (main process), or say which run holds it."""
        if not self._want_lock or self._fd is not None:
            return
        import fcntl

        try:
            fd = os.open(self.out, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"{self.what} {self.out} is in use by another mmattr run; wait "
                             f"for it to end, or choose another {self.what}") from None
        except OSError:  # a file system without locks: go on without one
            os.close(fd)
            return
        self._fd = fd

    # -- writing -----------------------------------------------------------------------------
    def begin(self) -> None:
        """Before the first file: make the folder, take its lock, check again under it, remove
        an earlier result being replaced and what a killed run left, write the marker."""
        if self._begun:
            return
        out = self.out
        try:
            if not out.exists():
                missing = []
                p = out
                while not p.exists():
                    missing.append(p)
                    p = p.parent
                for p in reversed(missing):
                    try:
                        os.mkdir(p)  # 0o777 minus the umask, like any other program's folders
                        self._created.append(p)
                    except FileExistsError:
                        pass
            self._lock()
            # under the lock: another run may have written here since the check
            state = self._classify([e.name for e in os.scandir(out)])
            if state != "empty":
                self.state = state
            self._fresh = self.state in ("new", "empty")
            if self.state == "replace":
                self._remove_old()
            self._clean(out)
            self._write_marker("writing")
        except OSError as exc:
            self._undo()
            raise InputError(f"cannot write into {self.what} {out}: {exc.strerror or exc}") from None
        except BaseException:
            self._undo()
            raise
        self._begun = True
        self.state = "same"  # from now on the folder holds this run's result

    def _remove_old(self) -> None:
        """--overwrite: remove the files the earlier result's marker lists (and its records),
        nothing else; folders only when that leaves them empty. The marker stops saying
        "complete" (and names this run's settings) before anything is removed."""
        old = self._old or {}
        names = list(old.get("files", []))
        stem = old.get("records")
        if stem:
            names += [p.name for p in _record_files(self.out, stem)]
        if old.get("legacy"):
            names.append(LEGACY_MARKER)
        if self._recognise is not None and old.get("settings") is None:
            names += list(self.files)
        self._listed = [n for n in names if n != LEGACY_MARKER]  # still ours until removed
        self._write_marker("writing")
        folders: set[Path] = set()
        for rel in names:
            path = self.out / rel
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                continue
            if path.is_file() or path.is_symlink():
                path.unlink()
                folders.update(q for q in path.parents if _inside(q, self.out) and q != self.out)
        for folder in sorted(folders, key=lambda q: len(q.parts), reverse=True):
            try:
                folder.rmdir()
            except OSError:
                pass
        self._listed = []

    def _clean(self, out: Path) -> None:
        """Remove temporary entries a killed run left: in the folder (this run holds its lock)
        and in the folders of its listed files; empty write probes in the nearest ancestors."""
        places = {out} | {(out / rel).parent for rel in self._listed}
        for place in places:
            try:
                entries = list(os.scandir(place))
            except OSError:
                continue
            for e in entries:
                if is_temp(e.name) and not e.is_symlink():
                    if e.is_dir():
                        shutil.rmtree(e.path, ignore_errors=True)
                    else:
                        os.unlink(e.path)
        for folder in list(out.absolute().parents)[:4]:
            try:
                probes = [p for p in folder.iterdir() if is_temp(p.name)]
            except OSError:
                continue
            for p in probes:
                try:
                    if p.is_dir() and not p.is_symlink():
                        p.rmdir()  # only an empty one: a probe, never someone's result
                except OSError:
                    pass
        _clean_legacy_siblings(out)

    def _write_marker(self, state: str, key: str | None = None) -> None:
        from .._version import __version__

        data = {"tool": "mmattr", "version": __version__, "command": self.command,
                "settings": self.settings, "state": state, "key": key,
                "files": sorted(set(self._listed)), "records": self.records}
        atomic_write(self.out / MARKER, json.dumps(data, indent=1) + "\n")
        legacy = self.out / LEGACY_MARKER
        if self._old is not None and self._old.get("legacy") and legacy.is_file():
            legacy.unlink()  # the old marker: this one replaces it
            self._old = {**self._old, "legacy": False}

    def _note(self, names: Iterable[str]) -> None:
        new = [n for n in names if n not in self._listed]
        if new:
            self._listed += new
            self._write_marker("writing")

    def _undo(self) -> None:
        """After a failure before anything was written: leave the place as it was found."""
        fresh = self._fresh if self._begun else self.state in ("new", "empty")
        if fresh and not self._listed:
            try:
                (self.out / MARKER).unlink()
            except OSError:
                pass
            for p in reversed(self._created):
                try:
                    p.rmdir()
                except OSError:
                    break
            if self._created:
                self.close()
            self._begun = False

    def path(self, name: str) -> Path:
        return self.out / name

    def write_text(self, name: str, data: str | bytes) -> Path:
        """Write one file atomically (creating the folder and its marker first)."""
        self.begin()
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._note([name])
        atomic_write(path, data)
        return path

    def write_files(self, fill: Callable[[Path], list[str]]) -> list[str]:
        """``fill(tmp)`` writes files or folders into a temporary folder inside this one and
        returns their names; they then replace their namesakes here (a folder's files one by
        one, so a user's file inside it stays). Returns the names."""
        self.begin()
        written_before = bool(self._listed)
        try:
            tmp = temp_dir(self.out)
        except OSError as exc:
            raise InputError(f"cannot write into {self.what} {self.out}: "
                             f"{exc.strerror or exc}") from None
        moved = False
        try:
            names = list(fill(tmp))
            files: list[str] = []
            for name in names:
                fix_tree_modes(tmp / name)
                files += _relative_files(tmp, name)
            self._note(files)  # listed before they move: a kill mid-move leaves them ours
            moved = True
            for name in names:
                _move_into(tmp / name, self.out / name)
        except OSError as exc:
            if not moved and not written_before:
                self._undo()
            raise InputError(f"cannot write into {self.what} {self.out}: "
                             f"{exc.strerror or exc}") from None
        except BaseException:
            if not moved and not written_before:
                self._undo()
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return names

    def tidy(self) -> None:
        """Remove what a killed run left (temporary entries, probes) without writing anything
        else: a rerun that skips finished work still cleans up."""
        if self.out.is_dir() and self.state in ("same", "empty"):
            self._lock()
            self._clean(self.out)

    def finish(self, key: str | None = None) -> None:
        """Mark the result complete (with `key`, what "already done" compares)."""
        self.begin()
        self._write_marker("complete", key)

    def is_complete(self, key: str | None = None) -> bool:
        return self.state == "same" and is_complete(self.out, key)


def _record_files(out: Path, stem: str) -> list[Path]:
    if not out.is_dir():
        return []
    pattern = re.compile(rf"{re.escape(stem)}(\.rank\d+)?\.jsonl")
    return sorted(p for p in out.iterdir() if pattern.fullmatch(p.name) and p.is_file())


def _relative_files(root: Path, name: str) -> list[str]:
    path = root / name
    if not path.is_dir() or path.is_symlink():
        return [name]
    out = []
    for dirpath, _, filenames in os.walk(path):
        for f in filenames:
            out.append(os.path.relpath(os.path.join(dirpath, f), root))
    return out or [name]


def _move_into(src: Path, dst: Path) -> None:
    """`src` replaces `dst`; a folder onto a folder moves its entries one by one."""
    if src.is_dir() and not src.is_symlink() and dst.is_dir() and not dst.is_symlink():
        for child in list(src.iterdir()):
            _move_into(child, dst / child.name)
        src.rmdir()
    else:
        os.replace(src, dst)


#: older versions saved into ``.NAME.XXXXXXXX`` beside the folder, swapping via ``.NAME.old.XXXXXXXX``
_LEGACY_FILES = {"attribution.npy", "regions.npy", "overlay.png", "curves.png", "explanation.json"}


def _clean_legacy_siblings(out: Path) -> None:
    parent = out.parent
    pattern = re.compile(re.escape(f".{out.name}.") + r"(old\.)?[a-z0-9_]{8}")
    try:
        siblings = list(parent.iterdir())
    except OSError:
        return
    for p in siblings:
        if not pattern.fullmatch(p.name) or not p.is_dir() or p.is_symlink():
            continue
        inner = p / out.name if ".old." in p.name else p
        try:
            names = {q.name for q in inner.iterdir()} if inner.is_dir() else None
            outer = {q.name for q in p.iterdir()}
        except OSError:
            continue
        only_ours = names is not None and names <= _LEGACY_FILES and all(
            (inner / n).is_file() for n in names)
        if only_ours and (inner == p or outer == {out.name}):
            shutil.rmtree(p, ignore_errors=True)
