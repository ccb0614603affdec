"""`mmattr evaluate` on the shared runner: a failed run leaves nothing, --overwrite, records
keyed by the whole manifest line, unreadable images skipped and listed, ImageFolder input,
plot labels; and a fuzz suite of bad inputs (one line, exit 2, output location untouched)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mmattr.cli.main import app
from mmattr.datasets.shapes import export_dataset
from mmattr.evaluate import clipped_errors, curve_axis_labels, read_results

import toy_colour_model  # noqa: F401  (registers the toycolour model)

runner = CliRunner()
ARGS = ["--model", "toycolour", "--division", "grid", "--regions", "4", "--steps", "5",
        "--metrics", "insertion,deletion,pointing,iou", "--no-plots"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    export_dataset(root, n_scenes=3, seed=5, size=32, n_objects=(1, 1))
    return root


def _lines(root: Path) -> list[dict]:
    return [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]


def _copy(dataset: Path, dst: Path, lines: list[dict] | None = None) -> Path:
    import shutil

    shutil.copytree(dataset, dst)
    if lines is not None:
        (dst / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return dst


def _listing(path: Path) -> dict:
    if not path.exists():
        return {"<absent>": None}
    if path.is_file():
        return {"<file>": path.read_bytes()}
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(path.rglob("*"))}


def test_failed_run_leaves_nothing_and_the_corrected_one_runs(dataset, tmp_path):
    out = tmp_path / "ev"
    bad = [a if a != "toycolour" else "nosuchfamily:x" for a in ARGS]
    r = runner.invoke(app, ["evaluate", str(dataset), "--out", str(out), *bad])
    assert r.exit_code == 2 and "nosuchfamily" in r.output
    assert not out.exists()
    r = runner.invoke(app, ["evaluate", str(dataset), "--out", str(out), *ARGS])
    assert r.exit_code == 0, r.output
    assert len(read_results(out)) == len(_lines(dataset))


def test_overwrite_starts_again_and_keeps_other_files(dataset, tmp_path):
    out = tmp_path / "ev"
    assert runner.invoke(app, ["evaluate", str(dataset), "--out", str(out), "--limit", "1",
                               *ARGS]).exit_code == 0
    (out / "my-notes.txt").write_text("keep")
    other = [a if a != "5" else "3" for a in ARGS]
    r = runner.invoke(app, ["evaluate", str(dataset), "--out", str(out), *other])
    assert r.exit_code == 2 and "other settings (" in r.output and "--overwrite" in r.output
    r = runner.invoke(app, ["evaluate", str(dataset), "--out", str(out), "--overwrite", *other])
    assert r.exit_code == 0, r.output
    n = len(_lines(dataset))
    assert f"{n} new, 0 already done" in r.output
    recs = read_results(out)
    assert len(recs) == n and all(len(x["metrics"]["insertion_curve"]) == 4 for x in recs)
    assert json.loads((out / ".mmattr").read_text())["settings"]["steps"] == 3
    assert (out / "my-notes.txt").read_text() == "keep"


def test_lines_differing_only_in_mask_stay_distinct(dataset, tmp_path):
    first = _lines(dataset)[0]
    img = np.asarray(Image.open(dataset / first["mask"]))
    data = _copy(dataset, tmp_path / "d", [first, {**first, "mask": "masks/inverse.png"}, first])
    Image.fromarray(np.where(img > 127, 0, 255).astype(np.uint8)).save(data / "masks/inverse.png")
    r = runner.invoke(app, ["evaluate", str(data), "--out", str(tmp_path / "ev"), *ARGS])
    assert r.exit_code == 0, r.output
    recs = read_results(tmp_path / "ev")
    assert len(recs) == 2 and {x["mask"] for x in recs} == {first["mask"], "masks/inverse.png"}
    ious = sorted(x["metrics"]["iou"] for x in recs)
    assert ious[0] < ious[1]  # the same map scored against two different masks
    lines = (tmp_path / "ev" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_unreadable_image_is_skipped_listed_and_retried(dataset, tmp_path):
    lines = _lines(dataset)
    data = _copy(dataset, tmp_path / "d")
    (data / lines[1]["image"]).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "ev"
    r = runner.invoke(app, ["evaluate", str(data), "--out", str(out), *ARGS])
    assert r.exit_code == 0, r.output
    assert "1 items skipped" in r.output
    assert len(read_results(out)) == len(lines) - 1
    summary = (out / "summary.md").read_text()
    assert "Skipped items: 1" in summary and f"- {lines[1]['image']} (manifest line 2): " in summary
    # fixed, the next run evaluates just that one
    (data / lines[1]["image"]).write_bytes((dataset / lines[1]["image"]).read_bytes())
    r = runner.invoke(app, ["evaluate", str(data), "--out", str(out), *ARGS])
    assert r.exit_code == 0 and f"1 new, {len(lines) - 1} already done" in r.output
    assert "Skipped items" not in (out / "summary.md").read_text()


def test_imagefolder_dataset_uses_folder_names_as_targets(tmp_path):
    for cls, rgb in (("red", (230, 20, 20)), ("blue", (20, 20, 230))):
        for i in range(2):
            arr = np.zeros((24, 24, 3), np.uint8)
            arr[4 + i:14 + i, 6:16] = rgb
            (tmp_path / "set" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(tmp_path / "set" / cls / f"{i}.png")
    r = runner.invoke(app, ["evaluate", str(tmp_path / "set"), "--out", str(tmp_path / "ev"),
                            "--model", "toycolour", "--division", "grid", "--regions", "4",
                            "--metrics", "insertion,deletion", "--score", "cosine",
                            "--no-plots"])
    assert r.exit_code == 0, r.output
    recs = read_results(tmp_path / "ev")
    assert sorted((x["image"], x["text"], x["label"]) for x in recs) == [
        ("blue/0.png", "blue", "blue"), ("blue/1.png", "blue", "blue"),
        ("red/0.png", "red", "red"), ("red/1.png", "red", "red")]


def test_plot_labels_and_clipped_intervals():
    x, y = curve_axis_labels("insertion", {"score": "probability", "fill": "blur"})
    assert x == "fraction of pixels revealed, most salient first (hidden = a blurred copy)"
    assert y == "target probability (softmax over the vocabulary)"
    x, y = curve_axis_labels("deletion_region", {}, "cosine")
    assert x.startswith("fraction of pixels removed, whole regions")
    assert y == "cosine similarity to the target (explainer's own curve)"
    err = clipped_errors([0.9, 0.1, 0.5], [0.3, 0.3, 0.1], [0.5, 0.0, 0.0], [1.0, 0.6, 1.0])
    np.testing.assert_allclose(err, [[0.3, 0.1, 0.1], [0.1, 0.3, 0.1]])


def test_plots_written_with_labels(dataset, tmp_path):
    args = [a for a in ARGS if a != "--no-plots"]
    r = runner.invoke(app, ["evaluate", str(dataset), "--out", str(tmp_path / "ev"), *args])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "ev" / "curves.png").size[0] > 500
    assert Image.open(tmp_path / "ev" / "bars.png").size[0] > 500


# -- fuzz: every bad input is one line, exit 2, and the output location as it was -----------

def _setup(kind: str, tmp: Path, dataset: Path) -> tuple[Path, Path, list[str]]:
    """(dataset, out, extra args) for one bad input."""
    out = tmp / "out"
    d = tmp / "d"
    lines = _lines(dataset)
    if kind == "missing-dataset":
        return tmp / "nope", out, []
    if kind == "dataset-is-file":
        (tmp / "f.png").write_bytes(b"x")
        return tmp / "f.png", out, []
    if kind == "empty-folder":
        d.mkdir()
        return d, out, []
    if kind in ("bad-json", "not-object", "empty-text", "not-utf8", "mask-not-path"):
        data = _copy(dataset, d)
        text = {"bad-json": '{"image": "x.png",\n', "not-object": '["a.png"]\n',
                "empty-text": json.dumps({"image": lines[0]["image"], "text": " "}) + "\n",
                "mask-not-path": json.dumps({"image": lines[0]["image"], "text": "a",
                                             "mask": 3}) + "\n"}.get(kind)
        path = data / "manifest.jsonl"
        if kind == "not-utf8":
            path.write_bytes(b'{"image": "\xff"}\n')
        else:
            path.write_text(text)
        return data, out, []
    if kind == "all-missing":
        return _copy(dataset, d, [{**x, "image": "gone/" + x["image"]} for x in lines]), out, []
    if kind in ("all-zero-byte", "all-truncated", "all-directory", "all-1x1"):
        data = _copy(dataset, d)
        for x in lines:
            p = data / x["image"]
            if kind == "all-zero-byte":
                p.write_bytes(b"")
            elif kind == "all-truncated":
                p.write_bytes(p.read_bytes()[:60])
            elif kind == "all-1x1":
                Image.new("RGB", (1, 1)).save(p)
            else:
                p.unlink()
                p.mkdir()
        return data, out, []
    if kind == "out-is-file":
        out.write_text("precious")
        return dataset, out, []
    if kind == "out-under-file":
        (tmp / "file").write_text("precious")
        return dataset, tmp / "file" / "sub", []
    if kind == "out-foreign":
        out.mkdir()
        (out / "notes.txt").write_text("precious")
        (out / "sub").mkdir()
        return dataset, out, []
    if kind == "bad-yaml":
        (tmp / "c.yaml").write_text("regions: [unclosed\n")
        return dataset, out, ["--config", str(tmp / "c.yaml")]
    extra = {"unknown-method": ["--methods", "smld"], "empty-methods": ["--methods", ","],
             "unknown-metric": ["--metrics", "insertoin"], "bad-fill": ["--fill", "pink"],
             "bad-score": ["--score", "odds"], "zero-steps": ["--steps", "0"],
             "zero-limit": ["--limit", "0"], "unknown-model": ["--model", "nosuchfamily:x"],
             "bad-prior": ["--methods", "smdl+prior:nothing"],
             "zero-processes": ["--num-processes", "0"]}[kind]
    return dataset, out, extra


FUZZ = {
    "missing-dataset": "dataset folder not found", "dataset-is-file": "not a folder",
    "empty-folder": "no manifest.jsonl", "bad-json": "not valid JSON",
    "not-object": "expected an object", "empty-text": "'text' must be a non-empty string",
    "not-utf8": "not UTF-8", "mask-not-path": "'mask' must be a path",
    "all-missing": "no usable image", "all-zero-byte": "could be evaluated",
    "all-truncated": "could be evaluated", "all-directory": "is not a file",
    "all-1x1": "too small", "out-is-file": "is a file", "out-under-file": "cannot create",
    "out-foreign": "mmattr did not write", "bad-yaml": "", "unknown-method": "did you mean smdl",
    "empty-methods": "no method given", "unknown-metric": "did you mean insertion",
    "bad-fill": "unknown fill", "bad-score": "unknown score", "zero-steps": "at least 1",
    "zero-limit": "at least 1", "unknown-model": "nosuchfamily", "bad-prior": "nothing",
    "zero-processes": "at least 1",
}


@pytest.mark.parametrize("kind", sorted(FUZZ))
def test_fuzz_bad_input_is_one_line_exit_2_nothing_touched(kind, dataset, tmp_path):
    data, out, extra = _setup(kind, tmp_path, dataset)
    before = _listing(out)
    args = [a for a in ARGS if a not in ("--model", "toycolour")] if "--model" in extra else ARGS
    r = runner.invoke(app, ["evaluate", str(data), "--out", str(out), *args, *extra])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert FUZZ[kind] in lines[0]
    assert "Traceback" not in r.output
    assert _listing(out) == before
