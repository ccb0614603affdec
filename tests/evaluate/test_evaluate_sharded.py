"""`mmattr evaluate --num-processes 2`: images sharded over two CPU processes (accelerate, gloo)
resume a partial run, give the same records as one process, and a rerun finds everything done."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmattr.cli.main import app
from mmattr.datasets.shapes import export_dataset
from mmattr.demo_model import DEMO_MODEL_DIR
from mmattr.distributed import without_option
from mmattr.evaluate import read_results

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_without_option_drops_the_flag_and_its_value():
    argv = ["evaluate", "data", "--num-processes", "2", "--out", "x", "--num-processes=3", "-m",
            "smdl"]
    assert without_option(argv, "--num-processes") == ["evaluate", "data", "--out", "x", "-m",
                                                       "smdl"]


def _key(r: dict) -> tuple:
    return r["image"], r["text"], r["method"]


@pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").is_file(), reason="no demo model")
def test_two_processes_shard_images_and_agree_with_one(tmp_path):
    pytest.importorskip("accelerate")
    data = tmp_path / "data"
    export_dataset(data, n_scenes=3, seed=11, size=64, n_objects=(1, 2))
    common = ["evaluate", str(data), "--methods", "smdl,gradcam", "--metrics",
              "insertion,deletion,pointing", "--model", "demo", "--division", "grid",
              "--regions", "9", "--steps", "5", "--no-plots"]

    one = runner.invoke(app, [*common, "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output

    # A partial single-process run first: the sharded run resumes it and shares what is left.
    part = runner.invoke(app, [*common, "--limit", "1", "--out", str(tmp_path / "two")])
    assert part.exit_code == 0, part.output
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "mmattr", *common, "--out", str(tmp_path / "two"),
           "--num-processes", "2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Each process appended to its own file; the main one wrote the reports over both.
    two_dir = tmp_path / "two"
    assert (two_dir / "results.jsonl").is_file() and (two_dir / "results.rank1.jsonl").is_file()
    assert (two_dir / "summary.md").is_file() and (two_dir / "results.csv").is_file()

    a = {_key(r): r for r in read_results(tmp_path / "one")}
    b = {_key(r): r for r in read_results(two_dir)}
    assert set(a) == set(b) and len(a) == 2 * sum(1 for _ in open(data / "manifest.jsonl"))
    assert len(read_results(two_dir)) == len(b)  # nothing done twice
    for k in a:
        assert a[k]["n_regions"] == b[k]["n_regions"]
        for name, value in a[k]["metrics"].items():
            np.testing.assert_allclose(b[k]["metrics"][name], value, atol=1e-5, err_msg=str(k))

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                           cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 new" in again.stderr
    assert len(read_results(two_dir)) == len(b)


def test_bad_input_under_two_processes_is_one_line(tmp_path):
    """Every process fails the same way: one line, exit 2, no launcher traceback."""
    pytest.importorskip("accelerate")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "mmattr", "evaluate", str(tmp_path / "missing"),
                           "--model", "demo", "--num-processes", "2"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: dataset folder not found: {tmp_path / 'missing'}"], proc.stderr
