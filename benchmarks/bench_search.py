"""Benchmark of the SMDL search strategies: passes, time against the encoder's floor, AUCs, memory.

Prints a markdown table (and writes it with --out). Not a test: run it by hand, e.g.

    python benchmarks/bench_search.py --models demo vitb32 --scenes 20 --images 3 \\
        --out benchmarks/results/search_cpu.md

Columns, per model, N and strategy (means over the images):
- N: mean number of regions the division produced (SLICO asks for about N, never more)
- passes: forward passes per image (search + region embeddings + the curves' two end points)
- s/img: wall seconds per explanation (division, preparation, search, curves)
- floor s: passes / (the encoder's own images per second at the same batch size)
- overhead: s/img / floor s (1.0 = nothing but forward passes)
- enc s: seconds spent inside the encoder during the explanation; s/enc: s/img / enc s, the
  overhead against the encoder's own time at the batch sizes the search really used
- ins / del: insertion / deletion AUC from the search's own prefixes
- Δins: ins minus exact's on the same images; top5: overlap of the first 5 regions with exact's
- peak MB: highest RSS growth during one explanation, sampled every millisecond

Ref. Chen et al., "Less is More", ICLR 2024 (SMDL); Mirzasoleiman et al., AAAI 2015; LiMA,
arXiv 2504.00470; Minoux 1978 (lazy greedy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmattr.adapters import load_adapter  # noqa: E402
from mmattr.adapters._preprocess import Preprocess  # noqa: E402
from mmattr.adapters.base import Adapter  # noqa: E402
from mmattr.config import ExplainConfig  # noqa: E402
from mmattr.datasets.shapes import render_scene  # noqa: E402
from mmattr.explainers.smdl import SMDLExplainer  # noqa: E402
from mmattr.search import config_changes  # noqa: E402
from mmattr.targets import Target  # noqa: E402

DEFAULT_STRATEGIES = ["exact", "lazy", "lazy:batch=2", "lazy:batch=8", "stochastic",
                      "stochastic:epsilon=0.001", "bidirectional"]


class _RandomViTB32(Adapter):
    """A CLIP ViT-B/32 vision tower (and projection) with random weights, 224² input."""

    def __init__(self) -> None:
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        torch.manual_seed(0)
        cfg = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                               num_attention_heads=12, image_size=224, patch_size=32,
                               projection_dim=512)
        self.model = CLIPVisionModelWithProjection(cfg).eval().requires_grad_(False)
        self.spec = "random-clip-vit-b32"
        self.device = torch.device("cpu")
        self.preprocess = Preprocess(shortest_edge=224, resize_hw=None, crop_hw=(224, 224),
                                     mean=(0.4815, 0.4578, 0.4082), std=(0.2686, 0.2613, 0.2758))

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).image_embeds


class _PeakRSS:
    """Highest resident-set growth while the block runs, sampled on a thread."""

    def __enter__(self):
        import ctypes

        import psutil

        try:  # hand freed heap back to the OS, so growth is measured from a clean baseline
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass

        self._proc = psutil.Process()
        self.start = self._proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def mb(self) -> float:
        return (self.peak - self.start) / 2**20


def _parse(spec: str) -> tuple[str, dict]:
    name, _, opts = spec.partition(":")
    options = {}
    for part in filter(None, opts.split(",")):
        key, _, value = part.partition("=")
        options[key] = float(value) if "." in value or "e" in value else int(value)
    return name, options


def _throughput(adapter: Adapter, batch: int, seconds: float = 2.0) -> float:
    """The encoder's own images per second at `batch` images per call (the floor)."""
    h, w = adapter.preprocess.output_hw
    x = torch.randn(batch, 3, h, w, device=adapter.device)
    with torch.inference_mode():
        adapter.encode_images(x)
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or done < 3 * batch:
            adapter.encode_images(x)
            done += batch
    return done / (time.perf_counter() - t0)


