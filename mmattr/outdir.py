"""Result folders that never destroy anything mmattr did not write.

mmattr writes only into a folder that is new, empty, or marked as its own by the marker file
`MARKER`. Writing goes through a hidden temporary folder inside the result folder; the marker
says ``writing`` while files are moved into place and ``complete`` (with the result's key)
once all of them are there, so a run killed at any point leaves a folder that the next run
recognises as its own, cleans up and redoes. Files a user put into a result folder are never
touched: mmattr only replaces the files it names.

"Already done" is decided by a key over the image file's content, the target and every
setting (`result_key`), never by the image's path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from ._io import atomic_write, fix_mode
from .errors import InputError, from_cli

#: the marker file of a folder written by mmattr
MARKER = ".mmattr"
#: prefix of the temporary folder a save writes into (inside the result folder)
TMP_PREFIX = ".mmattr-tmp-"


#: ``atomic_write`` of the marker writes ``..mmattr.XXXX.tmp`` first
_MARKER_TMP = re.compile(re.escape(f".{MARKER}.") + r".+\.tmp")


def _our_temp(p: Path) -> bool:
    """A temporary entry only mmattr makes: a save's folder, or the marker's temporary file."""
    if p.is_symlink():
        return False
    if p.name.startswith(TMP_PREFIX):
        return p.is_dir()
    return bool(_MARKER_TMP.fullmatch(p.name)) and p.is_file()


def read_marker(out: Path) -> dict[str, Any] | None:
    """The marker's content, or None when `out` holds no (readable) mmattr marker."""
    try:
        data = json.loads((Path(out) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == "mmattr" else None


def _legacy_result(out: Path, files: Iterable[str]) -> bool:
    """A folder written by mmattr before the marker existed: only its result files, and an
    explanation.json that says mmattr wrote it."""
    names = {p.name for p in out.iterdir()}
    if not names or not names <= set(files) or "explanation.json" not in names:
        return False
    try:
        return "mmattr_version" in json.loads((out / "explanation.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False


def _writable(folder: Path) -> bool:
    """Can a folder be made in `folder`? Tried for real (and undone): permission bits do not
    tell root about read-only mounts or kernel file systems."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        os.rmdir(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=folder))
    except OSError:
        return False
    return True


def check_out_dir(out: str | Path, files: Iterable[str] = (),
                  recognise: Callable[[Path], bool] | None = None, what: str | None = None
                  ) -> str:
    """Say whether mmattr may write a result into `out`, reading only: ``new``, ``empty`` or
    ``ours``. Anything else (a file, a folder of someone else's files, a place that cannot be
    written) raises `InputError` naming the cause and the fix. `recognise` tells an unmarked
    folder that an earlier version of mmattr wrote (default: only result files in `files`).
    `what` names the folder in messages (default: ``--out`` on the command line, ``folder``
    from Python)."""
    what = what or ("--out" if from_cli() else "folder")
    out = Path(out)
    shown = str(out)
    if out.is_symlink() and not out.exists():
        raise InputError(f"{what} {shown} is a broken symbolic link; choose another folder")
    if out.exists():
        if not out.is_dir():
            raise InputError(f"{what} {shown} is a file, not a folder; choose a new folder "
                             "(mmattr never replaces a file it did not write)")
        try:
            entries = [p.name for p in out.iterdir()]
        except OSError as exc:
            raise InputError(f"cannot read {what} {shown}: {exc.strerror or exc}") from None
        legacy = recognise(out) if recognise else _legacy_result(out, files)
        if read_marker(out) is not None or legacy:
            state = "ours"
        elif all(_our_temp(out / name) for name in entries):
            state = "empty"  # empty but for what a save killed before its marker left
        else:
            raise InputError(f"{what} {shown} already holds files mmattr did not write; choose a "
                             "new or empty folder (mmattr never deletes files it did not write)")
        if not _writable(out):
            raise InputError(f"cannot write into {what} {shown}: it is read-only; choose another folder")
        return state
    # A new folder: its first existing ancestor must be a writable folder.
    parent = out.absolute().parent
    while not parent.exists():
        if parent.is_symlink():
            raise InputError(f"cannot create {what} {shown}: {parent} is a broken symbolic link")
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot create {what} {shown}: {parent} is a file, not a folder; "
                         "choose another place")
    if not _writable(parent):
        raise InputError(f"cannot create {what} {shown}: {parent} is read-only; choose another place")
    return "new"


def _write_marker(out: Path, state: str, key: str | None = None,
                  files: Iterable[str] = (), extra: dict[str, Any] | None = None) -> None:
    from ._version import __version__

    data = {"tool": "mmattr", "version": __version__, "state": state, "key": key,
            "files": sorted(files), **(extra or {})}
    atomic_write(out / MARKER, json.dumps(data, indent=1) + "\n")


def clean_stray(out: Path) -> None:
    """Remove the temporary folders an interrupted save left in `out` (only mmattr's own:
    inside a folder it marked, and beside it the ones older versions made)."""
    out = Path(out)
    if out.is_dir():
        entries = list(out.iterdir())
        if read_marker(out) is not None or all(_our_temp(p) for p in entries):
            for p in entries:
                if _our_temp(p):
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    # A write probe (an empty temporary folder, see `_writable`) killed in one of the nearest
    # ancestors: rmdir removes only an empty one.
    for folder in list(out.absolute().parents)[:4]:
        try:
            probes = [p for p in folder.iterdir() if p.name.startswith(TMP_PREFIX)]
        except OSError:
            continue
        for p in probes:
            try:
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()
            except OSError:
                pass
    _clean_legacy_siblings(out)


#: older versions saved into ``.NAME.XXXXXXXX`` beside the folder, swapping via ``.NAME.old.XXXXXXXX``
_LEGACY_FILES = {"attribution.npy", "regions.npy", "overlay.png", "curves.png", "explanation.json"}


def _clean_legacy_siblings(out: Path) -> None:
    parent = out.parent
    if not parent.is_dir():
        return
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


def write_result(out: str | Path, fill: Callable[[Path], list[str]], key: str | None,
                 extra: dict[str, Any] | None = None, files: Iterable[str] = ()) -> Path:
    """Write a result into `out`: ``fill(tmp)`` writes the files into a temporary folder and
    returns their names; they then replace their namesakes in `out` and the marker is set
    ``complete`` with `key`. Raises `InputError` (nothing written) where `out` may not be used;
    `files` names the result files an unmarked folder of an older version holds."""
    out = Path(out)
    state = check_out_dir(out, files)
    created: list[Path] = []
    try:
        if state == "new":
            missing = []
            p = out
            while not p.exists():
                missing.append(p)
                p = p.parent
            for p in reversed(missing):
                os.mkdir(p)  # 0o777 minus the umask, like any other program's folders
                created.append(p)
        clean_stray(out)
        if state != "ours":
            _write_marker(out, "writing", extra=extra)
        tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=out))
    except OSError as exc:
        _undo(out, created, state)
        raise InputError(f"cannot write into {out}: {exc.strerror or exc}") from None
    moved = False
    try:
        names = fill(tmp)
        for name in names:
            fix_mode(tmp / name)
        _write_marker(out, "writing", extra=extra)
        moved = True
        for name in names:
            os.replace(tmp / name, out / name)
        _write_marker(out, "complete", key=key, files=names, extra=extra)
    except OSError as exc:
        if not moved:
            _undo(out, created, state)
        raise InputError(f"cannot write into {out}: {exc.strerror or exc}") from None
    except BaseException:
        if not moved:
            _undo(out, created, state)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _undo(out: Path, created: list[Path], state: str) -> None:
    """After a failed save that moved nothing: leave `out` as it was found."""
    if state in ("new", "empty"):
        try:
            (out / MARKER).unlink()
        except OSError:
            pass
        for p in out.iterdir() if out.is_dir() else ():
            if _our_temp(p):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            break


def is_complete(out: str | Path, key: str | None = None) -> bool:
    """`out` holds a finished result (with this key, when one is given)."""
    marker = read_marker(Path(out))
    if marker is None or marker.get("state") != "complete":
        return False
    if key is not None and marker.get("key") != key:
        return False
    return all((Path(out) / name).is_file() for name in marker.get("files", []))


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def target_fingerprint(target) -> dict[str, Any]:
    """The target by content: texts and classes as they are, files and vectors by hash."""
    import numpy as np

    data = {"kind": target.kind, "label": target.label}
    if target.kind == "text":
        data["texts"] = list(target.texts)
    elif target.kind == "class":
        data["class"] = target.class_name
    elif target.kind in ("image", "audio"):
        data["sha256"] = file_sha256(target.image if target.kind == "image" else target.audio)
    elif target.embedding is not None:
        data["sha256"] = hashlib.sha256(np.ascontiguousarray(target.embedding, np.float32)
                                        .tobytes()).hexdigest()
    return data


def result_key(image_sha256: str, target, settings: dict[str, Any]) -> str:
    """What decides "already done": the image's content, the target's and every setting."""
    blob = json.dumps({"image": image_sha256, "target": target_fingerprint(target),
                       "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _slug(text: str, limit: int = 32) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].rstrip("-") or "target"


def default_out_dir(image: str | Path, target=None, method: str | None = None,
                    division: str | None = None) -> Path:
    """``scenes/cat.png``, "a cat", smdl → ``explanations/cat.smdl.a-cat-1f2e3d``.

    The target's slug and a short hash of it keep two targets of one image apart; the method
    (and a prior division) keeps two methods apart.
    """
    name = Path(image).stem or "image"
    if method:
        name += "." + method
        if division and division.startswith("prior:"):
            name += "+prior-" + division.split(":", 1)[1]
    if target is not None:
        if target.kind == "text":
            label = target.label
        elif target.kind == "class":
            label = f"class-{target.class_name}"
        elif target.kind in ("image", "audio"):
            label = f"{target.kind}-{Path(target.image or target.audio).stem}"
        else:
            label = "embedding"
        digest = hashlib.sha256(json.dumps(target_fingerprint(target), sort_keys=True,
                                           default=str).encode()).hexdigest()[:6]
        name += f".{_slug(label)}-{digest}"
    return Path("explanations") / name


#: what `mmattr dataset shapes` writes into its folder
DATASET_ENTRIES = {"images", "masks", "manifest.jsonl", MARKER}


def _dataset_folder(out: Path) -> bool:
    names = {p.name for p in out.iterdir()}
    return bool(names) and names <= DATASET_ENTRIES and "manifest.jsonl" in names


def check_dataset_dir(out: str | Path) -> str:
    """`check_out_dir` for a dataset export: new, empty or an earlier export."""
    return check_out_dir(out, recognise=_dataset_folder, what="OUT")


def mark_dataset(out: str | Path) -> None:
    """Mark a finished dataset export as mmattr's own."""
    _write_marker(Path(out), "complete", extra={"kind": "dataset"})
