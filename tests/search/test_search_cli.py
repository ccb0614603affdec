"""`mmattr explain --search ...`: the strategy and its counts land in explanation.json."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mmattr.cli.main import app
from mmattr.demo_model import DEMO_MODEL_DIR

pytestmark = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").is_file(),
                                reason="no demo model")


@pytest.fixture
def scene_png(tmp_path):
    from PIL import Image

    from mmattr.datasets.shapes import render_scene

    scene = render_scene(5, 64)
    path = tmp_path / "scene.png"
    Image.fromarray(scene.image).save(path)
    return path, scene.labels[0]


@pytest.mark.parametrize("search", ["lazy", "bidirectional"])
def test_explain_records_the_search(search, scene_png, tmp_path):
    path, label = scene_png
    out = tmp_path / search
    result = CliRunner().invoke(app, ["explain", str(path), "--text", label, "--model", "demo",
                                      "--division", "grid", "--regions", "9", "--search", search,
                                      "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "explanation.json").read_text())
    settings = data["settings"]["search_settings"]
    assert data["settings"]["search"] == search and settings["strategy"] == search
    assert sorted(data["order"]) == list(range(9))
    # Every pass is accounted for: the search's own, the 9 regions alone, the 2 curve ends.
    assert data["forward_passes"] == settings["search_passes"] + 9 + 2
    assert len(data["insertion_curve"]) == len(data["deletion_curve"]) == 10
    assert settings["search_passes"] <= 9 * 10  # exact's count


def test_unknown_search_is_one_line(scene_png, tmp_path):
    path, label = scene_png
    result = CliRunner().invoke(app, ["explain", str(path), "--text", label, "--model", "demo",
                                      "--search", "fastest", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "unknown search 'fastest'" in result.output
    assert "Traceback" not in result.output