def _cases(model: str, count: int, seed0: int):
    for i in range(count):
        scene = render_scene(seed0 + i, size=224)
        if model == "demo":
            yield scene.image, Target.from_text(scene.labels[0])
        else:
            yield scene.image, None


class _EncoderClock:
    """Adds up the seconds spent inside the encoder (synchronous on the CPU)."""

    def __init__(self, adapter: Adapter) -> None:
        self.seconds = 0.0
        inner = adapter.encode_images

        def timed(pixels):
            t0 = time.perf_counter()
            out = inner(pixels)
            self.seconds += time.perf_counter() - t0
            return out

        adapter.encode_images = timed


def _run_model(model: str, args, rows: list[dict]) -> dict:
    adapter = load_adapter("demo") if model == "demo" else _RandomViTB32()
    clock = _EncoderClock(adapter)
    caps = dict(tuple(int(v) for v in c.split("=")) for c in args.cap) if model == "demo" else {}
    count = args.scenes if model == "demo" else args.images
    info = {"model": adapter.spec, "images": count}
    before = _throughput(adapter, BATCH)
    for n in (args.vitb_regions or args.regions) if model != "demo" else args.regions:
        cfg = ExplainConfig(model=adapter.spec, regions=n, batch_size=args.batch_size,
                            division="slico")
        for i, (image, target) in enumerate(_cases(model, caps.get(n, count), args.seed)):
            if target is None:  # random weights: explain the image's match with itself
                with torch.inference_mode():
                    emb = adapter.encode_images(adapter.preprocess(torch.from_numpy(image)[None]))
                target = Target.from_options(embedding=emb[0].numpy())
            for spec in args.strategies:
                name, options = _parse(spec)
                if model != "demo" and (f"{n}:{spec}" in args.vitb_skip or (
                        f"{n}:{spec}" in args.vitb_first_only and i > 0)):
                    continue
                if model == "demo" and f"{n}:{spec}" in args.demo_skip:
                    continue
                clock.seconds = 0.0
                with _PeakRSS() as mem:
                    # the strategy's options reach the explainer through its settings
                    e = SMDLExplainer(cfg.replace(**config_changes(name, options))).explain(
                        image, target, adapter)
                rows.append({"model": model, "N": n, "strategy": spec, "image": i,
                             "regions": e.n_regions, "passes": e.forward_passes,
                             "seconds": e.seconds, "search_s": e.timings["search"],
                             "encoder_s": clock.seconds,
                             "ins": e.insertion_auc, "del": e.deletion_auc, "order": e.order,
                             "mb": mem.mb})
                if args.rows:  # every row as it comes, so an interrupted run keeps its results
                    with args.rows.open("a") as fh:
                        fh.write(json.dumps({**rows[-1], "throughput": before}) + "\n")
                print(f"# {model} N={n} img={i} {spec}: {e.forward_passes} passes "
                      f"{e.seconds:.2f}s ins {e.insertion_auc:.4f}", file=sys.stderr, flush=True)
    # Measured before and after (the machine is shared): the floor uses the faster one.
    after = _throughput(adapter, BATCH)
    info["throughput"] = max(before, after)
    info["throughput_range"] = (min(before, after), max(before, after))
    return info


