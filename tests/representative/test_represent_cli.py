"""`mmattr represent` end to end on the diamond toy (CliRunner), its cache and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mmattr.cli.main import app
from mmattr.representative import FitCache, RepresentativeInterpretations, RIOptions

from ri_testlib import TOY, colour_image

DIAMOND = f"torch:{TOY}:build_diamond"
runner = CliRunner()


def _write_dataset(root: Path, images, labels) -> Path:
    (root / "images").mkdir(parents=True)
    lines = []
    for i, (img, lab) in enumerate(zip(images, labels)):
        Image.fromarray(img).save(root / "images" / f"{i:03d}.png")
        lines.append(json.dumps({"image": f"images/{i:03d}.png", "label": lab}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, diamond_refs):
    images, points = diamond_refs
    labels = ["inside" if abs(p).sum() < 1 else "outside" for p in points]
    return _write_dataset(tmp_path_factory.mktemp("diamond"), images, labels)


def _run(*args: str):
    return runner.invoke(app, ["represent", *args])


def test_represent_writes_each_interpretation_and_reuses_the_fit(dataset, tmp_path):
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    args = [str(dataset), "--model", DIAMOND, "--layer", "psi", "--boundaries", "64",
            "--out", str(out), "--cache-dir", str(cache), "-k", "3"]
    res = _run(*args)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cached"] is False and summary["reference_images"] == 64
    assert len(summary["interpretations"]) == 3
    for row in summary["interpretations"]:
        folder = out / row["folder"]
        data = json.loads((folder / "interpretation.json").read_text())
        assert data["accuracy_model"] == 1.0 and data["other_class_covered"] == 0
        assert data["accuracy_labels"] == 1.0  # the manifest labels agree with the toy
        assert data["coverage"] == data["covered_total"] >= 1
        assert len(data["channel_weights"]) == len(data["boundaries"])
        for png in ("overlay.png", "gallery.png"):
            assert Image.open(folder / png).size[0] >= 16
    assert len(FitCache(cache).entries()) == 1
    again = _run(*args)
    assert again.exit_code == 0, again.output
    assert json.loads((out / "summary.json").read_text())["cached"] is True


def test_represent_one_image(dataset, tmp_path):
    img = tmp_path / "x.png"
    Image.fromarray(colour_image(140, 131)).save(img)
    out = tmp_path / "one"
    res = _run(str(dataset), "--model", DIAMOND, "--layer", "psi", "--image", str(img),
               "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--sampler", "walk")
    assert res.exit_code == 0, res.output
    data = json.loads((out / "x" / "interpretation.json").read_text())
    assert data["predicted"] == "inside" and data["coverage"] == 12
    assert len(data["boundaries"]) == 4 and data["covered_ranked"][0]["distance"] >= 0


def _one_line_error(res, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    text = " ".join(lines)
    assert text.startswith("error:"), res.output
    for needle in needles:
        assert needle in text, res.output


def test_bad_input_is_one_line_exit_2(dataset, tmp_path):
    base = [str(dataset), "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")]
    _one_line_error(_run(*base, "--model", DIAMOND, "--layer", "nope"), "nope")
    _one_line_error(_run(*base, "--model", f"torch:{TOY}:build_linear", "--layer", "conv"),
                    "linear")
    _one_line_error(_run(*base, "--model", f"torch:{TOY}:build_residual", "--layer", "conv"),
                    "residual")
    _one_line_error(_run(*base, "--model", DIAMOND, "--delta", "-3"), "--delta")
    _one_line_error(_run(str(tmp_path / "missing"), "--out", str(tmp_path / "o"),
                         "--model", DIAMOND), "not found")


def test_too_few_reference_images_of_the_predicted_class(tmp_path, diamond_refs):
    images, points = diamond_refs
    inside = np.flatnonzero(np.abs(points).sum(1) < 1)
    keep = [i for i in range(len(images)) if i not in set(inside[2:].tolist())]  # 2 inside left
    ds = _write_dataset(tmp_path / "few", [images[i] for i in keep], ["?"] * len(keep))
    img = tmp_path / "x.png"
    Image.fromarray(colour_image(140, 131)).save(img)
    res = _run(str(ds), "--model", DIAMOND, "--layer", "psi", "--image", str(img),
               "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"))
    _one_line_error(res, "only 2 reference images are predicted 'inside'")


def test_model_without_a_vision_module_is_refused(diamond_refs):
    from mmattr.errors import ModelError

    adapter = _load_toy().build_diamond()
    adapter.vision_module = lambda: None
    with pytest.raises(ModelError, match="no vision module"):
        RepresentativeInterpretations(adapter, RIOptions(layer="psi")).fit(diamond_refs[0])


def test_cache_is_bounded_and_keyed_by_data(tmp_path, toy, diamond_refs):
    images, _ = diamond_refs
    cache = FitCache(tmp_path / "c", max_entries=2)
    ri = RepresentativeInterpretations(toy.build_diamond(), RIOptions(layer="psi", boundaries=8))
    ri.fit(images, cache=cache)
    W = ri.fitted.W.clone()
    ri2 = RepresentativeInterpretations(toy.build_diamond(), RIOptions(layer="psi", boundaries=8))
    ri2.fit(images, cache=cache)
    assert cache.hits == 1 and np.allclose(ri2.fitted.W, W)
    assert ri2.fitted.ids == ri.fitted.ids and np.array_equal(ri2.fitted.preds, ri.fitted.preds)
    for k in range(3):  # three more data sets: the oldest entries go, at most 2 stay
        ri.fit(images[k:], cache=cache)
    assert len(cache.entries()) == 2
    stranger = tmp_path / "c" / "not-ours"
    stranger.mkdir()
    ri.fit(images[5:], cache=cache)
    assert stranger.exists()  # never removes what it did not write


def _load_toy():
    from ri_testlib import _load

    return _load()
