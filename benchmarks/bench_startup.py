"""Startup benchmark: how long `mmattr --help`, `--version` and `make demo`'s explain take, and
where the explain process spends its time (imports, model load, explain, save).

Not a test: run it by hand (each figure is the median of --repeat fresh processes), e.g.

    python benchmarks/bench_startup.py --repeat 5 --out benchmarks/results/startup_cpu.md

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
                  "torch modules": sum(m.startswith("torchvision") for m in sys.modules),
                  "transformers": "transformers" in sys.modules,
                  "native": bool(getattr(adapter, "native", False))}))
"""

#: the floor under every explain process: the interpreter and `import torch`, nothing else
_TORCH = "import torch"


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
    p.add_argument("--out", help="also write the report (Markdown) to this file")
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
            loaded = (steps.pop("transformers"), steps.pop("native"))
            rows.setdefault("python -c 'import torch' (floor, wall)", []).append(
                _wall([py, "-c", _TORCH], env, "python -c 'import torch' (floor, wall)"))
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
    import torch

    lines = [f"command: {' '.join(['python', 'benchmarks/bench_startup.py', *(argv if argv is not None else sys.argv[1:])])}",
             f"machine: {_cpu_name()}, {os.cpu_count()} cores, load average {load:.2f} after the "
             f"runs; python {platform.python_version()}, torch {torch.__version__} "
             f"({torch.get_num_threads()} threads), OMP_NUM_THREADS="
             f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"explain: `mmattr explain {args.image} --text {args.text!r} --model {args.model}`; "
             f"median of {args.repeat} fresh processes each",
             f"model built by mmattr's native path: {loaded[1]}; transformers imported: "
             f"{loaded[0]}; torchvision modules imported: {tv}",
             "",
             "| step | wall s | process CPU s |", "|---|---|---|"]
    for k, v in rows.items():
        cpu = f"{statistics.median(_CPU[k]):.3f}" if k in _CPU else "-"
        lines.append(f"| {k} | {statistics.median(v):.3f} | {cpu} |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("# Startup on the CPU\n\n" + "\n".join(lines) + "\n")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    raise SystemExit(main())
