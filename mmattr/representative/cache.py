"""The fit cache: Representative Interpretations' fits in the shared embedding store.

One entry per fit, keyed by model, layer, settings and the data's content, in the namespace
`NAMESPACE` of the store every dataset command shares (`mmattr.runs.store`: the same cache
folder as the audit's embeddings, the same atomic writes and byte bound). Each fit is one
safetensors file (tensors, with the key and the fit's metadata as JSON in its header), written
atomically: a reader sees a whole fit or none. At most `max_entries` fits are kept (least
recently used dropped); only the store's own entries are ever removed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..runs.store import EmbeddingStore
from .explainer import RIFit

#: the store namespace of the fits (bump when their format changes)
NAMESPACE = "represent-fit-v1"
SUFFIX = ".safetensors"


class FitCache:
    """Fits of Representative Interpretations in the store at `root` (default: the shared
    cache folder), at most `max_entries` of them."""

    def __init__(self, root: str | os.PathLike | None = None, max_entries: int = 8,
                 store: EmbeddingStore | None = None) -> None:
        self.store = store if store is not None else EmbeddingStore(root)
        self.root = self.store.root
        self.max_entries = max(1, int(max_entries))
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key_hash(key: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def get(self, key: dict[str, Any]) -> RIFit | None:
        from safetensors.torch import load

        data = self.store.get_bytes(NAMESPACE, self.key_hash(key), SUFFIX)
        try:
            if data is None:
                raise ValueError("absent")
            t = load(data)
            meta = json.loads(_header_metadata(data)["mmattr"])
        except (ValueError, KeyError, OSError, RuntimeError):
            self.misses += 1
            return None
        if meta.get("key") != json.loads(json.dumps(key, sort_keys=True, default=str)):
            self.misses += 1
            return None
        self.hits += 1
        return RIFit(meta["fit"], t["W"], t["b"], t["pairs"], t["sources"].numpy(), t["proj"],
                     t["preds"].numpy(), t["probs"].numpy(), t["sketch"], meta["labels"],
                     meta["ids"])

    def put(self, key: dict[str, Any], fit: RIFit) -> Path:
        from safetensors.torch import save

        tensors = {"W": fit.W, "b": fit.b, "pairs": fit.pairs,
                   "sources": torch.from_numpy(np.asarray(fit.sources, np.int64)),
                   "proj": fit.proj, "preds": torch.from_numpy(np.asarray(fit.preds, np.int64)),
                   "probs": torch.from_numpy(np.asarray(fit.probs, np.float32)),
                   "sketch": fit.sketch}
        meta = json.dumps({"key": key, "fit": fit.meta, "labels": fit.labels, "ids": fit.ids},
                          sort_keys=True, default=str)
        data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                    metadata={"mmattr": meta})
        path = self.store.put_bytes(NAMESPACE, self.key_hash(key), SUFFIX, data)
        self._prune(keep=path)
        return path

    def entries(self) -> list[Path]:
        folder = self.root / NAMESPACE
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob(f"*/*{SUFFIX}") if not p.name.startswith("."))

    def _prune(self, keep: Path) -> None:
        entries = sorted(self.entries(), key=lambda p: p.stat().st_mtime)
        for old in entries[:max(0, len(entries) - self.max_entries)]:
            if old != keep:
                try:
                    old.unlink()
                except OSError:
                    pass
        self.store.prune()


def _header_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's JSON header."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n].decode("utf-8"))["__metadata__"]
