"""`mmattr represent` on the shipped demo classifier (the paper's setting: a CNN with ReLU
stages after ψ), on a small synthetic dataset."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mmattr.cli.main import app
from mmattr.datasets.shapes import export_dataset
from mmattr.demo_model.zoo import MODEL_DIRS

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (MODEL_DIRS["demo-classifier"] / "model.safetensors").is_file(),
                                 reason="demo-classifier weights not built")]


def test_represent_runs_on_the_demo_classifier(tmp_path):
    data = tmp_path / "shapes"
    export_dataset(data, n_scenes=144, seed=5, size=96, n_objects=(1, 1))
    out = tmp_path / "ri"
    res = CliRunner().invoke(app, ["represent", str(data), "--model", "demo-classifier",
                                   "--out", str(out), "-k", "2", "--cache-dir",
                                   str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert ".encoder.stages." in summary["layer"]  # a stage with stages after it
    for row in summary["interpretations"]:
        assert row["coverage"] >= 1 and row["accuracy_model"] >= 0.5
    # the last stage is followed by pooling and one linear layer: refused in one line
    res = CliRunner().invoke(app, ["represent", str(data), "--model", "demo-classifier",
                                   "--layer", "regnet.encoder.stages.3", "--out",
                                   str(tmp_path / "o2"), "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 2 and "linear in ψ" in res.output
