"""The runs package: what every command that writes results shares, one copy each.

| module | the one implementation of |
|---|---|
| `folder` | the output folder: one marker, one overwrite rule, the lock, atomic writes |
| `dataset` | reading a dataset (manifest or ImageFolder) and decoding items: the mask rule |
| `records` | append-only record logs, read deduplicated |
| `work` | the resumable, sharded per-item work loop, records keyed by content |
| `progress` | progress lines where no terminal draws a bar |
| `store` | the embedding store (the cache folder shared by every dataset command) |
| `encode` | embeddings of every item's image, once, decoding overlapped with the model |
| `context` | the run context: explicit state a run hands its explainers |

Names resolve on first use (PEP 562): checking an output folder imports no torch.
"""

_LAZY: dict[str, str] = {
    **dict.fromkeys(["MARKER", "OutputFolder", "read_marker", "is_complete",
                     "check_dataset_out", "launch_rank"], "folder"),
    **dict.fromkeys(["ItemError", "DataItem", "BadItem", "Dataset", "Loaded", "read_dataset",
                     "manifest_key", "load_item", "load_item_image", "load_mask",
                     "mask_from_array", "file_digest", "item_digest", "dataset_identity",
                     "MANIFEST", "IMAGE_EXTENSIONS"], "dataset"),
    **dict.fromkeys(["RecordLog", "append_line", "record_key"], "records"),
    **dict.fromkeys(["RunResult", "run_items", "item_digests"], "work"),
    **dict.fromkeys(["ProgressLines", "PROGRESS_LINE_SECONDS"], "progress"),
    **dict.fromkeys(["EmbeddingStore", "EmbeddingCache", "default_cache_dir", "model_key",
                     "check_cache_dir"], "store"),
    **dict.fromkeys(["Encoded", "encode_items", "default_workers"], "encode"),
    **dict.fromkeys(["RunContext", "MapCache"], "context"),
}


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
