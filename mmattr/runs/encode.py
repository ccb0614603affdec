"""Embeddings of every item's image, once: read, hash, decode and resize overlapped with the
model.

A pool of reader threads (`default_workers`: one per core the process may use but the
encoder's, at most 8)
reads each file once, hashes it (the store key), decodes it, checks its mask by the dataset's
one rule and, on the CPU, preprocesses it to model input, a batch ahead of the model (bounded
memory: about one batch of model input in flight); decoding and resizing release the
interpreter lock. The main thread only stacks a batch and runs the encoder. Vectors found in
the store are read by the readers too; new ones are written to it a batch at a time by one
writer thread. On a GPU the readers hand over uint8 pixels and the preprocessing runs on the
device. (Worker processes, a torch DataLoader's, were measured too: on the 2-core benchmark
machine they were slower than threads, by what it costs to move each image between
processes.)

Under a multi-process launch each process encodes its share and every process returns the
whole set (through the store, or gathered when there is none).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import distributed
from .dataset import BadItem, DataItem, ItemError, load_item, load_mask
from .store import EmbeddingStore, model_key

__all__ = ["Encoded", "encode_items", "default_workers"]


def default_workers(on_cpu: bool = True) -> int:
    """Reader threads sized to the machine: one per core this process may run on (at most 8),
    less the core the encoder runs on when it runs on the CPU. (On the 2-core benchmark
    machine a second reader only took CPU time from the encoder.)"""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores - (1 if on_cpu else 0)))


@dataclass
class Encoded:
    """`encode_items`'s result: one row of `vectors` per usable item, in input order."""

    items: list[DataItem]
    vectors: np.ndarray              # (N, D) float32, the adapter's raw `encode_images` output
    bad: list[BadItem]
    digests: list[str]               # each item's image content hash (the store key)
    encoded: int = 0                 # images run through the model (store misses)
    cached: int = 0                  # images read back from the store
    seconds: float = 0.0


# what a reader hands the model: (index, digest or None, payload)
#   digest None: payload is the reason the item is bad
#   payload an ndarray of shape (D,): a vector read from the store
#   payload a tensor / uint8 array: model input (CPU) / pixels (GPU) to encode
_Prepared = tuple[int, "str | None", Any]


class _Reader:
    """Prepares one item for the model (in a reader thread)."""

    def __init__(self, preprocess: Any, on_cpu: bool, cache: EmbeddingStore | None,
                 key: str) -> None:
        self.preprocess, self.on_cpu, self.cache, self.key = preprocess, on_cpu, cache, key

    def __call__(self, pair: tuple[int, DataItem]) -> _Prepared:
        import torch

        i, it = pair
        try:
            data = it.path.read_bytes()
        except OSError as exc:
            return i, None, f"cannot read image {it.path}: {exc.strerror or exc}"
        digest = hashlib.blake2b(data, digest_size=20).hexdigest()
        vec = self.cache.get(self.key, digest) if self.cache is not None else None
        if vec is not None and it.mask_path is None:
            return i, digest, vec
        try:
            image = _decode(data, it)
            if it.mask_path is not None:
                load_mask(it.mask_path, image.shape[:2])  # the one rule: a bad mask, a bad item
        except ItemError as exc:
            return i, None, str(exc)
        if vec is not None:
            return i, digest, vec
        if not self.on_cpu:
            return i, digest, image
        with torch.inference_mode():
            return i, digest, self.preprocess(torch.from_numpy(image)[None])[0]


def _read(pairs: list, reader: _Reader, workers: int, batch_size: int) -> Iterator[_Prepared]:
    """Every pair prepared, in order, a batch ahead of the consumer."""
    with ThreadPoolExecutor(workers, thread_name_prefix="mmattr-read") as pool:
        yield from _prefetch(pool, reader, pairs, ahead=batch_size + 2 * workers)


