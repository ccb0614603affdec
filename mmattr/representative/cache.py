"""The fit cache: one folder per fit, keyed by model, layer, settings and the data's content.

An explicit object with a bound on the number of fits kept. Each fit is written into a temporary
folder beside its final place and renamed into place (atomic: a reader sees a whole fit or
none). Only folders this cache wrote (they hold its marker file) are ever removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .explainer import RIFit

MARKER = "mmattr-ri-fit.json"
TENSORS = "fit.safetensors"


def default_cache_dir() -> Path:
    """``$MMATTR_CACHE/represent``, else ``$XDG_CACHE_HOME/mmattr/represent`` (~/.cache)."""
    root = os.environ.get("MMATTR_CACHE")
    if root:
        return Path(root) / "represent"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mmattr" / "represent"


class FitCache:
    """Fits of Representative Interpretations on disk, at most `max_entries` of them."""

    def __init__(self, root: str | os.PathLike | None = None, max_entries: int = 8) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.max_entries = max(1, int(max_entries))
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key_hash(key: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def _folder(self, key: dict[str, Any]) -> Path:
        return self.root / self.key_hash(key)

    def get(self, key: dict[str, Any]) -> RIFit | None:
        folder = self._folder(key)
        try:
            meta = json.loads((folder / MARKER).read_text(encoding="utf-8"))
            from safetensors.torch import load_file

            t = load_file(str(folder / TENSORS))
        except (OSError, ValueError, KeyError):
            self.misses += 1
            return None
        if meta.get("key") != json.loads(json.dumps(key, sort_keys=True, default=str)):
            self.misses += 1
            return None
        self.hits += 1
        os.utime(folder)  # most recently used: pruned last
        return RIFit(meta["fit"], t["W"], t["b"], t["pairs"], t["sources"].numpy(), t["proj"],
                     t["preds"].numpy(), t["probs"].numpy(), t["sketch"], meta["labels"],
                     meta["ids"])

    def put(self, key: dict[str, Any], fit: RIFit) -> Path:
        from safetensors.torch import save_file

        self.root.mkdir(parents=True, exist_ok=True)
        final = self._folder(key)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
        try:
            tensors = {"W": fit.W, "b": fit.b, "pairs": fit.pairs,
                       "sources": torch.from_numpy(np.asarray(fit.sources, np.int64)),
                       "proj": fit.proj, "preds": torch.from_numpy(np.asarray(fit.preds, np.int64)),
                       "probs": torch.from_numpy(np.asarray(fit.probs, np.float32)),
                       "sketch": fit.sketch}
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                      str(tmp / TENSORS))
            (tmp / MARKER).write_text(json.dumps(
                {"key": key, "fit": fit.meta, "labels": fit.labels, "ids": fit.ids},
                sort_keys=True, default=str), encoding="utf-8")
            if final.exists() and (final / MARKER).is_file():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune(keep=final)
        return final

    def entries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir()
                if p.is_dir() and not p.name.startswith(".") and (p / MARKER).is_file()]

    def _prune(self, keep: Path) -> None:
        entries = sorted(self.entries(), key=lambda p: p.stat().st_mtime)
        for old in entries[:max(0, len(entries) - self.max_entries)]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)
