"""An audit end to end on a small synthetic set: files, numbers, resume, cache, bad input,
the CLI, and the report in a real headless browser."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from mmattr.cli.main import app

SECTIONS = ("findings", "summary", "calibration", "confusion", "slices", "metadata", "mistakes", "label-issues",
            "hook", "skipped", "settings")


def test_outputs_and_numbers_agree(audited, shapes_set):
    result, _ = audited
    out = result.out
    for name in ("report.html", "audit.json", "predictions.csv", "slices.csv",
                 "reliability.png", "confusion.png", "class_accuracy.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "audit.json").read_text())
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == 72 == summary["accuracy"]["n"]
    acc = np.mean([int(r["correct"]) for r in rows])
    assert summary["accuracy"]["value"] == pytest.approx(acc)
    assert all(r["correct"] == str(int(r["label"] == r["predicted"])) for r in rows)
    assert {r["background"] for r in rows} <= {"noise", "stripes", "gradient", "checker"}
    # the corrupt image is skipped, counted and listed, not the end of the run
    assert [s["image"] for s in summary["skipped"]] == ["images/broken.png"]
    assert summary["mmattr_version"] and summary["settings"]["explain_budget"] == 2
    assert summary["calibration"]["ece"] >= 0 and len(summary["confusion"]) == 36
    assert len(summary["explanations"]) == 2
    for e in summary["explanations"]:
        assert {"predicted", "true"} <= set(e)
        assert 0.0 <= e["predicted"]["object_share"] <= 1.0  # the shapes set has masks
    assert summary["sections"] == [{"id": "hook", "title": "Hooked section",
                                    "how": "How to read: a test section."}]
    html = (out / "report.html").read_text()
    assert "<p id='hook-body'>" in html and "72 images" in html
    assert "http://" not in html and "https://" not in html and "src=\"data:image/png;base64," in html


def test_rerun_reads_the_cache_and_resumes(audited, shapes_set):
    import mmattr

    result, kwargs = audited
    before = (result.out / "explanations.jsonl").read_text()
    again = mmattr.audit(shapes_set, "demo", out=result.out, **kwargs)
    assert again.summary["encoding"]["encoded"] == 0
    assert again.summary["encoding"]["from_cache"] == 72
    # explanations were on disk: nothing redone, nothing duplicated
    assert (result.out / "explanations.jsonl").read_text() == before
    assert again.summary["accuracy"] == result.summary["accuracy"]


def test_report_renders_in_chromium(audited, tmp_path, chromium):
    result, _ = audited
    shot = tmp_path / "report.png"
    page = chromium(result.report, shot)
    assert page["console"] == [], page["console"]
    attrs = page["attrs"]
    assert "data-errors" not in attrs
    total, ok = int(attrs["data-images-total"]), int(attrs["data-images-ok"])
    assert total >= 4 and ok == total, (ok, total)  # 3 plots, then thumbnails
    for section in SECTIONS:
        assert f'data-section="{section}"' in page["dom"], section
    assert page["screenshot"]


def test_the_browser_check_catches_a_broken_page(tmp_path, chromium):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="data:image/png;base64,AAAA"><script>nope();</script>'
                   '<script>window.addEventListener("load",function(){var i=document.images;'
                   'document.body.setAttribute("data-images-ok",String([].filter.call(i,'
                   'function(x){return x.naturalWidth>0}).length))})</script></body></html>')
    page = chromium(bad)
    assert any("nope" in line for line in page["console"])
    assert page["attrs"]["data-images-ok"] == "0"


def test_cli_audit_and_bad_input(shapes_set, tmp_path, monkeypatch):
    monkeypatch.setenv("MMATTR_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(app, ["audit", str(shapes_set), "--out", str(out), "--explain-budget", "0"])
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output and (out / "report.html").is_file()

    def fails(args, text):
        r = runner.invoke(app, ["audit", *args])
        assert r.exit_code == 2, r.output
        assert text in r.output and "Traceback" not in r.output
        return r

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.jsonl").write_text("\n")
    fails([str(empty), "--out", str(tmp_path / "o1")], "lists no images")
    one = tmp_path / "one.txt"
    one.write_text("a red circle\n")
    fails([str(shapes_set), "--vocabulary", str(one), "--out", str(tmp_path / "o2")], "at least two")
    two = tmp_path / "two.txt"
    two.write_text("a red circle\na blue square\n")
    fails([str(shapes_set), "--vocabulary", str(two), "--out", str(tmp_path / "o3")],
          "not in the vocabulary")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    fails([str(shapes_set), "--out", str(busy)], "mmattr did not write")
    assert (busy / "notes.txt").read_text() == "mine" and os.listdir(busy) == ["notes.txt"]
    fails([str(tmp_path / "nope"), "--out", str(tmp_path / "o4")], "not found")


def test_imagefolder_layout(tmp_path, monkeypatch):
    """One subfolder per class, as torchvision reads it; labels are the folder names."""
    from PIL import Image

    from mmattr.datasets.shapes import render_scene

    monkeypatch.setenv("MMATTR_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "folders"
    rng = np.random.default_rng(0)
    for i in range(24):
        scene = render_scene(rng, size=64, n_objects=1)
        d = root / scene.labels[0]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene.image).save(d / f"{i}.png")
    import mmattr

    r = mmattr.audit(root, "demo", out=tmp_path / "out", explain_budget=0)
    assert r.summary["dataset"]["kind"] == "imagefolder" and r.summary["accuracy"]["n"] == 24
    assert r.summary["occlusion"] is None  # no masks: no occlusion test


def test_reference_model_checks_the_labels(shapes_set, tmp_path, monkeypatch):
    """`--reference-model` adds a second model's vote to the label check; its name is in the
    settings and the label section says which check ran. A bad spec is one line, exit 2."""
    monkeypatch.setenv("MMATTR_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    out = tmp_path / "ref"
    res = runner.invoke(app, ["audit", str(shapes_set), "--out", str(out), "--explain-budget",
                              "0", "--reference-model", "demo-classifier"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "audit.json").read_text())
    assert summary["settings"]["reference_model"] == "demo-classifier"
    assert "reference model" in summary["label_issues"]["method"]
    assert summary["findings"] and summary["findings"][0]["rank"] == 1
    bad = runner.invoke(app, ["audit", str(shapes_set), "--out", str(tmp_path / "bad"),
                              "--reference-model", "nope:thing"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
