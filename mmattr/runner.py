"""The one dataset runner: reading, resumable per-item work, sharding, an embedding cache.

Every dataset-level command (`mmattr evaluate`, `mmattr audit`, ...) composes these pieces
instead of keeping its own copy:

- `read_dataset(folder)`: a manifest folder (``manifest.jsonl``: one JSON object per line with
  ``image``, optional ``text``, ``mask``, ``label``; paths relative to the folder) or an
  ImageFolder layout (one subfolder per class, label = folder name, as torchvision reads it).
  Items are metadata only (paths, labels); images are read when they are worked on. A missing
  image or mask is not an error: the item lands in ``Dataset.bad`` and the rest go on.
- `RunFolder(out, command, settings)`: the output folder. It is checked when made (one-line
  `InputError` for a folder that holds someone else's files, or results made with other
  settings unless ``overwrite``) and *written only when the first record is*: a run that fails
  before its first record leaves nothing that blocks the corrected command. Its ``run.json``
  marker names the command and settings; stray temporary files of a killed run are removed.
- `run_items(folder, items, tasks, work)`: calls ``work(item, pending_tasks)`` for each item
  with tasks left, sharded over the processes of ``accelerate launch``; each record the work
  yields is appended to this process's JSONL file and fsynced before the next task starts, so a
  SIGKILL loses at most the record in flight and a rerun skips every (item, task) on disk.
  A work function raises `ItemError` for a bad item (unreadable image, bad mask): the item is
  skipped, counted and returned in ``RunResult.bad``; the run goes on.
- `EmbeddingCache` + `encode_items(adapter, items, cache=...)`: image embeddings computed once,
  in batches on the adapter's device under ``torch.inference_mode``, stored one ``.npy`` per
  image keyed by the model's identity (`model_key`) and the image file's content hash, written
  atomically, bounded by ``max_bytes`` (least recently used files pruned). A rerun, or a second
  command over the same images with the same model, reads them back instead of re-encoding;
  an edited image has a new hash and is encoded again.
- `ProgressLines`: a progress callback that prints a line to stderr every few seconds (for logs
  and pipes, where no progress bar is drawn).

Usage (what ``mmattr audit`` does)::

    from mmattr.runner import (EmbeddingCache, ItemError, ProgressLines, RunFolder,
                               encode_items, load_item_image, read_dataset, run_items)

    data = read_dataset("photos/")                 # manifest folder or ImageFolder
    folder = RunFolder("audit-out", "audit", settings={"model": spec, "vocabulary": vocab},
                       overwrite=False, outputs=("report.html", "audit.json"))
    enc = encode_items(adapter, data.items, cache=EmbeddingCache(), batch_size=64,
                       progress=ProgressLines("encode"))
    enc.vectors          # (N, D) float32, raw `encode_images` output, row i ↔ enc.items[i]
    enc.bad              # [BadItem(image, reason)] for unreadable images (plus data.bad)

    def explain_one(item, tasks):                  # tasks: those not on disk yet
        image = load_item_image(item)              # raises ItemError for a bad file
        for task in tasks:
            yield task, {"map": ...}               # one JSON-able record per task
    result = run_items(folder, chosen_items, ("predicted", "true"), explain_one)
    records = folder.log.read()                    # every record, old and new, no duplicates
    folder.write_text("audit.json", ...)           # atomic; marks the folder as mmattr's

Every process of a sharded run calls the same functions in the same order: they meet in
barriers, and `encode_items` returns the whole set's vectors on every process.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from . import distributed
from ._io import atomic_write
from .errors import InputError

MANIFEST = "manifest.jsonl"
MARKER = "run.json"
#: image extensions of an ImageFolder (torchvision's IMG_EXTENSIONS)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

__all__ = ["DataItem", "BadItem", "Dataset", "ItemError", "read_dataset", "load_item_image",
           "RunFolder", "RecordLog", "RunResult", "run_items", "EmbeddingCache", "Encoded",
           "encode_items", "model_key", "file_digest", "default_cache_dir", "ProgressLines",
           "append_line", "manifest_key"]


# -- items ----------------------------------------------------------------------------------

class ItemError(InputError):
    """One dataset item cannot be used (missing, corrupt or unreadable file); the run skips it."""


@dataclass(frozen=True)
class DataItem:
    """One dataset entry. ``key`` is unique within the dataset and stable across runs: for a
    manifest line it is its (image, text, mask, label), so two lines with the same image and
    text but different masks stay distinct; for an ImageFolder it is the relative path."""

    key: str
    image: str                      # path as written, relative to the dataset folder
    path: Path                      # absolute path of the image
    label: str | None = None
    text: str | None = None         # the target text (a manifest's text, else its label)
    mask: str | None = None         # relative path of a ground-truth mask
    mask_path: Path | None = None   # absolute path of the mask
    line: int | None = None         # manifest line number (None for an ImageFolder)
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class BadItem:
    """An item that was skipped, and why (one line)."""

    image: str
    reason: str
    line: int | None = None

    def describe(self) -> str:
        where = f" (manifest line {self.line})" if self.line is not None else ""
        return f"{self.image}{where}: {self.reason}"


@dataclass
class Dataset:
    """A dataset folder read by `read_dataset`."""

    root: Path
    kind: str                       # "manifest" or "imagefolder"
    items: list[DataItem]           # usable items, in file order, duplicates dropped
    bad: list[BadItem]              # items whose image (or mask) file is missing
    classes: list[str]              # ImageFolder: sorted class folders; manifest: sorted labels
    duplicates: list[int] = field(default_factory=list)  # manifest lines equal to an earlier one

    def __len__(self) -> int:
        return len(self.items)


def read_dataset(folder: str | os.PathLike, *, need: Sequence[str] = ()) -> Dataset:
    """Read a manifest folder or an ImageFolder; one-line `InputError` for an unusable folder.

    `need` lists fields every item must have (``"text"``, ``"label"``): a manifest line
    without one is an error naming the line. A missing image or mask file is not an error:
    the item goes to ``Dataset.bad``; a dataset with no usable item is.
    """
    root = Path(folder)
    if not root.exists():
        raise InputError(f"dataset folder not found: {root}")
    if not root.is_dir():
        raise InputError(f"not a folder: {root} (give the folder that holds manifest.jsonl "
                         "or one subfolder of images per class)")
    if (root / MANIFEST).is_file():
        data = _read_manifest(root, need)
    else:
        data = _read_imagefolder(root)
    if not data.items:
        if data.bad:
            raise InputError(f"no usable image in {root}: {len(data.bad)} skipped, e.g. "
                             f"{data.bad[0].describe()}")
        raise InputError(f"{root / MANIFEST if data.kind == 'manifest' else root} lists no images")
    return data


def _read_manifest(root: Path, need: Sequence[str]) -> Dataset:
    from .datasets.shapes import manifest_records

    path = root / MANIFEST
    items: list[DataItem] = []
    bad: list[BadItem] = []
    seen: set[str] = set()
    duplicates: list[int] = []
    for n, rec in manifest_records(path):
        label = rec.get("label")
        label = str(label) if label is not None else None
        text = rec.get("text") if rec.get("text") is not None else label
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise InputError(f"{path}:{n}: 'text' must be a non-empty string")
        text = text.strip() if text is not None else None
        if "text" in need and text is None:
            raise InputError(f"{path}:{n}: needs a 'text' (or 'label') to explain")
        if "label" in need and label is None:
            raise InputError(f"{path}:{n}: needs a 'label' (the ground-truth class)")
        mask = rec.get("mask")
        if mask is not None and not isinstance(mask, str):
            raise InputError(f"{path}:{n}: 'mask' must be a path")
        image = posixpath.normpath(rec["image"])
        mask = posixpath.normpath(mask) if mask is not None else None
        key = manifest_key(image, text, mask, label)
        if key in seen:
            duplicates.append(n)
            continue
        seen.add(key)
        missing = next((f"{what} file not found: {root / rel}" if not (root / rel).exists()
                        else f"{what} is not a file: {root / rel}"
                        for what, rel in (("image", image), ("mask", mask))
                        if rel is not None and not (root / rel).is_file()), None)
        if missing:
            bad.append(BadItem(image, missing, n))
            continue
        extra = {k: v for k, v in rec.items() if k not in ("image", "text", "mask", "label")}
        items.append(DataItem(key, image, root / image, label, text, mask,
                              root / mask if mask else None, n, extra))
    labels = sorted({it.label for it in items if it.label is not None})
    return Dataset(root, "manifest", items, bad, labels, duplicates)


def manifest_key(image: str, text: str | None, mask: str | None, label: str | None) -> str:
    """The key of a manifest line: its image, text, mask and label (paths normalised)."""
    norm = [posixpath.normpath(image), text, posixpath.normpath(mask) if mask else None, label]
    return json.dumps(norm, ensure_ascii=False)


def _read_imagefolder(root: Path) -> Dataset:
    # As torchvision's ImageFolder: classes are the sorted subfolders (hidden ones skipped
    # here: a .cache folder is not a class), images found recursively in each, by extension.
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise InputError(f"no manifest.jsonl and no class subfolders in {root}; give a folder "
                         "with manifest.jsonl (see `mmattr dataset shapes`) or one subfolder of "
                         "images per class")
    items: list[DataItem] = []
    for cls in classes:
        for dirpath, dirnames, filenames in os.walk(root / cls, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                full = Path(dirpath) / name
                rel = full.relative_to(root).as_posix()
                items.append(DataItem(rel, rel, full, cls, cls))
    return Dataset(root, "imagefolder", items, [], classes)


def load_item_image(item: DataItem) -> np.ndarray:
    """The item's image as a writable RGB uint8 array; `ItemError` when it cannot be read."""
    from .image import load_image

    try:
        return np.array(load_image(item.path))  # a copy: torch warns on read-only arrays
    except InputError as exc:
        raise ItemError(str(exc)) from None
    except Exception as exc:  # e.g. PIL's decompression-bomb error: skip the item, go on
        raise ItemError(f"cannot read image {item.path}: {type(exc).__name__}: {exc}") from None


