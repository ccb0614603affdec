"""The earlier name of `mmattr.runs` (reading, record logs, the work loop, progress, the
embedding store); kept so that existing imports keep working. New code imports from
`mmattr.runs` (see its modules)."""

from __future__ import annotations

from .runs.dataset import (IMAGE_EXTENSIONS, MANIFEST, BadItem, DataItem, Dataset, ItemError,
                           file_digest, load_item, load_item_image, load_mask, manifest_key,
                           read_dataset)
from .runs.encode import Encoded, encode_items
from .runs.progress import ProgressLines
from .runs.records import RecordLog, append_line
from .runs.store import EmbeddingCache, EmbeddingStore, default_cache_dir, model_key
from .runs.work import RunResult, run_items

__all__ = ["IMAGE_EXTENSIONS", "MANIFEST", "BadItem", "DataItem", "Dataset", "ItemError",
           "file_digest", "load_item", "load_item_image", "load_mask", "manifest_key",
           "read_dataset", "Encoded", "encode_items", "ProgressLines", "RecordLog",
           "append_line", "EmbeddingCache", "EmbeddingStore", "default_cache_dir", "model_key",
           "RunResult", "run_items"]
