"""Benchmark of `mmattr audit`: the encoding stage against the encoder's own throughput, and the
whole audit's time on a synthetic set. Prints a markdown report (and writes it with --out).
Not a test: run it by hand, e.g.

    python benchmarks/bench_audit.py --n 2000 --model demo-biased --out benchmarks/results/audit_cpu.md

Figures:
- encoder alone: images/s of `adapter.encode_images` on ready model input (batch --batch-size,
  random pixels, after a warm-up): the ceiling of any encoding stage.
- encoding stage, cold: `mmattr.runs.encode_items` over the image files with an empty cache
  (read and decode PNGs, hash, preprocess, encode, write the cache), images/s and the ratio to
  the encoder alone; `--repeat` cold runs, each against an encoder-alone figure measured just
  before it (the machine's load changes between them), the median ratio reported, with the
  load average beside each.
- encoding stage, warm: the same with every vector in the cache (a rerun / second audit).
- whole audit: `mmattr.audit` from a cold cache and an empty output folder, with the time of
  each stage from its audit.json; then the same audit rerun (cache warm, explanations resumed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mmattr  # noqa: E402
from mmattr.adapters import load_adapter  # noqa: E402
from mmattr.audit import AuditSettings  # noqa: E402
from mmattr.datasets.shapes import export_dataset  # noqa: E402
from mmattr.runs import EmbeddingCache, default_workers, encode_items, read_dataset  # noqa: E402


def encoder_throughput(adapter, batch: int, reps: int) -> float:
    h, w = adapter.preprocess.output_hw
    x = torch.rand(batch, 3, h, w, device=adapter.device)
    with torch.inference_mode(), adapter.autocast():
        adapter.encode_images(x)  # warm-up
        t = time.perf_counter()
        for _ in range(reps):
            adapter.encode_images(x)
    return batch * reps / (time.perf_counter() - t)


def encoder_beside_a_busy_core(adapter, batch: int, reps: int) -> float:
    """The encoder alone while another process keeps one core busy: what a machine gives a
    model thread while readers decode beside it (on a VM whose cores share a physical core,
    far less than the encoder alone)."""
    import subprocess

    busy = subprocess.Popen([sys.executable, "-c",
                             "import time\nt = time.time()\nwhile time.time() - t < 60: pass"])
    try:
        time.sleep(0.3)
        return encoder_throughput(adapter, batch, reps)
    finally:
        busy.kill()
        busy.wait()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} logical cores visible, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {gpu}, Python {platform.python_version()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="images in the synthetic set")
    ap.add_argument("--size", type=int, default=128, help="image side in pixels")
    ap.add_argument("--model", default="demo")
    ap.add_argument("--world", default="clean")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--explain-budget", type=int, default=16)
    ap.add_argument("--reps", type=int, default=5, help="encoder-alone repetitions")
    ap.add_argument("--repeat", type=int, default=3, help="cold encoding runs (median)")
    ap.add_argument("--no-audit", action="store_true", help="only the encoding stage")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = ap.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_audit_"))
    data = work / "data"
    t = time.perf_counter()
    if not (data / "manifest.jsonl").is_file():
        export_dataset(data, n_scenes=args.n, seed=2026, size=args.size, n_objects=(1, 1),
                       world=args.world)
    t_data = time.perf_counter() - t
    adapter = load_adapter(args.model, args.device)
    enc_alone = encoder_throughput(adapter, args.batch_size, args.reps)

    items = read_dataset(data).items
    cache_dir = work / "cache"
    runs = []  # (encoder alone, cold stage, load average before, after)
    for _ in range(max(1, args.repeat)):
        shutil.rmtree(cache_dir, ignore_errors=True)
        load0 = os.getloadavg()[0]
        alone = encoder_throughput(adapter, args.batch_size, args.reps)
        cold = encode_items(adapter, items, cache=EmbeddingCache(cache_dir),
                            batch_size=args.batch_size)
        runs.append((alone, len(items) / cold.seconds, load0, os.getloadavg()[0]))
    warm = encode_items(adapter, items, cache=EmbeddingCache(cache_dir), batch_size=args.batch_size)
    assert cold.encoded == len(items) and warm.encoded == 0
    assert np.allclose(cold.vectors, warm.vectors)
    beside = encoder_beside_a_busy_core(adapter, args.batch_size, args.reps)
    ratios = sorted(c / a for a, c, _, _ in runs)
    median = ratios[len(ratios) // 2]
    enc_alone, cold_rate, _, _ = min(runs, key=lambda r: abs(r[1] / r[0] - median))

    n = len(items)
    enc_lines = [
        "## Encoding stage against the encoder",
        "",
        f"{default_workers(args.device == 'cpu')} reader thread(s) (one per core but the "
        "encoder's), the encoder on the main thread.",
        "",
        "| what | images/s | × encoder alone |",
        "|---|---|---|",
        f"| encoder alone (ready input, batch {args.batch_size}) | {enc_alone:.1f} | 1.00 |",
        f"| encoding stage, cold cache (read, hash, decode, preprocess, encode, cache; median of "
        f"{len(runs)}) | {cold_rate:.1f} | {cold_rate / enc_alone:.2f} |",
        f"| encoding stage, warm cache (rerun) | {n / warm.seconds:.1f} | "
        f"{n / warm.seconds / enc_alone:.2f} |",
        "",
        f"The encoder alone while another process keeps one core busy: {beside:.1f} images/s "
        f"({beside / enc_alone:.2f} × alone). Readers decoding beside the model cost it that "
        "much here, whatever the pipeline: it bounds the cold stage's ratio on this machine.",
        "",
        "Each cold run against the encoder alone measured just before it:",
        "",
        "| run | encoder alone, images/s | cold stage, images/s | × | load average (1 min) before / after |",
        "|---|---|---|---|---|",
        *[f"| {k + 1} | {a:.1f} | {c:.1f} | {c / a:.2f} | {l0:.2f} / {l1:.2f} |"
          for k, (a, c, l0, l1) in enumerate(runs)],
        "",
    ]
    if args.no_audit:
        report = "\n".join([f"# `mmattr audit`'s encoding stage on the CPU: {n} images", "",
                            f"Machine: {machine()}.",
                            f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
                            "Command:", "", "    " + " ".join(["python", *sys.argv]), "",
                            *enc_lines])
        print(report)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(report)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
        return
    audit_cache = work / "audit-cache"
    shutil.rmtree(audit_cache, ignore_errors=True)
    out = work / "audit"
    shutil.rmtree(out, ignore_errors=True)
    settings = AuditSettings(batch_size=args.batch_size, device=args.device,
                             cache_dir=str(audit_cache))
    t = time.perf_counter()
    first = mmattr.audit(data, args.model, out=out, explain_budget=args.explain_budget,
                         settings=settings)
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    second = mmattr.audit(data, args.model, out=out, explain_budget=args.explain_budget,
                          settings=settings)
    t_second = time.perf_counter() - t

    s = first.summary
    # explanations actually run (a correct image has no contrast record with a map)
    n_smdl = sum("insertion_auc" in e.get(t, {}) for e in s["explanations"]
                 for t in ("predicted", "true", "contrast"))
    lines = [
        f"# `mmattr audit` on the CPU: {n} images",
        "",
        f"Machine: {machine()}.",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Command:",
        "",
        "    " + " ".join(["python", *sys.argv]),
        "",
        f"Data: {n} single-object {args.size} px scenes of the {args.world} synthetic world "
        f"(written in {t_data:.1f} s, not counted below). Model `{args.model}` "
        f"(input {adapter.preprocess.output_hw[0]} px), batch {args.batch_size}.",
        "",
        *enc_lines,
        "## The whole audit",
        "",
        f"First run (cold cache, empty --out, explain budget {args.explain_budget}): "
        f"**{t_first:.1f} s** for {n} images; accuracy {first.accuracy:.3f}, "
        f"{len(s['slices'])} slice(s), {len(s['explanations'])} images explained "
        f"({n_smdl} SMDL explanations: predicted class, true class and, for mistakes, the contrast).",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.1f} |" for k, v in s["timings"].items()],
        "",
        f"Rerun (embeddings from the cache, explanations resumed from disk): **{t_second:.1f} s** "
        f"(encoded {second.summary['encoding']['encoded']}, "
        f"from cache {second.summary['encoding']['from_cache']}).",
        "",
    ]
    if s["slices"]:
        top = s["slices"][0]
        name = f"“{top['names'][0]['phrase']}” ({top['names'][0]['score']:+.2f})" if top["names"] else ""
        lines += [f"Top slice: {top['size']} images, accuracy {top['accuracy']:.3f}, drop "
                  f"{top['drop']:.3f}, name {name}.", ""]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        (args.out.with_suffix(".json")).write_text(json.dumps(
            {"n": n, "encoder_images_per_s": enc_alone, "cold_images_per_s": cold_rate,
             "cold_runs": runs,
             "warm_images_per_s": n / warm.seconds, "audit_seconds": t_first,
             "rerun_seconds": t_second, "timings": s["timings"]}, indent=1) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
