"""`mmattr audit --num-processes 2`: encoding and explanations sharded over two CPU processes
(accelerate, gloo) give the same numbers as one process, and no explanation twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmattr.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_processes_agree_with_one(shapes_set, tmp_path):
    pytest.importorskip("accelerate")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MMATTR_CACHE": str(tmp_path / "cache")}
    common = ["audit", str(shapes_set), "--explain-budget", "3", "--regions", "9"]
    one = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "one")], env=env)
    assert one.exit_code == 0, one.output
    proc = subprocess.run([sys.executable, "-m", "mmattr", *common, "--out", str(tmp_path / "two"),
                           "--num-processes", "2"], env=env, capture_output=True, text=True,
                          timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = json.loads((tmp_path / "one" / "audit.json").read_text())
    b = json.loads((tmp_path / "two" / "audit.json").read_text())
    assert a["accuracy"] == b["accuracy"] and a["confusion"] == b["confusion"]
    assert [s["images"] for s in a["slices"]] == [s["images"] for s in b["slices"]]
    records = []
    for f in sorted((tmp_path / "two").glob("explanations*.jsonl")):
        records += [json.loads(line) for line in f.read_text().splitlines()]
    keys = [(r["item"], r["task"]) for r in records]
    from mmattr.audit.report import WHY_TASKS

    assert len(keys) == len(set(keys)) == len(WHY_TASKS) * len(a["explanations"])