# -- the output folder and its records ------------------------------------------------------

_TEMP = re.compile(r"^\.(?P<stem>.+)\.[A-Za-z0-9_]{8}(\.tmp|\.png|\.npy|\.json|\.csv|\.html)$")


class RecordLog:
    """Append-only JSONL records, one file per process (``NAME.jsonl``, ``NAME.rankR.jsonl``).

    Each record carries ``item`` (the item key) and ``task``; (item, task) is its key. A record
    is appended and fsynced in one write, so a kill leaves at most a partial last line, which
    `repair` cuts and readers ignore.
    """

    def __init__(self, out: str | os.PathLike, name: str = "records",
                 key: Callable[[dict], tuple] | None = None,
                 before_append: Callable[[], None] | None = None) -> None:
        self.out = Path(out)
        self.name = name
        self._key = key or (lambda r: (r.get("item"), r.get("task")))
        self._before_append = before_append

    def key(self, record: dict) -> tuple:
        return self._key(record)

    @property
    def path(self) -> Path:
        rank = distributed.rank()
        return self.out / (f"{self.name}.jsonl" if rank == 0
                                  else f"{self.name}.rank{rank}.jsonl")

    def files(self) -> list[Path]:
        out = self.out
        if not out.is_dir():
            return []
        main = out / f"{self.name}.jsonl"
        ranks = sorted(out.glob(f"{self.name}.rank*.jsonl"),
                       key=lambda p: int(re.sub(r"\D", "", p.name.rsplit(".rank", 1)[1]) or 0))
        return ([main] if main.is_file() else []) + ranks

    def repair(self) -> None:
        """Cut a partial last line of this process's file (left by a kill mid-write)."""
        path = self.path
        if not path.is_file():
            return
        size = path.stat().st_size
        if size == 0:
            return
        with open(path, "rb") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            # find the last newline, reading backwards in blocks (files can be large)
            pos, cut = size, 0
            while pos > 0:
                start = max(0, pos - 65536)
                f.seek(start)
                block = f.read(pos - start)
                i = block.rfind(b"\n")
                if i >= 0:
                    cut = start + i + 1
                    break
                pos = start
        with open(path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())

    def iter_records(self) -> Iterator[dict]:
        """Every complete record of every process, streamed; the first of equal keys wins."""
        seen: set[tuple] = set()
        for path in self.files():
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.endswith("\n"):
                        continue  # partial last line of a killed writer
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if not isinstance(rec, dict):
                        continue
                    k = self._key(rec)
                    if k in seen:
                        continue
                    seen.add(k)
                    yield rec

    def read(self) -> list[dict]:
        return list(self.iter_records())

    def done_keys(self) -> set[tuple]:
        return {self._key(r) for r in self.iter_records()}

    def append(self, record: dict) -> None:
        """Append one JSON line and fsync it before returning, so it survives a crash."""
        if self._before_append is not None:
            self._before_append()
        append_line(self.path, record)


