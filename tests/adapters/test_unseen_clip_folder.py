"""Done-when: a transformers CLIP checkpoint folder the project has never seen (its own
tokenizer and image-processor files, an input size other than the model's) explains scenes
correctly through ``--model hf:FOLDER``.

Without network there are no real weights, so the folder holds the demo CLIP's trained
weights under another name, its tokenizer re-saved, and an image processor of a different,
non-square input size (80×96 instead of 64×64: position embeddings interpolated). The test
asks whether the top region lands on the named object of unseen shapes scenes.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from mmattr.cli.main import app
from mmattr.demo_model import DEMO_MODEL_DIR


@pytest.fixture(scope="module")
def unseen_folder(tmp_path_factory):
    if not (DEMO_MODEL_DIR / "model.safetensors").is_file():
        pytest.skip("the demo model has not been trained yet")
    from transformers import AutoTokenizer, CLIPImageProcessor

    folder = tmp_path_factory.mktemp("someones-clip")
    for name in ("config.json", "model.safetensors"):
        shutil.copy(DEMO_MODEL_DIR / name, folder / name)
    AutoTokenizer.from_pretrained(str(DEMO_MODEL_DIR)).save_pretrained(str(folder))
    CLIPImageProcessor(size={"shortest_edge": 80}, crop_size={"height": 80, "width": 96},
                       do_center_crop=True, resample=3,
                       image_mean=[0.48145466, 0.4578275, 0.40821073],
                       image_std=[0.26862954, 0.26130258, 0.27577711]).save_pretrained(str(folder))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("seed", [100, 101, 102, 103])
def test_unseen_clip_folder_finds_the_named_object(unseen_folder, seed, tmp_path):
    from PIL import Image

    from mmattr.datasets.shapes import render_scene

    scene = render_scene(seed, size=96, n_objects=2)
    path = tmp_path / "scene.png"
    Image.fromarray(scene.image).save(path)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["explain", str(path), "--model", f"hf:{unseen_folder}",
                                 "--text", scene.labels[0], "--division", "grid", "--regions", "9",
                                 "--device", "cpu", "--out", str(out)])
    assert r.exit_code == 0, r.output
    import json

    order = json.loads((out / "explanation.json").read_text())["order"]
    regions = np.load(out / "regions.npy")
    assert (scene.masks[0] & (regions == order[0])).any()
