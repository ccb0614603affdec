"""The embedding store: one cache folder shared by every dataset command.

``ROOT/NAMESPACE/ab/abcdef....EXT``: one file per entry, keyed by a namespace (a model's
`model_key` for its image embeddings, ``image-properties-v1`` for the audit's image
properties, ``represent-fit-v1`` for Representative Interpretations' fits) and a content
digest. Explicit and bounded: the caller owns it; `prune` deletes the least recently used
entries until the store holds at most `max_bytes`. Files are written atomically (the one
temporary-file convention, `_io`), so concurrent processes and a SIGKILL leave either the
whole entry or none; an unreadable entry is a miss and is written again.

The folder is ``$MMATTR_CACHE``, else ``$XDG_CACHE_HOME/mmattr/embeddings``, else
``~/.cache/mmattr/embeddings``; ``--cache-dir`` / ``cache_dir=`` name another.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._io import atomic_write, is_temp, umask
from ..errors import InputError

__all__ = ["default_cache_dir", "EmbeddingStore", "EmbeddingCache", "model_key",
           "check_cache_dir"]

#: extensions of the entries a store holds (only these are ever pruned)
ENTRY_SUFFIXES = (".npy", ".safetensors")
#: a temporary entry older than this was left by a killed writer
STALE_TEMP_SECONDS = 600


def default_cache_dir() -> Path:
    """``$MMATTR_CACHE``, else ``$XDG_CACHE_HOME/mmattr/embeddings``, else
    ``~/.cache/mmattr/embeddings``."""
    if os.environ.get("MMATTR_CACHE"):
        return Path(os.environ["MMATTR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmattr" / "embeddings"


def check_cache_dir(root: str | os.PathLike, what: str = "the cache folder") -> Path:
    """`InputError` (before any work) when `root` cannot hold the store: a file, a path under
    a file, a place that cannot be written."""
    root = Path(root)
    if root.exists():
        if not root.is_dir():
            raise InputError(f"{what} {root} is a file, not a folder; give a folder "
                             "(or set MMATTR_CACHE)")
        if not os.access(root, os.W_OK | os.X_OK):
            raise InputError(f"cannot write into {what} {root}: permission denied")
        return root
    parent = root.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot create {what} {root}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot create {what} {root}: {parent} is not writable")
    return root


def model_key(adapter: Any) -> str:
    """A hex key for "the same model": its class, spec, preprocessing, dtype, mmattr's version
    and a fingerprint of its weights (shapes and a strided sample of every tensor's values,
    so a fine-tuned copy at the same path gets a new key without hashing gigabytes)."""
    import torch

    from .._version import __version__

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


class EmbeddingStore:
    """Entries on disk under `root`, at most `max_bytes` of them after `prune`."""

    def __init__(self, root: str | os.PathLike | None = None,
                 max_bytes: int = 4 * 1024 ** 3) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        self._headers: dict[tuple, bytes] = {}
        self._folders: set[Path] = set()
        self._mode: int | None = None

    def check(self) -> "EmbeddingStore":
        """One line now, before any work, when the folder cannot be used."""
        check_cache_dir(self.root)
        return self

    # -- entries -----------------------------------------------------------------------------
    def path(self, namespace: str, digest: str, suffix: str = ".npy") -> Path:
        return self.root / namespace / digest[:2] / f"{digest}{suffix}"

    def has(self, namespace: str, digest: str, suffix: str = ".npy") -> bool:
        return self.path(namespace, digest, suffix).is_file()

    def get_bytes(self, namespace: str, digest: str, suffix: str) -> bytes | None:
        path = self.path(namespace, digest, suffix)
        try:
            data = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        self._touch(path)
        self.hits += 1
        return data

    def put_bytes(self, namespace: str, digest: str, suffix: str, data: bytes) -> Path:
        path = self.path(namespace, digest, suffix)
        try:
            if path.parent not in self._folders:  # one mkdir per folder, not per entry
                path.parent.mkdir(parents=True, exist_ok=True)
                self._folders.add(path.parent)
            if self._mode is None:
                self._mode = 0o666 & ~umask()  # read once: entries are written by the thousand
            atomic_write(path, data, self._mode)
        except OSError as exc:
            raise InputError(f"cannot write the cache folder {self.root}: "
                             f"{exc.strerror or exc}; set MMATTR_CACHE (or --cache-dir) to a "
                             "writable folder") from None
        return path

    def get(self, namespace: str, digest: str) -> np.ndarray | None:
        """A vector, or None (a miss: absent, or unreadable and to be written again)."""
        path = self.path(namespace, digest)
        try:
            vec = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            self.misses += 1
            return None
        self._touch(path)
        self.hits += 1
        return vec

    def put(self, namespace: str, digest: str, vector: np.ndarray) -> None:
        self.put_bytes(namespace, digest, ".npy", self._npy(vector))

    def put_many(self, namespace: str, rows: list[tuple[str, np.ndarray]]) -> None:
        """`put` for a batch of (digest, vector) rows (one task for a writer thread)."""
        for digest, vector in rows:
            self.put(namespace, digest, vector)

    def _npy(self, vector: np.ndarray) -> bytes:
        """The .npy bytes of a float32 vector; the header is made once per shape (numpy's
        writer costs more than the write itself for a vector of a few hundred floats)."""
        v = np.ascontiguousarray(vector, dtype=np.float32)
        header = self._headers.get(v.shape)
        if header is None:
            buf = io.BytesIO()
            np.save(buf, v, allow_pickle=False)
            header = self._headers[v.shape] = buf.getvalue()[: -v.nbytes or None]
        return header + v.tobytes()

    @staticmethod
    def _touch(path: Path) -> None:
        try:
            os.utime(path)  # recently used: pruned last
        except OSError:
            pass

    def describe_model(self, namespace: str, info: Mapping[str, Any]) -> None:
        """A human-readable note of which model a namespace belongs to (written once)."""
        path = self.root / namespace / "model.json"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(dict(info), indent=2, default=str) + "\n")

    # -- the bound ---------------------------------------------------------------------------
    def _entries(self) -> list[tuple[float, int, str]]:
        rows: list[tuple[float, int, str]] = []
        if not self.root.is_dir():
            return rows
        now = time.time()
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                if is_temp(name):
                    if now - st.st_mtime > STALE_TEMP_SECONDS:
                        try:
                            os.unlink(full)  # a killed writer's temporary file, surely abandoned
                        except OSError:
                            pass
                elif name.endswith(ENTRY_SUFFIXES) and not name.startswith("."):
                    rows.append((st.st_mtime, st.st_size, full))
        return rows

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def prune(self) -> int:
        """Delete least recently used entries until at most `max_bytes` remain; bytes freed."""
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


#: the name the audit and its tests use
EmbeddingCache = EmbeddingStore