def append_line(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line in one write and fsync it before returning (survives a crash)."""
    line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


class RunFolder:
    """An output folder of a dataset command: checked now, written from the first record on.

    mmattr writes only into a folder that is new, empty, or holds an earlier result of the same
    command (recognised by its ``run.json`` marker). Earlier results made with other settings
    are refused unless `overwrite`, which removes only the files this command writes (the
    marker, the record files, `outputs`), never anything else.
    """

    def __init__(self, out: str | os.PathLike, command: str, settings: Mapping[str, Any], *,
                 records: str = "records", outputs: Sequence[str] = (),
                 overwrite: bool = False,
                 record_key: Callable[[dict], tuple] | None = None) -> None:
        self.out = Path(out)
        self.command = command
        self.settings = json.loads(json.dumps(settings))  # as it will read back from disk
        self.outputs = tuple(outputs)
        self.overwrite = overwrite
        self.log = RecordLog(self.out, records, record_key, before_append=self.mark)
        self._marked = False
        self._reset = False
        self._check()

    # which files are ours
    def _ours(self, name: str) -> bool:
        stem = self.log.name
        if name in (MARKER, f"{stem}.jsonl", *self.outputs):
            return True
        if re.fullmatch(rf"{re.escape(stem)}\.rank\d+\.jsonl", name):
            return True
        m = _TEMP.match(name)
        if m:
            stems = {Path(n).stem for n in (MARKER, f"{stem}.jsonl", *self.outputs)}
            return m.group("stem") in stems
        return False

    def _check(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise InputError(f"--out {out} is a file, not a folder; give a folder")
        if not out.exists():
            parent = next((p for p in out.absolute().parents if p.exists()), None)
            if parent is None or not parent.is_dir():
                raise InputError(f"cannot create --out {out}: {parent} is not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(f"cannot create --out {out}: {parent} is not writable")
            return
        if not os.access(out, os.W_OK | os.X_OK):
            raise InputError(f"cannot write into --out {out}: permission denied")
        marker = out / MARKER
        names = [e.name for e in os.scandir(out)]
        if not marker.is_file():
            foreign = sorted(n for n in names if not self._ours(n))
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise InputError(f"--out {out} holds other files ({shown}); mmattr writes only "
                                 "into a new or empty folder or an earlier result of "
                                 f"`mmattr {self.command}`: give another --out")
            return
        try:
            old = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict) or old.get("command") != self.command:
            what = (f"a result of `mmattr {old['command']}`"
                    if isinstance(old, dict) and isinstance(old.get("command"), str)
                    else f"a {MARKER} mmattr did not write")
            raise InputError(f"--out {out} holds {what}; give another --out")
        if self.overwrite:
            self._reset = True
            return
        settings = old.get("settings")
        if settings != self.settings and self.has_records():
            old_s = settings if isinstance(settings, dict) else {}
            diff = sorted(k for k in set(old_s) | set(self.settings)
                          if old_s.get(k) != self.settings.get(k))
            raise InputError(f"{out} holds results made with other settings ({', '.join(diff)}); "
                             "use the same settings to resume, --overwrite to start again, "
                             "or another --out")
        if settings != self.settings:
            self._reset = True  # a marker without records: nothing to keep

    def has_records(self) -> bool:
        return any(True for _ in self.log.iter_records())

    def prepare(self) -> None:
        """Before the work: --overwrite removes our earlier files, stray temporary files of a
        killed run go. Main process only; every process waits for it."""
        if distributed.is_main_process() and self.out.is_dir():
            for e in list(os.scandir(self.out)):
                if not e.is_file() or not self._ours(e.name):
                    continue
                if self._reset or _TEMP.match(e.name):
                    os.unlink(e.path)
        distributed.wait_for_everyone()

    def mark(self) -> None:
        """Create the folder and its marker (once; before the first record or output)."""
        if self._marked:
            return
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create --out {self.out}: {exc.strerror or exc}") from None
        marker = self.out / MARKER
        want = {"command": self.command, "settings": self.settings}
        try:
            old = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None
        except (OSError, ValueError):
            old = None
        if not (isinstance(old, dict) and old.get("command") == self.command
                and old.get("settings") == self.settings):
            from ._version import __version__

            atomic_write(marker, json.dumps({**want, "mmattr": __version__}, indent=2) + "\n")
        self._marked = True

    def path(self, name: str) -> Path:
        return self.out / name

    def write_text(self, name: str, data: str | bytes) -> Path:
        """Write one output file atomically (marking the folder first)."""
        self.mark()
        path = self.out / name
        atomic_write(path, data)
        return path


@dataclass
class RunResult:
    """What `run_items` did, summed over every process."""

    new: int                  # records written by this run
    done_before: int          # (item, task) pairs already on disk
    bad: list[BadItem]        # items skipped by this run
    seconds: float = 0.0


Work = Callable[[DataItem, list[str]], Iterable[tuple[str, dict]]]


def run_items(folder: RunFolder, items: Sequence[DataItem], tasks: Sequence[str], work: Work, *,
              progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Run `work` for every item with tasks not yet on disk; append each record it yields.

    ``work(item, pending)`` yields ``(task, record)`` for the tasks in `pending`, in any order;
    the runner adds ``item`` (the item key) and ``task`` to the record, appends it and fsyncs
    it before asking for the next. An `ItemError` skips the item (records already yielded for
    it are kept). Under ``accelerate launch`` the items with work left are split across the
    processes (so a resumed run keeps every process busy), each appending to its own file.
    `progress(done, total)` counts this process's tasks.
    """
    t0 = time.perf_counter()
    log = folder.log
    folder.prepare()
    log.repair()
    distributed.wait_for_everyone()  # every file repaired before anyone reads them
    done = log.done_keys()
    todo: list[tuple[DataItem, list[str]]] = []
    for it in items:
        pending = [t for t in tasks if (it.key, t) not in done]
        if pending:
            todo.append((it, pending))
    done_before = len(items) * len(tasks) - sum(len(p) for _, p in todo)
    distributed.wait_for_everyone()  # the same `done` everywhere before anyone appends
    mine = distributed.shard_items(todo)
    total = sum(len(p) for _, p in mine)
    new = 0
    bad: list[BadItem] = []
    if progress is not None:
        progress(0, total)
    # Items are sharded: each process works alone on its own, so a search step is not split.
    with distributed.items_sharded():
        for it, pending in mine:
            left = set(pending)
            try:
                for task, record in work(it, pending):
                    if task not in left:
                        raise ValueError(f"work yielded task {task!r} for {it.key}, "
                                         f"not one of {pending}")
                    left.discard(task)
                    log.append({"item": it.key, "task": task, **record})
                    new += 1
                    if progress is not None:
                        progress(new, total)
            except ItemError as exc:
                bad.append(BadItem(it.image, str(exc), it.line))
                new_total = total - len(left)
                total = new_total
                if progress is not None:
                    progress(new, total)
    distributed.wait_for_everyone()  # every record on disk before anyone reads them all
    new = sum(distributed.gather_items([new]))
    bad = distributed.gather_items(bad)
    return RunResult(new, done_before, bad, time.perf_counter() - t0)


# -- progress -------------------------------------------------------------------------------

class ProgressLines:
    """A ``progress(done, total)`` callback printing one line to stderr at most every
    `interval` seconds, and at the end: progress where no terminal draws a bar."""

    def __init__(self, description: str, interval: float = 5.0, stream: Any = None,
                 unit: str = "items") -> None:
        self.description = description
        self.interval = interval
        self.stream = stream
        self.unit = unit
        self._t0: float | None = None
        self._last = -1e9
        self._ended = False

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
            self._last = now  # no line for 0 done; the first after `interval`
            return
        end = total > 0 and done >= total
        if (end and self._ended) or (not end and now - self._last < self.interval):
            return
        self._last = now
        self._ended = end
        elapsed = now - self._t0
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.description}: {done}/{total} {self.unit}"
        if total:
            text += f" ({100 * done / total:.0f}%)"
        text += f", {elapsed:.0f} s"
        if not end and rate > 0 and total > done:
            text += f", about {(total - done) / rate:.0f} s left"
        print(text, file=self.stream or sys.stderr, flush=True)


