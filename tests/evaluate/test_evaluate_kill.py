"""Kill suite: SIGKILL `mmattr evaluate` at random points, rerun, and check that nothing was
lost and nothing duplicated.

A kill point is a phase plus a random delay: right after the ``.mmattr`` marker appears (before or while
the first record is written; in a folder that has one, early in the run), after a random number of new records reached the disk, or after
the last one (while the reports are written), so kills land in every phase however fast the
machine is. The default run kills at 3 points in forked children of this process (no interpreter
start per kill: seconds, not minutes); ``-m slow`` at 24 points, the first chain in real
``python`` subprocesses started as a user would."""

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

import toy_colour_model  # noqa: F401  (registers the toycolour model in this process)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kill"))
from killlib import run_forked  # noqa: E402  (tests/kill: what the kill suites share)
from mmattr._io import is_temp
from mmattr.cli.main import app
from mmattr.datasets.shapes import export_dataset
from mmattr.evaluate import read_results

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("toy_colour_model.py")
ARGS = ["--model", "toycolour", "--division", "grid", "--regions", "4", "--steps", "5",
        "--methods", "smdl,saliency", "--metrics", "insertion,deletion,pointing,iou"]


def _lines_on_disk(out: Path) -> int:
    n = 0
    for p in out.glob("results*.jsonl"):
        try:
            n += p.read_bytes().count(b"\n")
        except OSError:
            pass
    return n


class _Proc:
    """A running `mmattr evaluate`: a forked child of this process or a real subprocess."""

    def __init__(self, data: Path, out: Path, real: bool) -> None:
        argv = ["evaluate", str(data), "--out", str(out), *ARGS]
        if real:
            env = {**os.environ, "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": os.pathsep.join([str(ROOT), str(SCRIPT.parent)])}
            self.p = subprocess.Popen([sys.executable, str(SCRIPT), *argv], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            self.p = multiprocessing.get_context("fork").Process(target=run_forked, args=(argv,))
            self.p.start()

    def alive(self) -> bool:
        return self.p.poll() is None if isinstance(self.p, subprocess.Popen) else self.p.is_alive()

    def kill(self) -> None:
        try:
            os.kill(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:  # ended (and reaped) already
            pass
        self.p.wait() if isinstance(self.p, subprocess.Popen) else self.p.join()


def _kill_at(proc: _Proc, out: Path, phase: str, new: int, delay: float) -> bool:
    """SIGKILL at the kill point; False if the run ended before it."""
    base = _lines_on_disk(out)
    deadline = time.monotonic() + 180
    # "marker" in a folder that has one already: a kill early in the run, after `delay` alone
    marked = (out / ".mmattr").is_file()
    while proc.alive() and time.monotonic() < deadline:
        if phase == "marker" and (marked or (out / ".mmattr").is_file()):
            break
        if phase != "marker" and _lines_on_disk(out) >= base + new:
            break
        time.sleep(0.002)
    end = time.monotonic() + delay
    while proc.alive() and time.monotonic() < end:
        time.sleep(0.002)
    if not proc.alive():
        proc.kill()  # reap
        return False
    proc.kill()
    return True


def _check_against(out: Path, reference: dict) -> None:
    keys = []
    for p in sorted(out.glob("results*.jsonl")):
        for line in p.read_text().splitlines():
            rec = json.loads(line)  # every line whole: partial ones were cut by the rerun
            keys.append((rec["item"], rec["task"]))
    assert len(keys) == len(set(keys)), "a record was written twice"
    got = {(r["item"], r["task"]): r for r in read_results(out)}
    assert set(got) == set(reference), "a record was lost"
    for k, ref in reference.items():
        for name, value in ref["metrics"].items():
            np.testing.assert_allclose(got[k]["metrics"][name], value, atol=1e-6, err_msg=str(k))
    assert not [p.name for p in out.iterdir() if is_temp(p.name)], "temporary files left"
    marker = json.loads((out / ".mmattr").read_text())
    assert marker["command"] == "evaluate" and marker["state"] == "complete"
    assert sorted(p.name for p in out.iterdir()) == sorted([".mmattr", *marker["files"],
                                                            *[p.name for p in out.glob("results*.jsonl")]])
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == len(reference) + 1
    assert f"{len(reference)} records" in (out / "summary.md").read_text()
    assert (out / "curves.png").stat().st_size > 0 and (out / "bars.png").stat().st_size > 0


def _suite(tmp_path: Path, chains: list[list[str]], seed: int, real_chains: int = 0,
           scenes: int = 4) -> int:
    data = tmp_path / "data"
    export_dataset(data, n_scenes=scenes, seed=9, size=32, n_objects=(1, 2))
    r = CliRunner().invoke(app, ["evaluate", str(data), "--out", str(tmp_path / "ref"), *ARGS])
    assert r.exit_code == 0, r.output
    reference = {(x["item"], x["task"]): x for x in read_results(tmp_path / "ref")}
    total = len(reference)
    rng = random.Random(seed)
    killed = 0
    for c, phases in enumerate(chains):
        out = tmp_path / f"run{c}"
        for phase in phases:
            left = total - len(read_results(out)) if out.is_dir() else total
            if left == 0 and phase == "records":
                phase = "reports"  # all done: the rerun only writes its reports
            new = {"marker": 0, "records": rng.randint(1, max(1, left - 1)),
                   "reports": left}[phase]
            fresh = not (out / ".mmattr").is_file()
            delay = rng.uniform(0.0, 0.05 if phase == "marker" and fresh else 0.3)
            t = time.monotonic()
            landed = _kill_at(_Proc(data, out, real=c < real_chains), out, phase, new, delay)
            killed += landed
            print(f"chain {c}: {phase} +{new} records +{delay:.2f} s: "
                  f"{'killed' if landed else 'ended first'} after {time.monotonic() - t:.1f} s, "
                  f"{_lines_on_disk(out)} lines on disk")
        r = CliRunner().invoke(app, ["evaluate", str(data), "--out", str(out), *ARGS])
        assert r.exit_code == 0, r.output
        assert "already done" in r.output
        _check_against(out, reference)
    return killed


def test_sigkill_then_rerun_loses_and_duplicates_nothing(tmp_path):
    seed = int(os.environ.get("MMATTR_KILL_SEED", "20261123"))
    killed = _suite(tmp_path, [["marker", "records", "reports"]], seed)
    assert killed >= 2, f"only {killed} of 3 kills landed before the run ended"


@pytest.mark.slow
def test_sigkill_at_24_random_points(tmp_path):
    seed = int(os.environ.get("MMATTR_KILL_SEED", str(time.time_ns() % 10**6)))
    print(f"kill seed {seed} (MMATTR_KILL_SEED={seed} to repeat)")
    rng = random.Random(seed)
    chains = [["marker"] + [rng.choice(["records", "records", "reports"]) for _ in range(3)]
              for _ in range(6)]
    killed = _suite(tmp_path, chains, seed, real_chains=1, scenes=10)
    assert killed >= 20, f"only {killed} of 24 kills landed before the run ended"
