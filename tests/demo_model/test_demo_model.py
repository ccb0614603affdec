"""The embedded model zoo: files, standard loaders, and accuracy measured here (not only read back
from training.json) on held-out scenes of both renderers."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmattr.demo_model.zoo import KINDS, MODEL_DIRS


def _present(name: str) -> bool:
    return (MODEL_DIRS[name] / "model.safetensors").is_file()


def needs(name: str):
    return pytest.mark.skipif(not _present(name), reason=f"{name} checkpoint not present")


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _info(name: str) -> dict:
    return json.loads((MODEL_DIRS[name] / "training.json").read_text())


@pytest.mark.parametrize("name", list(MODEL_DIRS))
def test_checkpoint_files_size_and_record(name):
    if not _present(name):
        pytest.skip(f"{name} checkpoint not present")
    folder = MODEL_DIRS[name]
    for f in ("config.json", "model.safetensors", "preprocessor_config.json", "training.json"):
        assert (folder / f).exists(), f
    assert _folder_bytes(folder) <= 10 * 1024 * 1024
    info = _info(name)
    assert info["kind"] == KINDS[name] and info["seed"] == 0
    ev = info["evaluation"]
    assert ev["sets"]["single"]["n"] >= 1000
    for key in ("confusion_colour", "confusion_shape"):
        m = np.array(ev[key]["rows_true_cols_predicted"])
        assert m.shape == (6, 6) and m.sum() == ev["sets"]["single"]["n"]


@needs("demo")
def test_demo_recorded_accuracies_meet_targets():
    ev = _info("demo")["evaluation"]
    assert ev["single"] >= 0.95
    assert ev["alt"] >= 0.90
    assert ev["two_top1_present"] >= 0.90


@needs("demo-biased")
def test_biased_record_states_the_rule_and_the_drop():
    info = _info("demo-biased")
    assert "star" in info["planted_rule"] and "stripe" in info["planted_rule"]
    ps = info["evaluation"]["planted_slice"]
    assert ps["accuracy_outside"] >= 0.90
    assert ps["accuracy_inside"] <= ps["accuracy_outside"] - 0.25


@needs("demo-classifier")
def test_classifier_recorded_accuracy():
    assert _info("demo-classifier")["evaluation"]["single"] >= 0.95


@needs("demo")
def test_demo_loads_with_auto_classes_and_processor_matches_preprocess():
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    from mmattr.adapters._preprocess import Preprocess
    from mmattr.datasets import render_scene

    folder = MODEL_DIRS["demo"]
    model = AutoModel.from_pretrained(folder)
    assert type(model).__name__ == "AlignModel"
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok("a photo of a red circle.")["input_ids"]
    assert len(ids) == 9  # bos + every word one token + "." + eos
    assert len(tok("a zebra eating quinoa")["input_ids"]) > 4  # unknown words still tokenise
    img = render_scene(5, size=128).image
    hf = AutoImageProcessor.from_pretrained(folder)(images=img, return_tensors="pt")["pixel_values"]
    ours = Preprocess.from_folder(folder)(torch.from_numpy(img[None]))
    assert ours.shape == hf.shape
    assert (ours - hf).abs().mean() < 0.05


def _measured(spec: str, name: str, renderer, seed: int, n: int) -> float:
    from mmattr.adapters import load_adapter
    from mmattr.datasets.shapes import captions
    from mmattr.demo_model.evaluate import class_scores

    adapter = load_adapter(spec, device="cpu")
    scenes = [renderer(np.random.default_rng((seed, i)), size=128, n_objects=1) for i in range(n)]
    templates = _info(name).get("templates") or None
    scores = class_scores(adapter, np.stack([s.image for s in scenes]), templates, captions())
    names = captions()
    return float(np.mean([names[k] == s.labels[0] for k, s in zip(scores.argmax(1).tolist(), scenes)]))


@needs("demo")
def test_demo_zero_shot_accuracy_measured_through_the_adapter():
    from mmattr.datasets.altshapes import render_alt_scene
    from mmattr.datasets.shapes import render_scene

    # Fresh seeds, unlike the recorded figures: 144 scenes of each renderer.
    assert _measured("demo", "demo", render_scene, 40_000, 144) >= 0.93
    assert _measured("demo", "demo", render_alt_scene, 41_000, 144) >= 0.85


@needs("demo-classifier")
def test_classifier_accuracy_measured_through_the_adapter():
    from mmattr.datasets.shapes import render_scene

    assert _measured("demo-classifier", "demo-classifier", render_scene, 40_000, 144) >= 0.93


def test_train_smoke(tmp_path: Path):
    from transformers import AutoModel, AutoModelForImageClassification, AutoTokenizer

    from mmattr.demo_model.train import train

    logs: list[str] = []
    info = train(tmp_path / "clip", kind="biased", seed=1, steps=2, batch_size=4,
                 log=logs.append, evaluate=False)
    assert logs and info["steps"] == 2 and info["world"] == "biased"
    assert "planted_rule" in info
    AutoModel.from_pretrained(tmp_path / "clip")
    AutoTokenizer.from_pretrained(tmp_path / "clip")
    info = train(tmp_path / "cls", kind="classifier", seed=1, steps=2, batch_size=4,
                 log=logs.append, evaluate=False)
    AutoModelForImageClassification.from_pretrained(tmp_path / "cls")


def test_cli_refuses_to_overwrite_shipped_weights(tmp_path):
    from typer.testing import CliRunner

    from mmattr.cli.main import app

    res = CliRunner().invoke(app, ["demo-model", "train", "--model", "demo",
                                   "--out", str(MODEL_DIRS["demo"])])
    assert res.exit_code == 2
    assert "--replace-shipped" in res.output
    (tmp_path / "x.txt").write_text("keep")
    res = CliRunner().invoke(app, ["demo-model", "train", "--out", str(tmp_path)])
    assert res.exit_code == 2 and (tmp_path / "x.txt").read_text() == "keep"


def test_cli_train_writes_through_the_output_folder(tmp_path, monkeypatch):
    """`demo-model train` assembles the checkpoint in a temporary folder and moves it into
    place: files follow the umask (not tempfile's 0600), the marker lists them, nothing else
    is left; another --steps in the same folder is refused without --overwrite."""
    import os

    from typer.testing import CliRunner

    from mmattr.cli.main import app

    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        res = CliRunner().invoke(app, ["demo-model", "train", "--model", "demo-classifier",
                                       "--steps", "1", "--out", "m"])
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == [".mmattr", "config.json", "model.safetensors", "preprocessor_config.json",
                     "training.json"]
    assert all((tmp_path / "m" / n).stat().st_mode & 0o777 == 0o644 for n in names)
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755
    assert "--out m " in json.loads((tmp_path / "m" / "training.json").read_text())["command"]
    res = CliRunner().invoke(app, ["demo-model", "train", "--model", "demo-classifier",
                                   "--steps", "2", "--out", "m"])
    assert res.exit_code == 2 and "other settings (steps)" in res.output
