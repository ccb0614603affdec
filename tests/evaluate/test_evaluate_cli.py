"""`mmattr evaluate` end to end on a tiny exported dataset with a toy colour model."""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import toy_colour_model  # noqa: F401  (registers the toycolour model)
from mmattr.cli.main import app
from mmattr.datasets.shapes import export_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    export_dataset(root, n_scenes=3, seed=5, size=32, n_objects=(1, 2))
    return root


ARGS = ["--model", "toycolour", "--division", "grid", "--regions", "9", "--steps", "10",
        "--metrics", "insertion,deletion,insertion_region,highest_confidence,pointing,"
                     "energy_pointing,iou,average_drop,road_morf,occlusion"]


def test_evaluate_writes_everything_and_resumes(dataset, tmp_path):
    out = tmp_path / "ev"
    r = runner.invoke(app, ["evaluate", str(dataset), "--out", str(out), *ARGS])
    assert r.exit_code == 0, r.output
    lines = (dataset / "manifest.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == len(lines)
    m = records[0]["metrics"]
    for col in ("insertion", "deletion", "insertion_region", "highest_confidence@25", "pointing",
                "energy_pointing", "iou", "average_drop", "road_morf", "occlusion_drop_s",
                "occlusion_road_increase_b"):
        assert np.isfinite(m[col]), col
    assert len(m["insertion_curve"]) == 11
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == len(lines) and rows[0]["method"] == "smdl"
    summary = (out / "summary.md").read_text()
    assert "| smdl |" in summary and "insertion ↑" in summary and "deletion ↓" in summary
    assert (out / "curves.png").stat().st_size > 0 and (out / "bars.png").stat().st_size > 0

    before = (out / "results.jsonl").read_text()
    r = runner.invoke(app, ["evaluate", str(dataset), "--out", str(out), *ARGS])
    assert r.exit_code == 0, r.output
    assert f"0 new, {len(lines)} already done" in r.output
    assert (out / "results.jsonl").read_text() == before


def test_resume_after_interruption_and_partial_line(dataset, tmp_path):
    out = tmp_path / "ev"
    r = runner.invoke(app, ["evaluate", str(dataset), "--out", str(out), "--limit", "1", *ARGS])
    assert r.exit_code == 0, r.output
    # a kill mid-write leaves half a line: it is cut and that item redone
    with open(out / "results.jsonl", "a") as f:
        f.write('{"image": "images/00001.png", "te')
    r = runner.invoke(app, ["evaluate", str(dataset), "--out", str(out), *ARGS])
    assert r.exit_code == 0, r.output
    n = len((dataset / "manifest.jsonl").read_text().splitlines())
    assert f"{n - 1} new, 1 already done" in r.output
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len({(x["image"], x["text"], x["method"]) for x in records}) == len(records) == n


def test_interrupt_keeps_finished_records(dataset, tmp_path, monkeypatch):
    import mmattr.api

    out = tmp_path / "ev"
    calls = {"n": 0}
    real = mmattr.api.explain

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(mmattr.api, "explain", flaky)
    r = runner.invoke(app, ["evaluate", str(dataset), "--out", str(out), *ARGS])
    assert r.exit_code == 130
    assert len((out / "results.jsonl").read_text().splitlines()) == 1


def test_other_settings_refused_in_same_out(dataset, tmp_path):
    out = tmp_path / "ev"
    assert runner.invoke(app, ["evaluate", str(dataset), "--out", str(out), "--limit", "1",
                               *ARGS]).exit_code == 0
    args = [a if a != "10" else "5" for a in ARGS]
    r = runner.invoke(app, ["evaluate", str(dataset), "--out", str(out), *args])
    assert r.exit_code == 2 and "other settings (" in r.output and "steps" in r.output


def test_metric_needing_mask_is_skipped_with_note(tmp_path):
    export_dataset(tmp_path / "d", n_scenes=1, seed=3, size=32, n_objects=(1, 1))
    lines = [json.loads(x) for x in (tmp_path / "d" / "manifest.jsonl").read_text().splitlines()]
    for x in lines:
        x.pop("mask")
    (tmp_path / "d" / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = runner.invoke(app, ["evaluate", str(tmp_path / "d"), "--out", str(tmp_path / "o"),
                            "--model", "toycolour", "--division", "grid", "--regions", "4",
                            "--metrics", "insertion_region,pointing"])
    assert r.exit_code == 0, r.output
    assert "pointing skipped" in r.output
    rec = json.loads((tmp_path / "o" / "results.jsonl").read_text())
    assert "pointing" not in rec["metrics"] and rec["skipped"]["pointing"]


@pytest.mark.parametrize("setup,args,message", [
    ("none", [], "dataset folder not found"),
    ("empty", [], "no manifest.jsonl"),
    ("badline", [], "manifest.jsonl:2: not valid JSON"),
    ("notobject", [], "manifest.jsonl:1: expected an object with an 'image' path"),
    ("noimage", [], "image file not found"),
    ("ok", ["--methods", "smld"], "did you mean smdl"),
    ("ok", ["--metrics", "insertoin"], "did you mean insertion"),
    ("ok", ["--fill", "pink"], "unknown fill"),
])
def test_bad_input_one_line(tmp_path, dataset, setup, args, message):
    folder = tmp_path / "d"
    if setup == "ok":
        folder = dataset
    elif setup != "none":
        folder.mkdir()
        if setup == "badline":
            (folder / "a.png").write_bytes(b"")
            (folder / "manifest.jsonl").write_text('{"image": "a.png", "text": "x"}\n{oops\n')
        elif setup == "notobject":
            (folder / "manifest.jsonl").write_text('["a.png"]\n')
        elif setup == "noimage":
            (folder / "manifest.jsonl").write_text('{"image": "a.png", "text": "x"}\n')
    r = runner.invoke(app, ["evaluate", str(folder), "--out", str(tmp_path / "o"),
                            "--model", "toycolour", *args])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    assert len([x for x in r.output.strip().splitlines() if x.strip()]) == 1
