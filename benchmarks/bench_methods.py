"""Benchmark every attribution method and division on the demo model (a script, not a test).

For each method (and SMDL with each division) over unseen synthetic scenes it prints forward
passes, seconds per image, peak memory and the pointing-game hit rate (the map's maximum falls
on the named object's mask), as a Markdown table.

    python benchmarks/bench_methods.py --scenes 10 --size 224 --regions 25 [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import mmattr
from mmattr.datasets.shapes import render_scene
from mmattr.metrics.localisation import pointing_game, top_k_iou

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import _PeakRSS  # noqa: E402  (same folder: one RSS sampler for both)

BASELINES = ["saliency", "ig", "gradcam", "gradcampp", "scorecam", "lime", "kernelshap", "rise",
             "hsic"]
DIVISIONS = ["slico", "seeds", "grid", "prior:hsic", "prior:gradcam"]


def run(scenes: int, size: int, regions: int, device: str, sam_checkpoint: str | None,
        seed0: int) -> list[dict]:
    adapter = mmattr.load_adapter("demo", device)
    cases = [(m, "slico") for m in BASELINES] + [("smdl", d) for d in DIVISIONS]
    if sam_checkpoint:
        cases.append(("smdl", "sam"))
    rows = []
    for method, division in cases:
        passes, seconds, hits, peaks, ious = [], [], [], [], []
        if adapter.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for k in range(scenes):
            scene = render_scene(seed0 + k, size=size)
            t0 = time.perf_counter()
            with _PeakRSS() as rss:
                e = mmattr.explain(scene.image, text=scene.labels[0], model=adapter,
                                   method=method, division=division, regions=regions,
                                   sam_checkpoint=sam_checkpoint)
            seconds.append(time.perf_counter() - t0)
            peaks.append(rss.mb)
            passes.append(e.forward_passes)
            # Tie-aware: a region-valued map's maximum is a whole region, not its first pixel.
            hits.append(pointing_game(e.attribution, scene.masks[0]))
            ious.append(top_k_iou(e.attribution, scene.masks[0]))
        peak = (torch.cuda.max_memory_allocated() / 2 ** 20 if adapter.device.type == "cuda"
                else max(peaks))
        row = {"method": method, "division": division if method in ("smdl", "lime", "kernelshap")
               else "-", "passes": float(np.mean(passes)), "seconds": float(np.mean(seconds)),
               "peak_mb": peak, "pointing": float(np.mean(hits)), "iou": float(np.mean(ious))}
        rows.append(row)
        print(f"{row['method']:>10} {row['division']:>13} passes {row['passes']:7.0f} "
              f"s/img {row['seconds']:7.2f} peak {row['peak_mb']:7.1f} MB "
              f"pointing {row['pointing']:.2f} iou {row['iou']:.2f}", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict], header: str) -> str:
    lines = [header, "", "| method | division | forward passes / image | seconds / image | "
             "peak memory (MB) | pointing game | IoU of top area |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['division']} | {r['passes']:.0f} | {r['seconds']:.2f} "
                     f"| {r['peak_mb']:.1f} | {r['pointing']:.2f} | {r['iou']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=10)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--regions", type=int, default=25)
    p.add_argument("--device", default="auto")
    p.add_argument("--sam-checkpoint", default=None)
    p.add_argument("--seed", type=int, default=50_000, help="first scene seed (unseen scenes)")
    p.add_argument("--out", default=None, help="also write the table to this Markdown file")
    a = p.parse_args(argv)
    rows = run(a.scenes, a.size, a.regions, a.device, a.sam_checkpoint, a.seed)
    header = (f"command: python benchmarks/bench_methods.py {' '.join(argv or sys.argv[1:])}\n"
              f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"{torch.get_num_threads()} torch thread(s), "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
              f"Demo model, {a.scenes} unseen scenes (seeds {a.seed}..), {a.size}×{a.size} px, "
              f"--regions {a.regions}, device {a.device}, torch {torch.__version__}. Forward "
              "passes exclude the 22 passes of a baseline's pixel curves; peak memory is the "
              "highest RSS growth during one explanation on CPU (sampled every ms after "
              "malloc_trim), torch.cuda.max_memory_allocated on GPU; pointing game = share of scenes whose "
              "map maximum lies on the named object (mmattr.metrics pointing_game: when a whole "
              "region ties for the maximum, the share of it on the object); IoU of top area = IoU "
              "with the object's mask of the map's top pixels, as many as the mask has (a "
              "random map scores about the object's share of the image).")
    text = table(rows, header)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
