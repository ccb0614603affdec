"""Peak memory and time of `mmattr explain` on a large photo (a script, not a test).

Writes a 4000×3000 photo-like PNG (a synthetic scene upscaled, with sensor-like noise and a
gradient so SLICO has real texture), then runs the whole `mmattr explain` path in a fresh
process per setting: load, divide and search at ``max_side``, maps back at full size, every
result file written. Prints the process's peak resident memory (the kernel's high-water mark,
ru_maxrss, which includes the Python, torch and model baseline), seconds and output sizes.

    python benchmarks/bench_large_image.py [--width 4000 --height 3000] [--max-side 1024 4000]
        [--regions 49] [--search lazy]

Target (issue 14): under 1.5 GB peak on a 4000×3000 photo with the default max_side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def make_photo(path: Path, width: int, height: int, seed: int = 3) -> None:
    import cv2
    from PIL import Image

    from mmattr.datasets.shapes import render_scene

    scene = render_scene(seed, size=512).image
    big = cv2.resize(scene, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-20, 20, width, dtype=np.float32)[None, :, None]
    noise = rng.normal(0, 6, size=(height, width, 1)).astype(np.float32)
    Image.fromarray((big + ramp + noise).clip(0, 255).astype(np.uint8)).save(path)


def child(image: str, out: str, max_side: int, regions: int, search: str, text: str) -> None:
    """One explain run in this process; prints a JSON line with its figures."""
    import resource
    import time

    from mmattr.api import explain_to_dir
    from mmattr.config import ExplainConfig
    from mmattr.targets import Target

    cfg = ExplainConfig(max_side=max_side, regions=regions, search=search, device="cpu")
    t0 = time.perf_counter()
    result, where = explain_to_dir(image, Target.from_text(text), out, config=cfg)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    sizes = {p.name: p.stat().st_size for p in Path(where).iterdir() if p.is_file()}
    print(json.dumps({"max_side": max_side, "seconds": round(seconds, 1),
                      "peak_rss_mb": round(peak_mb), "forward_passes": result.forward_passes,
                      "explained_size": result.settings.get("explained_size"),
                      "attribution_shape": list(result.attribution.shape),
                      "files_mb": {k: round(v / 2 ** 20, 1) for k, v in sorted(sizes.items())}}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--max-side", type=int, nargs="+", default=[1024])
    ap.add_argument("--regions", type=int, default=49)
    ap.add_argument("--search", default="lazy")
    ap.add_argument("--text", default="a red circle")
    ap.add_argument("--child", nargs=3, metavar=("IMAGE", "OUT", "MAX_SIDE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        image, out, max_side = args.child
        child(image, out, int(max_side), args.regions, args.search, args.text)
        return
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.png"
        make_photo(photo, args.width, args.height)
        print(f"photo {args.width}x{args.height}, {photo.stat().st_size / 2 ** 20:.1f} MB PNG; "
              f"regions {args.regions}, search {args.search}, demo model, CPU, "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
        print("| max_side | explained at | seconds | peak RSS (MB) | passes | attribution.npy (MB) | overlay.png (MB) |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        for side in args.max_side:
            out = Path(tmp) / f"out{side}"
            proc = subprocess.run([sys.executable, __file__, "--regions", str(args.regions),
                                   "--search", args.search, "--text", args.text,
                                   "--child", str(photo), str(out), str(side)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"| {side} | failed: {proc.stderr.strip().splitlines()[-1:]} |")
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            size = row["explained_size"] or [args.width, args.height]
            print(f"| {side} | {size[0]}x{size[1]} | {row['seconds']} | {row['peak_rss_mb']} | "
                  f"{row['forward_passes']} | {row['files_mb']['attribution.npy']} | "
                  f"{row['files_mb']['overlay.png']} |", flush=True)


if __name__ == "__main__":
    main()
