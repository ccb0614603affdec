"""SIGKILL suites for `audit`, `represent` and a multi-process `evaluate`: kill, rerun, and
check that nothing was lost, nothing duplicated and nothing left behind.

- ``evaluate --num-processes 2``: SIGKILL of the launcher (the user's process) alone. Its
  processes are bound to it, so none is left running or appending; the rerun ends with exactly
  one line per record, equal to a single-process run's.
- ``audit``: killed while encoding, while explaining (records) and while writing the report.
- ``represent``: killed between interpretations.

The default run kills once per command (forked children of this process for audit and
represent: no interpreter start per kill); ``-m slow`` at more points.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from killlib import run_forked
from mmattr._io import is_temp
from mmattr.cli.main import app
from mmattr.datasets.shapes import export_dataset
from mmattr.demo_model import DEMO_MODEL_DIR

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
needs_demo = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").is_file(),
                                reason="no demo model")


# -- helpers ---------------------------------------------------------------------------------

def _lines(out: Path, pattern: str) -> int:
    n = 0
    for p in out.glob(pattern):
        try:
            n += p.read_bytes().count(b"\n")
        except OSError:
            pass
    return n


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by whoever adopted it, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    """Every process started by `pid`, its children's children too."""
    out: list[int] = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        return out
    for kid in kids:
        out += [kid, *_descendants(kid)]
    return out