def _table(rows: list[dict], infos: dict[str, dict], strategies: list[str]) -> str:
    out = []
    for model, info in infos.items():
        ips = info["throughput"]
        lo, hi = info["throughput_range"]
        out.append(f"\n### {info['model']} ({info['images']} images; encoder alone "
                   f"{lo:.1f} to {hi:.1f} images/s at batch {BATCH}, floor uses {hi:.1f})\n")
        out.append("| N | strategy | images | regions | passes | ×fewer | s/img | floor s | overhead | "
                   "enc s | s/enc | ins | Δins | del | top5 | peak MB |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        sel = [r for r in rows if r["model"] == model]
        for n in sorted({r["N"] for r in sel}):
            exact = {r["image"]: r for r in sel if r["N"] == n and r["strategy"] == "exact"}
            for spec in strategies:
                rs = [r for r in sel if r["N"] == n and r["strategy"] == spec]
                if not rs:
                    continue
                passes = np.mean([r["passes"] for r in rs])
                secs = np.mean([r["seconds"] for r in rs])
                floor = passes / ips
                enc = np.mean([r["encoder_s"] for r in rs])
                paired = [r for r in rs if r["image"] in exact]
                ex_passes = np.mean([exact[r["image"]]["passes"] for r in paired]) if paired else np.nan
                fewer = ex_passes / np.mean([r["passes"] for r in paired]) if paired else np.nan
                dins = (np.mean([r["ins"] - exact[r["image"]]["ins"] for r in paired])
                        if paired else np.nan)
                top5 = (np.mean([len(set(r["order"][:5]) & set(exact[r["image"]]["order"][:5])) / 5
                                 for r in paired]) if paired else np.nan)
                out.append(
                    f"| {n} | {spec} | {len(rs)} | {np.mean([r['regions'] for r in rs]):.1f} | "
                    f"{passes:.0f} | {fewer:.2f} | {secs:.3f} | {floor:.3f} | {secs / floor:.2f} | "
                    f"{enc:.3f} | {secs / enc:.2f} | "
                    f"{np.mean([r['ins'] for r in rs]):.4f} | {dins:+.4f} | "
                    f"{np.mean([r['del'] for r in rs]):.4f} | {top5:.2f} | "
                    f"{np.max([r['mb'] for r in rs]):.0f} |")
    return "\n".join(out)


BATCH = 64


def main(argv: list[str] | None = None) -> int:
    global BATCH
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["demo", "vitb32"], choices=["demo", "vitb32"])
    p.add_argument("--scenes", type=int, default=20, help="demo-model scenes")
    p.add_argument("--images", type=int, default=3, help="random ViT-B/32 images")
    p.add_argument("--regions", type=int, nargs="+", default=[25, 49, 100])
    p.add_argument("--strategies", nargs="+", default=DEFAULT_STRATEGIES)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1000, help="first scene seed")
    p.add_argument("--vitb-first-only", nargs="*", default=[],
                   help="N:strategy pairs the ViT-B/32 runs on its first image only (CPU time)")
    p.add_argument("--cap", nargs="*", default=[],
                   help="N=count: the demo model runs only `count` scenes at that N (CPU time)")
    p.add_argument("--demo-skip", nargs="*", default=[],
                   help="N:strategy pairs the demo model does not run")
    p.add_argument("--vitb-skip", nargs="*", default=[],
                   help="N:strategy pairs the ViT-B/32 does not run (CPU time)")
    p.add_argument("--vitb-regions", type=int, nargs="+", default=None,
                   help="N values for the ViT-B/32 (default: --regions)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--table-from", type=Path, nargs="*", default=None,
                   help="print the table of rows saved with --rows instead of measuring")
    p.add_argument("--rows", type=Path, default=None, help="append every measured row (JSONL)")
    args = p.parse_args(argv)
    BATCH = args.batch_size
    torch.set_num_threads(args.threads)
    rows: list[dict] = []
    if args.table_from:  # render rows saved by earlier (possibly interrupted) runs
        rows = [json.loads(line) for f in args.table_from for line in f.read_text().splitlines()]
        infos = {}
        for m in dict.fromkeys(r["model"] for r in rows):
            ips = [r["throughput"] for r in rows if r["model"] == m and r["throughput"]]
            infos[m] = {"model": m, "images": len({r["image"] for r in rows if r["model"] == m}),
                        "throughput": max(ips), "throughput_range": (min(ips), max(ips))}
    else:
        infos = {m: _run_model(m, args, rows) for m in args.models}
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    header = (f"command: python benchmarks/bench_search.py {' '.join(argv or sys.argv[1:])}\n"
              f"machine: {cpu}, {os.cpu_count()} cores (shared), torch {torch.__version__}, "
              f"{args.threads} thread(s), no GPU; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    text = header + "\n" + _table(rows, infos, args.strategies) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
