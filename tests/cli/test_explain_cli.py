"""`mmattr explain` end to end with the demo model, and every bad input as one line."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mmattr.cli import app
from mmattr.datasets.shapes import render_scene

runner = CliRunner()
FAST = ["--division", "grid", "--regions", "9", "--search", "exact"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(render_scene(166, size=96).image).save(path)
    return path


def test_explain_writes_every_file(scene, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["explain", str(scene), "--text", "a red circle", "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert "insertion AUC" in result.output
    attribution = np.load(out / "attribution.npy")
    regions = np.load(out / "regions.npy")
    assert attribution.shape == regions.shape == (96, 96)
    assert attribution.dtype == np.float32 and regions.dtype == np.int32
    for name in ("overlay.png", "curves.png"):
        assert Image.open(out / name).size[0] > 0
    data = json.loads((out / "explanation.json").read_text())
    for key in ("model", "target", "division", "n_regions", "order", "insertion_auc",
                "deletion_auc", "forward_passes", "seconds", "mmattr_version", "settings"):
        assert key in data
    assert data["n_regions"] == 9 and sorted(data["order"]) == list(range(9))
    assert data["forward_passes"] == 9 * 10 + 9 + 2
    assert data["curve_score"] == "probability"  # the demo model's shapes vocabulary
    assert data["settings"]["score"] == "auto" and data["settings"]["regions"] == 9
    assert data["settings"]["score_used"] == "probability"  # a named target and a vocabulary

    # A rerun with the same settings skips the finished work; --overwrite redoes it.
    again = runner.invoke(app, ["explain", str(scene), "--text", "a red circle", "--out", str(out), *FAST])
    assert again.exit_code == 0 and "already holds" in again.output
    redo = runner.invoke(app, ["explain", str(scene), "--text", "a red circle", "--out", str(out),
                               "--overwrite", *FAST])
    assert redo.exit_code == 0 and "insertion AUC" in redo.output


def _bad(args, out: Path, expect: str) -> None:
    # The test's own options come last so they win over FAST.
    result = runner.invoke(app, [*args[:2], *FAST, *args[2:], "--out", str(out)])
    assert result.exit_code != 0, (args, result.output)
    text = result.output.strip()
    assert expect in text, text
    assert "Traceback" not in text and len(text.splitlines()) <= 2, text
    assert not out.exists(), "no partial output folder"


def test_bad_inputs(scene, tmp_path):
    out = tmp_path / "never"
    _bad(["explain", str(tmp_path / "missing.png"), "--text", "a red circle"], out, "not found")
    (tmp_path / "note.png").write_text("not an image")
    _bad(["explain", str(tmp_path / "note.png"), "--text", "x"], out, "not an image")
    data = scene.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 3])
    _bad(["explain", str(tmp_path / "cut.png"), "--text", "x"], out, "truncated")
    _bad(["explain", str(scene), "--text", "  "], out, "empty")
    _bad(["explain", str(scene), "--text", "x", "--model", "nosuch"], out, "unknown model family")
    _bad(["explain", str(scene), "--text", "x", "--model", "hf:/no/such/folder"], out, "cannot load")
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tiny)
    result = runner.invoke(app, ["explain", str(tiny), "--text", "x", "--regions", "50",
                                 "--division", "grid", "--out", str(out)])
    assert result.exit_code != 0 and "more than the image" in result.output and not out.exists()
    _bad(["explain", str(scene), "--text", "x", "--division", "voronoi"], out, "unknown division")


def test_models_lists_families():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    for family in ("demo", "hf", "openclip", "hf-classifier", "torch", "imagebind"):
        assert family in result.output


def test_program_entry_exits_with_the_command_code(tmp_path):
    """`python -m mmattr` (the `run` entry: no interpreter teardown) keeps exit codes, output
    and atexit handlers."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**__import__("os").environ, "PYTHONPATH": str(root)}
    ok = subprocess.run([sys.executable, "-m", "mmattr", "--version"], cwd=root, env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.strip()
    bad = subprocess.run([sys.executable, "-m", "mmattr", "explain", str(tmp_path / "none.png"),
                          "--text", "a"], cwd=root, env=env, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "error:" in bad.stderr
    mark = tmp_path / "atexit.txt"
    code = ("import atexit, sys; from pathlib import Path; "
            f"atexit.register(lambda: Path({str(mark)!r}).write_text('ran')); "
            "sys.argv = ['mmattr', '--version']; from mmattr.cli import run; run()")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, timeout=120)
    assert done.returncode == 0 and mark.read_text() == "ran"


@pytest.mark.parametrize("mode", ["rank", "gain"])
def test_attribution_flag(mode, scene, tmp_path):
    """`--attribution rank|gain`: what attribution.npy holds (and the heat map shows)."""
    out = tmp_path / mode
    result = runner.invoke(app, ["explain", str(scene), "--text", "a red circle", "--out",
                                 str(out), "--attribution", mode, *FAST])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "explanation.json").read_text())
    attribution, regions = np.load(out / "attribution.npy"), np.load(out / "regions.npy")
    order, n = data["order"], data["n_regions"]
    per_region = np.array([attribution[regions == r][0] for r in range(n)])
    if mode == "rank":  # the region at rank i holds (N - i) / N
        expected = (n - np.arange(n)) / n
    else:  # its marginal gain: f(prefix) - f(shorter prefix), f(∅) counted as 0
        expected = np.diff(np.concatenate([[0.0], data["step_scores"]]))
    np.testing.assert_allclose(per_region[order], expected, rtol=1e-5, atol=1e-6)
    assert data["settings"]["attribution"] == mode


def test_bad_attribution_flag_is_one_line(scene, tmp_path):
    result = runner.invoke(app, ["explain", str(scene), "--text", "x", "--attribution", "area",
                                 "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "setting attribution must be one of rank, gain, got 'area'" in result.output
    assert "Traceback" not in result.output