# -- the embedding cache --------------------------------------------------------------------

def default_cache_dir() -> Path:
    """``$MMATTR_CACHE``, else ``$XDG_CACHE_HOME/mmattr/embeddings``, else
    ``~/.cache/mmattr/embeddings``."""
    if os.environ.get("MMATTR_CACHE"):
        return Path(os.environ["MMATTR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmattr" / "embeddings"


def file_digest(path: str | os.PathLike) -> str:
    """Content hash of a file (BLAKE2b, 160 bits, hex): the cache key of an image."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=20)).hexdigest()


def model_key(adapter: Any) -> str:
    """A hex key for "the same model": its class, spec, preprocessing, dtype, mmattr's version
    and a fingerprint of its weights (shapes and a strided sample of every tensor's values,
    so a fine-tuned copy at the same path gets a new key without hashing gigabytes)."""
    import torch

    from ._version import __version__

    h = hashlib.blake2b(digest_size=16)
    ident = {"class": f"{type(adapter).__module__}.{type(adapter).__qualname__}",
             "spec": str(getattr(adapter, "spec", "")),
             "preprocess": repr(getattr(adapter, "preprocess", None)),
             "dtype": str(getattr(adapter, "autocast_dtype", None)),
             "mmattr": __version__}
    h.update(json.dumps(ident, sort_keys=True).encode())
    modules = [v for v in vars(adapter).values() if isinstance(v, torch.nn.Module)]
    vm = adapter.vision_module() if hasattr(adapter, "vision_module") else None
    if isinstance(vm, torch.nn.Module) and all(vm is not m for m in modules):
        modules.append(vm)
    with torch.inference_mode():
        for module in modules:
            for name, t in module.state_dict().items():
                h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
                flat = t.detach().reshape(-1)
                if flat.numel():
                    step = max(1, flat.numel() // 257)
                    h.update(flat[::step].float().cpu().numpy().tobytes())
    return h.hexdigest()


class EmbeddingCache:
    """Image embeddings on disk: ``ROOT/MODEL_KEY/ab/abcdef....npy``, one float32 vector each.

    Explicit and bounded: the caller owns it; `prune` (run by `encode_items` at the end) deletes
    the least recently used vectors until the cache holds at most `max_bytes`. Files are written
    atomically (a temporary file renamed into place), so concurrent processes and a SIGKILL
    leave either the whole vector or none; an unreadable file is a miss and is rewritten.
    """

    def __init__(self, root: str | os.PathLike | None = None,
                 max_bytes: int = 4 * 1024 ** 3) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0

    def path(self, model: str, digest: str) -> Path:
        return self.root / model / digest[:2] / f"{digest}.npy"

    def has(self, model: str, digest: str) -> bool:
        return self.path(model, digest).is_file()

    def get(self, model: str, digest: str) -> np.ndarray | None:
        path = self.path(model, digest)
        try:
            vec = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            self.misses += 1
            return None
        try:
            os.utime(path)  # recently used: pruned last
        except OSError:
            pass
        self.hits += 1
        return vec

    def put(self, model: str, digest: str, vector: np.ndarray) -> None:
        path = self.path(model, digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            import io

            buf = io.BytesIO()
            np.save(buf, np.asarray(vector, dtype=np.float32), allow_pickle=False)
            atomic_write(path, buf.getvalue())
        except OSError as exc:
            raise InputError(f"cannot write the embedding cache {self.root}: "
                             f"{exc.strerror or exc}; set MMATTR_CACHE to a writable folder")

    def describe_model(self, model: str, info: Mapping[str, Any]) -> None:
        """A human-readable note of which model a key folder belongs to (written once)."""
        path = self.root / model / "model.json"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(dict(info), indent=2, default=str) + "\n")

    def _entries(self) -> list[tuple[float, int, str]]:
        rows = []
        if not self.root.is_dir():
            return rows
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                if name.endswith(".npy") and not name.startswith("."):
                    rows.append((st.st_mtime, st.st_size, full))
                elif name.startswith(".") and _TEMP.match(name) and time.time() - st.st_mtime > 600:
                    os.unlink(full)  # a killed writer's temporary file, surely abandoned
        return rows

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def prune(self) -> int:
        """Delete least recently used vectors until at most `max_bytes` remain; bytes freed."""
        rows = sorted(self._entries())
        total = sum(size for _, size, _ in rows)
        freed = 0
        for _, size, full in rows:
            if total - freed <= self.max_bytes:
                break
            try:
                os.unlink(full)
                freed += size
            except OSError:
                pass
        return freed


@dataclass
class Encoded:
    """`encode_items`'s result: one row of `vectors` per usable item, in input order."""

    items: list[DataItem]
    vectors: np.ndarray              # (N, D) float32, the adapter's raw `encode_images` output
    bad: list[BadItem]
    digests: list[str]
    encoded: int = 0                 # images run through the model (cache misses)
    cached: int = 0                  # images read back from the cache
    seconds: float = 0.0


def encode_items(adapter: Any, items: Sequence[DataItem], *, cache: EmbeddingCache | None = None,
                 batch_size: int = 32, progress: Callable[[int, int], None] | None = None,
                 workers: int = 2) -> Encoded:
    """Embed every item's image once: from `cache` when there, else in batches on the device.

    Images are read (and hashed) by `workers` threads a few at a time ahead of the model, so
    memory holds at most a handful of decoded images plus one batch of model input; each is
    preprocessed on the device as it arrives. Under ``accelerate launch`` each process encodes
    its share and all of them return the whole set (through the cache, or gathered when there
    is none). Unreadable images are skipped and listed in ``Encoded.bad``.
    """
    import torch

    t0 = time.perf_counter()
    batch_size = max(1, int(batch_size))
    key = model_key(adapter) if cache is not None else ""
    if cache is not None and distributed.is_main_process():
        cache.describe_model(key, adapter.describe() if hasattr(adapter, "describe") else {})
    indexed = list(enumerate(items))
    mine = distributed.shard_items(indexed)
    local: list[tuple[int, str | None, str]] = []    # (index, digest or None, bad reason)
    vectors: dict[str, np.ndarray] = {}               # no cache: digest -> vector
    fresh: set[str] = set()                           # digests encoded by this process
    encoded = 0
    device = adapter.device

    def prepare(pair: tuple[int, DataItem]) -> tuple[int, str | None, Any]:
        i, it = pair
        try:
            digest = file_digest(it.path)
        except OSError as exc:
            return i, None, f"cannot read image {it.path}: {exc.strerror or exc}"
        if cache is not None and cache.has(key, digest):
            return i, digest, None
        try:
            return i, digest, load_item_image(it)
        except ItemError as exc:
            return i, None, str(exc)

    batch: list[tuple[str, Any]] = []

    def flush() -> None:
        nonlocal encoded
        if not batch:
            return
        # NaFlex models give different input sizes per aspect ratio: one forward per size.
        groups: dict[tuple, list[int]] = {}
        for j, (_, x) in enumerate(batch):
            groups.setdefault(tuple(x.shape), []).append(j)
        out: list[np.ndarray | None] = [None] * len(batch)
        with torch.inference_mode(), adapter.autocast():
            for idx in groups.values():
                emb = adapter.encode_images(torch.cat([batch[j][1] for j in idx]))
                rows = emb.float().cpu().numpy()  # one device-to-host copy per batch
                for j, row in zip(idx, rows):
                    out[j] = row
        for (digest, _), row in zip(batch, out):
            assert row is not None
            if cache is not None:
                cache.put(key, digest, row)
            else:
                vectors[digest] = row
            fresh.add(digest)
        encoded += len(batch)
        batch.clear()

    done = 0
    if progress is not None:
        progress(0, len(mine))
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for i, digest, got in _prefetch(pool, prepare, mine, ahead=2 * max(1, workers)):
            if digest is None:
                local.append((i, None, got))
            else:
                local.append((i, digest, ""))
                have = (digest in fresh or any(d == digest for d, _ in batch)
                        or (cache is not None and got is None))
                if not have and got is not None:
                    with torch.inference_mode():
                        pixels = torch.from_numpy(got)[None].to(device)
                        batch.append((digest, adapter.preprocess(pixels)))
                    if len(batch) >= batch_size:
                        flush()
            done += 1
            if progress is not None and (done % batch_size == 0 or done == len(mine)):
                progress(done, len(mine))
        flush()
    # Every process's vectors are in the cache (or gathered) before anyone reads them all.
    distributed.wait_for_everyone()
    everything = distributed.gather_items(local)
    if cache is None and distributed.world_size() > 1:
        merged: dict[str, np.ndarray] = {}
        for part in distributed.gather_items([vectors]):
            merged.update(part)
        vectors = merged
    everything.sort(key=lambda row: row[0])
    ok_items: list[DataItem] = []
    digests: list[str] = []
    bad: list[BadItem] = []
    rows: list[np.ndarray] = []
    for i, digest, reason in everything:
        it = items[i]
        if digest is None:
            bad.append(BadItem(it.image, reason, it.line))
            continue
        if cache is not None:
            vec = cache.get(key, digest)
            if vec is None:  # evicted or damaged since: encode it again, here
                vec = _encode_one(adapter, it)
                cache.put(key, digest, vec)
        else:
            vec = vectors[digest]
        ok_items.append(it)
        digests.append(digest)
        rows.append(vec)
    encoded = sum(distributed.gather_items([encoded]))
    cached = max(0, len(ok_items) - encoded)  # read back (or a duplicate of one encoded)
    if cache is not None:
        distributed.wait_for_everyone()  # everyone has read the cache before it is pruned
        if distributed.is_main_process():
            cache.prune()
    dim = rows[0].shape[-1] if rows else 0
    matrix = np.stack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, dim),
                                                                                 np.float32)
    return Encoded(ok_items, matrix, bad, digests, encoded, cached,
                   time.perf_counter() - t0)


def _encode_one(adapter: Any, item: DataItem) -> np.ndarray:
    import torch

    image = load_item_image(item)
    with torch.inference_mode(), adapter.autocast():
        x = adapter.preprocess(torch.from_numpy(image)[None].to(adapter.device))
        return adapter.encode_images(x).float().cpu().numpy()[0]


def _prefetch(pool: ThreadPoolExecutor, fn: Callable, seq: Sequence, ahead: int) -> Iterator:
    """fn over seq in the pool, results in order, at most `ahead` in flight (bounded memory)."""
    from collections import deque

    pending: deque = deque()
    it = iter(seq)
    for x in it:
        pending.append(pool.submit(fn, x))
        if len(pending) >= ahead:
            break
    while pending:
        result = pending.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.submit(fn, nxt))
        yield result
