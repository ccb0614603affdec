"""Benchmark the runs package's encoding stage (a script, not a test).

Prints, for N synthetic images: the encoder's own throughput (preprocessed batches already in
memory), `mmattr.runs.encode_items` with a cold cache (read, hash, decode, preprocess, encode,
write), with a warm cache (a rerun: read and hash only), and the peak memory growth of each, so
"memory flat in the dataset size" can be checked by running it at two N.

    python benchmarks/bench_runner.py --n 500 --size 224 --model demo --batch-size 64
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import _PeakRSS  # noqa: E402  (same folder: one RSS sampler for all)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=None,
                    help="reader threads (default: one per core, at most 8)")
    args = ap.parse_args()

    from mmattr.adapters import load_adapter
    from mmattr.datasets.shapes import export_dataset
    from mmattr.runs import (EmbeddingCache, default_workers, encode_items, load_item_image,
                             read_dataset)

    with tempfile.TemporaryDirectory(prefix="mmattr-bench-runner-") as tmp:
        root = Path(tmp)
        export_dataset(root / "data", n_scenes=args.n, seed=1, size=args.size, n_objects=(1, 1))
        data = read_dataset(root / "data")
        items = data.items[: args.n]
        adapter = load_adapter(args.model)

        # the encoder alone: one preprocessed batch, encoded repeatedly
        batch = torch.cat([adapter.preprocess(torch.from_numpy(load_item_image(it))[None]
                                              .to(adapter.device))
                           for it in items[: args.batch_size]])
        with torch.inference_mode(), adapter.autocast():
            adapter.encode_images(batch)  # warm-up
            reps = max(1, len(items) // len(batch))
            t = time.perf_counter()
            for _ in range(reps):
                adapter.encode_images(batch)
            enc_rate = reps * len(batch) / (time.perf_counter() - t)

        cache = EmbeddingCache(root / "cache")
        with _PeakRSS() as cold_mem:
            t = time.perf_counter()
            cold = encode_items(adapter, items, cache=cache, batch_size=args.batch_size,
                                workers=args.workers)
            cold_s = time.perf_counter() - t
        with _PeakRSS() as warm_mem:
            t = time.perf_counter()
            warm = encode_items(adapter, items, cache=cache, batch_size=args.batch_size,
                                workers=args.workers)
            warm_s = time.perf_counter() - t
        assert warm.encoded == 0 and (warm.vectors == cold.vectors).all()

    mib = 1024 ** 2
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"device {adapter.device}")
    print(f"{len(items)} images {args.size}x{args.size}, model {args.model}, "
          f"batch {args.batch_size}, {args.workers or default_workers()} reader threads")
    print("| stage | images/s | seconds | peak memory growth |")
    print("|---|---:|---:|---:|")
    print(f"| encoder alone (batches in memory) | {enc_rate:.0f} | – | – |")
    print(f"| encode_items, cold cache | {len(items) / cold_s:.0f} | {cold_s:.1f} | "
          f"{(cold_mem.peak - cold_mem.start) / mib:.0f} MiB |")
    print(f"| encode_items, warm cache (rerun) | {len(items) / warm_s:.0f} | {warm_s:.1f} | "
          f"{(warm_mem.peak - warm_mem.start) / mib:.0f} MiB |")


if __name__ == "__main__":
    main()
