"""Startup benchmark: how long `mmattr --help`, `--version` and `make demo`'s explain take, and
where the explain process spends its time (imports, model load, explain, save).

Not a test: run it by hand (each figure is the median of --repeat fresh processes), e.g.

    python benchmarks/bench_startup.py --repeat 3

The breakdown runs the same steps as `mmattr explain examples/scene.png --text "a red circle"`
in a fresh interpreter: import the library, load the model (`load_adapter`), explain, save the
five result files; "process" is the whole CLI command's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_STEPS = r"""
import json, sys, time
t0 = time.perf_counter()
from mmattr.api import explain
from mmattr.adapters import load_adapter
from mmattr.targets import Target
t1 = time.perf_counter()
adapter = load_adapter(sys.argv[1], device="cpu")
t2 = time.perf_counter()
e = explain(sys.argv[2], target=Target.from_options(sys.argv[3]), model=adapter)
t3 = time.perf_counter()
e.save(sys.argv[4])
t4 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "model load": t2 - t1, "explain": t3 - t2, "save": t4 - t3,
                  "torch modules": sum(m.startswith("torchvision") for m in sys.modules)}))
"""


_CPU: dict[str, list[float]] = {}


def _wall(cmd: list[str], env: dict, name: str = "") -> float:
    """Wall seconds of a fresh process; its CPU seconds (user + system) go to `_CPU[name]`,
    the figure to read on a shared, busy machine."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _CPU.setdefault(name, []).append((after.ru_utime - before.ru_utime)
                                     + (after.ru_stime - before.ru_stime))
    return wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--model", default="demo")
    p.add_argument("--image", default="examples/scene.png")
    p.add_argument("--text", default="a red circle")
    args = p.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    py = sys.executable
    cli = [py, "-m", "mmattr"]
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            rows.setdefault("mmattr --help", []).append(_wall([*cli, "--help"], env, "mmattr --help"))
            rows.setdefault("mmattr --version", []).append(
                _wall([*cli, "--version"], env, "mmattr --version"))
            out = subprocess.run([py, "-c", _STEPS, args.model, args.image, args.text,
                                  str(Path(tmp) / "steps")], check=True, cwd=ROOT, env=env,
                                 capture_output=True, text=True)
            steps = json.loads(out.stdout.strip().splitlines()[-1])
            tv = steps.pop("torch modules")
            for k, v in steps.items():
                rows.setdefault(k, []).append(v)
            rows.setdefault("explain process (CLI, wall)", []).append(_wall(
                [*cli, "explain", args.image, "--text", args.text, "--model", args.model,
                 "--out", str(Path(tmp) / "cli"), "--overwrite"], env,
                "explain process (CLI, wall)"))
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {load:.1f}; python {platform.python_version()}; median of {args.repeat}")
    print(f"torchvision modules imported by the explain steps: {tv}")
    print("| step | wall s | process CPU s |\n|---|---|---|")
    for k, v in rows.items():
        cpu = f"{statistics.median(_CPU[k]):.3f}" if k in _CPU else "-"
        print(f"| {k} | {statistics.median(v):.3f} | {cpu} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
