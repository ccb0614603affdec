"""Pointing game of six methods on unseen two-object scenes, for one model (a script, not a test).

Half the scenes come from the training renderer (``shapes``, seeds never used in training), half
from the second renderer (``altshapes``: other backgrounds, sizes and textures). The target is
one object's caption; a hit is the map's maximum on that object's mask (ties: the share of the
maximal pixels on the mask). Prints a Markdown table with per-renderer hit counts.

    python benchmarks/pointing_zoo.py --model demo --scenes 20 [--out FILE.md]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import mmattr
from mmattr.datasets.altshapes import render_alt_scene
from mmattr.datasets.shapes import render_scene

METHODS = ["saliency", "ig", "gradcam", "gradcampp", "scorecam", "smdl"]


def _hit(attribution: np.ndarray, mask: np.ndarray) -> float:
    top = attribution >= attribution.max() - 1e-12 * max(1.0, abs(float(attribution.max())))
    return float((top & mask).sum() / top.sum())


def run(model: str, scenes: int, size: int, regions: int) -> dict[str, dict[str, float]]:
    adapter = mmattr.load_adapter(model, device="cpu")
    half = scenes // 2
    cases = [("shapes", render_scene(np.random.default_rng((50_000, i)), size=size, n_objects=2))
             for i in range(half)]
    cases += [("alt", render_alt_scene(np.random.default_rng((51_000, i)), size=size, n_objects=2))
              for i in range(scenes - half)]
    table: dict[str, dict[str, float]] = {}
    for method in METHODS:
        hits = {"shapes": 0.0, "alt": 0.0}
        t0 = time.time()
        for renderer, scene in cases:
            kwargs = {"regions": regions, "division": "slico"} if method == "smdl" else {}
            e = mmattr.explain(scene.image, text=scene.labels[0], model=adapter, method=method,
                               **kwargs)
            hits[renderer] += _hit(np.asarray(e.attribution), scene.masks[0])
        table[method] = {**hits, "all": hits["shapes"] + hits["alt"],
                         "seconds": (time.time() - t0) / len(cases)}
        print(f"{method:10s} {table[method]['all']:.1f}/{len(cases)}", flush=True)
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--regions", type=int, default=25)
    ap.add_argument("--out")
    args = ap.parse_args()
    table = run(args.model, args.scenes, args.size, args.regions)
    half = args.scenes // 2
    lines = [f"Pointing game, model `{args.model}`, {args.scenes} unseen two-object scenes "
             f"({half} shapes + {args.scenes - half} altshapes, {args.size} px), SMDL at "
             f"{args.regions} SLICO regions; {platform.processor() or platform.machine()}, "
             f"CPU.", "",
             "| method | hits (all) | shapes | altshapes | s / image |", "|---|---|---|---|---|"]
    for m, r in table.items():
        lines.append(f"| {m} | {r['all']:.1f}/{args.scenes} | {r['shapes']:.1f}/{half} | "
                     f"{r['alt']:.1f}/{args.scenes - half} | {r['seconds']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