def encode_items(adapter: Any, items: Sequence[DataItem], *, cache: EmbeddingStore | None = None,
                 batch_size: int = 32, progress: Callable[[int, int], None] | None = None,
                 workers: int | None = None) -> Encoded:
    """Embed every item's image once: from `cache` when there, else in batches on the device.

    Items whose image cannot be read, or whose mask breaks the dataset's mask rule, are
    skipped and listed in ``Encoded.bad``.
    """
    import torch

    t0 = time.perf_counter()
    batch_size = max(1, int(batch_size))
    on_cpu = getattr(adapter.device, "type", "cpu") == "cpu"
    workers = max(1, int(workers or default_workers(on_cpu)))
    key = model_key(adapter) if cache is not None else ""
    if cache is not None and distributed.is_main_process():
        cache.describe_model(key, adapter.describe() if hasattr(adapter, "describe") else {})
    indexed = list(enumerate(items))
    mine = distributed.shard_items(indexed)
    reader = _Reader(adapter.preprocess, on_cpu, cache, key)

    local: list[tuple[int, str | None, str]] = []   # (index, digest or None, bad reason)
    vectors: dict[str, np.ndarray] = {}              # digest -> vector (this process's)
    batch: list[tuple[str, Any]] = []                # (digest, model input) waiting
    waiting: set[str] = set()
    writes: list[Future] = []
    encoded = 0

    def flush(writer: ThreadPoolExecutor) -> None:
        nonlocal encoded
        if not batch:
            return
        # NaFlex models give different input sizes per aspect ratio: one forward per size.
        groups: dict[tuple, list[int]] = {}
        for j, (_, x) in enumerate(batch):
            groups.setdefault(tuple(x.shape), []).append(j)
        fresh: list[tuple[str, np.ndarray]] = []
        with torch.inference_mode(), adapter.autocast():
            for idx in groups.values():
                if on_cpu:
                    x = torch.stack([batch[j][1] for j in idx])
                else:
                    pixels = torch.from_numpy(np.stack([batch[j][1] for j in idx]))
                    x = adapter.preprocess(pixels.to(adapter.device))
                rows = adapter.encode_images(x).float().cpu().numpy()  # one copy per batch
                for j, row in zip(idx, rows):
                    vectors[batch[j][0]] = row
                    fresh.append((batch[j][0], row))
        if cache is not None:  # one write task per batch: little for the writer to ask
            writes.append(writer.submit(cache.put_many, key, fresh))
        encoded += len(batch)
        batch.clear()
        waiting.clear()

    done = 0
    if progress is not None:
        progress(0, len(mine))
    with ThreadPoolExecutor(1, thread_name_prefix="mmattr-store") as writer:
        for i, digest, got in _read(mine, reader, workers, batch_size):
            if digest is None:
                local.append((i, None, got))
            else:
                local.append((i, digest, ""))
                if digest in vectors or digest in waiting:
                    pass  # the same bytes as an earlier image: encoded once
                elif isinstance(got, np.ndarray) and got.ndim == 1:
                    vectors[digest] = got  # read from the store by the reader
                else:
                    batch.append((digest, got))
                    waiting.add(digest)
                    if len(batch) >= batch_size:
                        flush(writer)
            done += 1
            if progress is not None and (done % batch_size == 0 or done == len(mine)):
                progress(done, len(mine))
        flush(writer)
        for f in writes:
            f.result()  # an unwritable store is one line, here
    return _assemble(adapter, items, local, vectors, cache, key, encoded, t0)


def _assemble(adapter: Any, items: Sequence[DataItem], local: list, vectors: dict,
              cache: EmbeddingStore | None, key: str, encoded: int, t0: float) -> Encoded:
    """Every process's rows, in item order, as one (N, D) matrix (filled in place)."""
    # Every process's vectors are in the store (or gathered) before anyone reads them all.
    distributed.wait_for_everyone()
    everything = distributed.gather_items(local)
    several = distributed.world_size() > 1
    if cache is None and several:
        merged: dict[str, np.ndarray] = {}
        for part in distributed.gather_items([vectors]):
            merged.update(part)
        vectors = merged
    everything.sort(key=lambda row: row[0])
    ok_items: list[DataItem] = []
    digests: list[str] = []
    bad: list[BadItem] = []
    matrix: np.ndarray | None = None
    n_ok = sum(1 for _, digest, _ in everything if digest is not None)
    for i, digest, reason in everything:
        it = items[i]
        if digest is None:
            bad.append(BadItem(it.image, reason, it.line))
            continue
        vec = vectors.get(digest)
        if vec is None and cache is not None:
            vec = cache.get(key, digest)
        if vec is None:  # evicted or damaged since another process wrote it: encode it here
            try:
                vec = _encode_one(adapter, it)
            except ItemError as exc:
                bad.append(BadItem(it.image, str(exc), it.line))
                continue
            if cache is not None:
                cache.put(key, digest, vec)
        if matrix is None:
            matrix = np.empty((n_ok, vec.shape[-1]), np.float32)
        matrix[len(ok_items)] = vec
        ok_items.append(it)
        digests.append(digest)
    encoded = sum(distributed.gather_items([encoded]))
    cached = max(0, len(ok_items) - encoded)  # read back (or a duplicate of one encoded)
    if cache is not None:
        distributed.wait_for_everyone()  # everyone has read the store before it is pruned
        if distributed.is_main_process():
            cache.prune()
    matrix = matrix[: len(ok_items)] if matrix is not None else np.zeros((0, 0), np.float32)
    return Encoded(ok_items, matrix, bad, digests, encoded, cached, time.perf_counter() - t0)


def _decode(data: bytes, item: DataItem) -> np.ndarray:
    from ..errors import InputError
    from ..image import decode_image_bytes

    try:
        return decode_image_bytes(data, item.path)  # contiguous and writable already
    except InputError as exc:
        raise ItemError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure skips the item, not the run
        raise ItemError(f"cannot read image {item.path}: {type(exc).__name__}: {exc}") from None


def _encode_one(adapter: Any, item: DataItem) -> np.ndarray:
    import torch

    image = load_item(item).image
    with torch.inference_mode(), adapter.autocast():
        x = adapter.preprocess(torch.from_numpy(image)[None].to(adapter.device))
        return adapter.encode_images(x).float().cpu().numpy()[0]


def _prefetch(pool: ThreadPoolExecutor, fn: Callable, seq: Sequence, ahead: int) -> Iterator:
    """fn over seq in the pool, results in order, at most `ahead` in flight (bounded memory)."""
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
