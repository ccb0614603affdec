"""Representative Interpretations in the audit report (`mmattr audit --represent`)."""

import json

import pytest
from typer.testing import CliRunner

from mmattr.cli.main import app
from mmattr.datasets.shapes import export_dataset
from mmattr.demo_model.zoo import MODEL_DIRS

pytestmark = pytest.mark.skipif(not (MODEL_DIRS["demo-classifier"] / "model.safetensors").is_file(),
                                reason="demo-classifier not present")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ri_audit") / "data"
    export_dataset(root, n_scenes=90, seed=31, size=96, n_objects=(1, 1))
    return root


def test_audit_report_gains_interpretations_per_class(dataset, tmp_path):
    out = tmp_path / "audit"
    res = CliRunner().invoke(app, ["audit", str(dataset), "--model", "demo-classifier", "--out",
                                   str(out), "--explain-budget", "0", "--represent"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "audit.json").read_text())
    (section,) = [s for s in summary["sections"] if s["id"] == "representative"]
    assert section["applies"] is True
    done = [r for r in section["interpretations"] if "error" not in r]
    assert done, section["interpretations"]
    for r in done:
        # a class group's interpretation explains an image the model puts in that class,
        # and its decision region covers at least that image's neighbours
        assert r["group"] == f"class {r['predicted']}"
        assert r["coverage"] >= 1 and r["accuracy_model"] >= 0.5
    html = (out / "report.html").read_text()
    assert "Representative interpretations" in html and html.count("alt='interpretation'") == len(done)


def test_section_reports_why_when_ri_does_not_apply(dataset, tmp_path, monkeypatch):
    import mmattr.representative as rep
    from mmattr.errors import ModelError

    def refuse(*_a, **_k):
        raise ModelError("the head is linear in every readable layer")

    monkeypatch.setattr(rep, "interpretations_for_groups", refuse)
    out = tmp_path / "audit"
    res = CliRunner().invoke(app, ["audit", str(dataset), "--model", "demo-classifier", "--out",
                                   str(out), "--explain-budget", "0", "--represent"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "audit.json").read_text())
    (section,) = summary["sections"]
    assert section["applies"] is False and "linear" in section["reason"]
