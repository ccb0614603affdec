"""`mmattr evaluate` on manifest lines that explain their text (``"explain": "text"``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mmattr import explain
from mmattr.cli.main import app
from mmattr.datasets.two_objects import export_captions
from mmattr.metrics.words import keywords_first

runner = CliRunner()
ARGS = ["--model", "demo", "--methods", "smdl,occlusion,occlusion+ours,gradcam",
        "--metrics", "insertion,deletion,keywords,pointing"]


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    root = tmp_path_factory.mktemp("captions")
    export_captions(root, n=2, size=96, renderers=("shapes",))
    return root


def test_text_lines_are_evaluated_and_resume(captions, tmp_path, demo):
    out = tmp_path / "ev"
    r = runner.invoke(app, ["evaluate", str(captions), "--out", str(out), *ARGS])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in (captions / "manifest.jsonl").read_text().splitlines()]
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 4 * len(lines)
    by = {(rec["image"], rec["method"]): rec for rec in records}
    for line in lines:
        assert line["explain"] == "text"
        image = np.asarray(Image.open(captions / line["image"]).convert("RGB"))
        for method in ("smdl", "occlusion"):
            rec = by[(line["image"], method)]
            assert rec["explain"] == "text" and rec["n_regions"] == len(line["text"].split())
            m = rec["metrics"]
            # the same explanation from the API: the metrics read its own curves and order
            e = explain(image, text=line["text"], model=demo, explain="text", method=method)
            assert m["insertion"] == pytest.approx(e.insertion_auc, abs=1e-6)
            assert m["deletion"] == pytest.approx(e.deletion_auc, abs=1e-6)
            assert m["insertion_curve"] == pytest.approx(e.insertion_curve, abs=1e-6)
            labels = [row["label"] for row in e.elements]
            top, share = keywords_first(labels, e.order, line["keywords"])
            assert m["keywords_top"] == top and m["keywords_share"] == share
            assert m["keywords_top"] in (0.0, 1.0) and 0.0 <= m["keywords_share"] <= 1.0
            # a metric of image explanations is skipped with its reason, the rest still run
            assert "pointing" in rec["skipped"] and "image" in rec["skipped"]["pointing"]
        # "w/ ours" on a text: SMDL over the same words, whatever the baseline
        ours = by[(line["image"], "smdl+prior:occlusion")]["metrics"]
        assert ours["insertion"] == pytest.approx(by[(line["image"], "smdl")]["metrics"]["insertion"])
        # an image-only method is recorded as skipped, with the reason
        cam = by[(line["image"], "gradcam")]
        assert cam["metrics"] == {} and cam["skipped"] == {"method": "gradcam does not explain text"}
    summary = (out / "summary.md").read_text()
    assert "keywords_top ↑" in summary and "| smdl |" in summary

    before = (out / "results.jsonl").read_text()
    r = runner.invoke(app, ["evaluate", str(captions), "--out", str(out), *ARGS])
    assert r.exit_code == 0, r.output
    assert f"0 new, {4 * len(lines)} already done" in r.output
    assert (out / "results.jsonl").read_text() == before


def test_a_line_without_keywords_skips_that_metric(captions, tmp_path):
    root = tmp_path / "nokw"
    (root / "images").mkdir(parents=True)
    line = json.loads((captions / "manifest.jsonl").read_text().splitlines()[0])
    (root / line["image"]).write_bytes((captions / line["image"]).read_bytes())
    del line["keywords"]
    (root / "manifest.jsonl").write_text(json.dumps(line) + "\n")
    from mmattr.evaluate import evaluate_dataset

    summary = evaluate_dataset(root, "smdl", "insertion,keywords", model="demo",
                               out=tmp_path / "ev", plots=False)
    (rec,) = summary.records
    assert "insertion" in rec["metrics"] and rec["skipped"]["keywords"] == "the line names no keywords"