def _runs_mmattr(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"mmattr" in f.read()
    except OSError:
        return False


def _no_temp_left(out: Path) -> None:
    left = [str(p.relative_to(out)) for p in out.rglob("*") if is_temp(p.name)]
    assert not left, f"temporary entries left: {left}"


def _kill_when(argv: list[str], env: dict[str, str], ready, delay: float = 0.0,
               timeout: float = 300) -> bool:
    """Fork the command, SIGKILL it `delay` s after ``ready()``; False if it ended first."""
    proc = multiprocessing.get_context("fork").Process(target=run_forked, args=(argv, env))
    proc.start()
    deadline = time.monotonic() + timeout
    while proc.is_alive() and time.monotonic() < deadline and not ready():
        time.sleep(0.002)
    end = time.monotonic() + delay
    while proc.is_alive() and time.monotonic() < end:
        time.sleep(0.002)
    landed = proc.is_alive()
    if landed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    return landed


# -- evaluate --num-processes 2 ----------------------------------------------------------------

EVAL = ["--model", "demo", "--division", "grid", "--regions", "4", "--steps", "5",
        "--methods", "smdl,saliency", "--metrics", "insertion,pointing", "--no-plots"]


def _records(out: Path) -> list[dict]:
    recs = []
    for p in sorted(out.glob("results*.jsonl")):
        recs += [json.loads(x) for x in p.read_text().splitlines()]  # every line whole
    return recs


@needs_demo
def test_sigkill_of_a_two_process_launch_leaves_nothing_running(tmp_path):
    pytest.importorskip("accelerate")
    data = tmp_path / "data"
    export_dataset(data, n_scenes=8, seed=4, size=48, n_objects=(1, 1))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    ref = runner.invoke(app, ["evaluate", str(data), "--out", str(tmp_path / "ref"), *EVAL])
    assert ref.exit_code == 0, ref.output
    want = {(r["item"], r["task"]): r for r in _records(tmp_path / "ref")}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mmattr", "evaluate", str(data), "--out", str(out), *EVAL,
           "--num-processes", "2"]
    with open(tmp_path / "err.txt", "w") as err:
        launcher = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                    stderr=err, start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while launcher.poll() is None and time.monotonic() < deadline \
                and _lines(out, "results*.jsonl") < 2:
            time.sleep(0.01)
        workers = [p for p in _descendants(launcher.pid) if _runs_mmattr(p)]
        assert launcher.poll() is None and len(workers) >= 2, (workers, (tmp_path / "err.txt")
                                                                .read_text()[-2000:])
        at_kill = _lines(out, "results*.jsonl")
        launcher.send_signal(signal.SIGKILL)  # the launcher alone, as a user's kill -9
        launcher.wait()
        end = time.monotonic() + 3
        while time.monotonic() < end and any(_alive(w) for w in workers):
            time.sleep(0.02)
        assert not any(_alive(w) for w in workers), "a worker outlived its launcher"
        after = _lines(out, "results*.jsonl")
        assert after <= at_kill + len(workers), "the workers went on appending"
        time.sleep(1.0)
        assert _lines(out, "results*.jsonl") == after, "something kept appending"
        assert after < len(want), "the kill came after the run"
    finally:  # whatever the outcome, nothing this test started outlives it
        for pid in [launcher.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    recs = _records(out)
    keys = [(r["item"], r["task"]) for r in recs]
    assert len(keys) == len(set(keys)) == len(want), "not exactly one line per record"
    assert set(keys) == set(want)
    for r in recs:
        for name, value in want[(r["item"], r["task"])]["metrics"].items():
            np.testing.assert_allclose(r["metrics"][name], value, atol=1e-5)
    _no_temp_left(out)
    assert json.loads((out / ".mmattr").read_text())["state"] == "complete"


# -- audit -----------------------------------------------------------------------------------

AUDIT = ["--model", "demo", "--explain-budget", "3", "--regions", "9"]


@pytest.fixture(scope="module")
def audit_set(tmp_path_factory):
    """A small set, and a reference audit of it."""
    root = tmp_path_factory.mktemp("audit-kill")
    data = root / "data"
    export_dataset(data, n_scenes=24, seed=8, size=40, n_objects=(1, 1))
    env = {"MMATTR_CACHE": str(root / "ref-cache")}
    r = runner.invoke(app, ["audit", str(data), "--out", str(root / "ref"), *AUDIT], env=env)
    assert r.exit_code == 0, r.output
    return data, json.loads((root / "ref" / "audit.json").read_text())


def _explanation_records(out: Path) -> list[dict]:
    recs = []
    for p in sorted(out.glob("explanations*.jsonl")):
        recs += [json.loads(x) for x in p.read_text().splitlines()]
    return recs


def _audit_kill_and_rerun(audit_set, tmp_path: Path, phase: str, delay: float) -> bool:
    data, ref = audit_set
    out, cache = tmp_path / "out", tmp_path / "cache"
    env = {"MMATTR_CACHE": str(cache)}
    argv = ["audit", str(data), "--out", str(out), *AUDIT]
    ready = {"encode": lambda: any(cache.rglob("*.npy")),
             "explain": lambda: _lines(out, "explanations*.jsonl") >= 1,
             "outputs": lambda: (out / "reliability.png").exists()}[phase]
    landed = _kill_when(argv, env, ready, delay)
    r = runner.invoke(app, argv, env=env)
    assert r.exit_code == 0, r.output
    got = json.loads((out / "audit.json").read_text())
    assert got["accuracy"] == ref["accuracy"] and got["confusion"] == ref["confusion"]
    assert [e["image"] for e in got["explanations"]] == [e["image"] for e in ref["explanations"]]
    recs = _explanation_records(out)
    keys = [(r["item"], r["digest"], r["task"]) for r in recs]
    assert len(keys) == len(set(keys)), "an explanation was written twice"
    assert len(keys) == 3 * len(ref["explanations"])
    _no_temp_left(out)
    marker = json.loads((out / ".mmattr").read_text())
    assert marker["state"] == "complete"
    assert set(marker["files"]) >= {"report.html", "audit.json", "predictions.csv"}
    return landed


@needs_demo
def test_audit_killed_while_explaining(audit_set, tmp_path):
    assert _audit_kill_and_rerun(audit_set, tmp_path, "explain", 0.05)


@needs_demo
@pytest.mark.slow
@pytest.mark.parametrize("phase", ["encode", "explain", "outputs"])
def test_audit_killed_at_random_points(audit_set, tmp_path, phase):
    rng = random.Random(f"issue21-{phase}")
    landed = 0
    for k in range(3):
        case = tmp_path / f"k{k}"
        case.mkdir()
        # the outputs take tens of milliseconds to write: kill within them
        wait = rng.uniform(0.0, 0.3 if phase != "outputs" else 0.03)
        landed += _audit_kill_and_rerun(audit_set, case, phase, wait)
    assert landed >= 2


# -- represent -------------------------------------------------------------------------------

DIAMOND = f"torch:{REPO / 'tests' / 'representative' / 'toy_models.py'}:build_diamond"


@pytest.fixture(scope="module")
def diamond_set(tmp_path_factory):
    from PIL import Image

    sys.path.insert(0, str(REPO / "tests" / "representative"))
    from ri_testlib import colour_image

    root = tmp_path_factory.mktemp("represent-kill") / "data"
    (root / "images").mkdir(parents=True)
    ts = np.linspace(-1.45, 1.35, 8)
    lines = []
    for i, (a, b) in enumerate((a, b) for a in ts for b in ts):
        r, g = (int(round(255 * (t / 4 + 0.5))) for t in (a, b))
        Image.fromarray(colour_image(r, g)).save(root / "images" / f"{i:03d}.png")
        lines.append(json.dumps({"image": f"images/{i:03d}.png",
                                 "label": "inside" if abs(a) + abs(b) < 1 else "outside"}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _represent_kill_and_rerun(data: Path, tmp_path: Path, delay: float,
                              phase: str = "interpretations") -> bool:
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["represent", str(data), "--model", DIAMOND, "--layer", "psi", "--boundaries", "32",
            "-k", "4", "--out", str(out), "--cache-dir", str(cache)]
    ready = {"fit": lambda: any(cache.rglob("*.safetensors")),
             "interpretations": lambda: any(out.glob("rep00_*"))}[phase]
    landed = _kill_when(argv, {}, ready, delay)
    r = runner.invoke(app, argv)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["interpretations"]) == 4
    for row in summary["interpretations"]:
        folder = out / row["folder"]
        assert sorted(p.name for p in folder.iterdir()) == ["gallery.png",
                                                           "interpretation.json", "overlay.png"]
        assert json.loads((folder / "interpretation.json").read_text())["fit_key"] == \
            summary["fit_key"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".mmattr", "summary.json", *(r["folder"] for r in summary["interpretations"])])
    _no_temp_left(out)
    return landed


def test_represent_killed_between_interpretations(diamond_set, tmp_path):
    assert _represent_kill_and_rerun(diamond_set, tmp_path, 0.0)


@pytest.mark.slow
def test_represent_killed_at_random_points(diamond_set, tmp_path):
    rng = random.Random("issue21-represent")
    landed = 0
    for k in range(6):  # the whole run takes a fraction of a second: kill within milliseconds
        case = tmp_path / f"k{k}"
        case.mkdir()
        landed += _represent_kill_and_rerun(diamond_set, case, rng.uniform(0.0, 0.01),
                                            ("fit", "interpretations")[k % 2])
    assert landed >= 3
