"""Family-specific behaviour, checked against the peer library that owns each model: the
adapter's tensor preprocessing against the model's own processor, a classifier's logits against
its forward pass, and every bad input as one line."""

from __future__ import annotations

import time
import wave

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from mmattr.adapters import list_model_families, load_adapter
from mmattr.cli.main import app
from mmattr.errors import MmattrError, ModelError
from mmattr.objective import target_match
from mmattr.targets import Target
from mmattr.vocabulary import load_vocabulary


def _img(seed=0, h=57, w=71):
    """A smooth random image (photos are smooth; per-pixel noise would measure only how PIL's
    and torch's resize kernels differ)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(6, 7, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


def _ours(adapter, img):
    return adapter.encode_images(adapter.preprocess(torch.from_numpy(img.copy())[None]))


@pytest.mark.parametrize("case", ["hf", "hf-siglip", "hf-siglip2"])
def test_hf_matches_transformers_processor_and_model(tiny_models, case):
    """Our tensor preprocessing + call == the checkpoint's own processor + model (PIL resizes
    differently from torch at the pixel level, so compare embeddings by cosine)."""
    from transformers import AutoImageProcessor

    adapter = load_adapter(tiny_models[case], device="cpu")
    folder = tiny_models[case].split(":", 1)[1]
    proc = AutoImageProcessor.from_pretrained(folder)
    for seed in range(3):
        img = _img(seed)
        inputs = proc(images=Image.fromarray(img), return_tensors="pt")
        if case == "hf":
            assert tuple(inputs["pixel_values"].shape[-2:]) == adapter.preprocess.output_hw == (40, 48)
            inputs["interpolate_pos_encoding"] = True
        with torch.inference_mode():
            ref = adapter.model.get_image_features(**inputs).pooler_output
        cos = F.cosine_similarity(_ours(adapter, img), ref).item()
        assert cos > 0.995, (case, seed, cos)


def test_openclip_matches_open_clip_transform(tiny_models):
    import open_clip

    adapter = load_adapter(tiny_models["openclip"], device="cpu")
    _, _, transform = open_clip.create_model_and_transforms(adapter.arch)
    # the checkpoint file was loaded: the weights equal the saved ones
    ckpt = torch.load(tiny_models["openclip"].split("/", 1)[1], weights_only=True)["state_dict"]
    torch.testing.assert_close(adapter.model.state_dict()["visual.conv1.weight"],
                               ckpt["visual.conv1.weight"])
    img = _img(1)
    with torch.inference_mode():
        ref = adapter.model.encode_image(transform(Image.fromarray(img))[None])
        txt = adapter.model.encode_text(open_clip.get_tokenizer(adapter.arch)(["a cat"]))
    assert F.cosine_similarity(_ours(adapter, img), ref).item() > 0.995
    torch.testing.assert_close(adapter.encode_texts(["a cat"]), txt)


@pytest.mark.parametrize("case", ["hf-classifier", "hf-classifier-resnet", "torch"])
def test_classifier_probability_is_the_models_softmax(tiny_models, case):
    adapter = load_adapter(tiny_models[case], device="cpu")
    pixels = adapter.preprocess(torch.from_numpy(np.stack([_img(s) for s in range(3)])))
    with torch.inference_mode():
        model = getattr(adapter, "model", None) or adapter.module
        ref = model(pixel_values=pixels) if hasattr(adapter, "model") else model(pixels)
        ref = getattr(ref, "logits", ref)
    # through the region stack's normalisation, as the objective sees them
    emb = F.normalize(adapter.encode_images(pixels), dim=-1)
    torch.testing.assert_close(adapter.class_logits(emb), ref, atol=1e-4, rtol=1e-4)
    names = adapter.class_names
    vocab = adapter.class_embeddings(names)
    for k in range(len(names)):
        p = target_match(emb, "probability", adapter.encode_target(Target(kind="class", class_name=k)),
                         vocab, k, adapter.logit_scale, adapter.logits)
        torch.testing.assert_close(p, ref.softmax(-1)[:, k], atol=1e-5, rtol=1e-4)
    # cosine to class k: cos(features, W_k)
    feats = emb[:, :-1] / emb[:, -1:] * 1e-4
    w = adapter.head.weight[1]
    cos = emb @ adapter.encode_target(Target(kind="class", class_name=1))
    torch.testing.assert_close(cos, F.cosine_similarity(feats, w[None]), atol=1e-5, rtol=1e-4)


def test_classifier_class_by_index_name_or_synonym(tiny_models):
    adapter = load_adapter(tiny_models["hf-classifier"], device="cpu")
    assert adapter.class_names[0] == "tench, Tinca tinca"
    by = [adapter.encode_target(Target.from_options(class_name=c))
          for c in ("0", "tench, Tinca tinca", "Tench", "tinca tinca")]
    for t in by[1:]:
        torch.testing.assert_close(t, by[0])
    # an index target is named by its label, so the vocabulary does not hold it twice
    assert adapter.vocabulary_label(Target.from_options(class_name="2")) == "great white shark"
    assert load_vocabulary(adapter.default_vocabulary, adapter) == adapter.class_names


def test_classifier_probability_explanation_uses_its_own_classes(tiny_models, scene, tmp_path):
    import json

    out = tmp_path / "o"
    r = CliRunner().invoke(app, ["explain", str(scene), "--model", tiny_models["hf-classifier"],
                                 "--class", "goldfish", "--score", "probability", "--division",
                                 "grid", "--regions", "4", "--device", "cpu", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "explanation.json").read_text())
    assert data["settings"]["vocabulary_size"] == 5 and data["settings"]["target_index"] == 1
    # the deletion curve starts at the classifier's own probability for the full image
    adapter = load_adapter(tiny_models["hf-classifier"], device="cpu")
    from mmattr.image import load_image

    with torch.inference_mode():
        px = adapter.preprocess(torch.from_numpy(load_image(scene).copy())[None])
        p = adapter.model(pixel_values=px).logits.softmax(-1)[0, 1].item()
    assert data["deletion_curve"][0] == pytest.approx(p, abs=1e-5)


def _one_line_error(args):
    r = CliRunner().invoke(app, args)
    assert r.exit_code != 0
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert "Traceback" not in r.output
    return " ".join(lines)


def test_bad_inputs_are_one_line(tiny_models, scene, monkeypatch):
    base = ["explain", str(scene), "--division", "grid", "--regions", "4", "--device", "cpu"]
    msg = _one_line_error(base + ["--model", "nosuch:thing", "--text", "x"])
    assert "unknown model family 'nosuch'" in msg
    msg = _one_line_error(base + ["--model", tiny_models["hf-classifier"], "--text", "a fish"])
    assert "classifier" in msg and "--class" in msg
    msg = _one_line_error(base + ["--model", tiny_models["hf-classifier"], "--class", "goldfsh"])
    assert "not one of the 5 classes" in msg and "goldfish" in msg
    msg = _one_line_error(base + ["--model", tiny_models["hf-classifier"], "--class", "9"])
    assert "out of range" in msg
    msg = _one_line_error(base + ["--model", "imagebind", "--text", "x"])
    assert "ImageBind" in msg and "pip install" in msg
    # a missing extra: open_clip not importable
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "open_clip" else real(name, *a))
    msg = _one_line_error(base + ["--model", "openclip:ViT-B-32", "--text", "x"])
    assert "pip install 'mmattr[openclip]'" in msg


@pytest.mark.parametrize("spec", ["hf:openai/clip-vit-base-patch32",
                                  "hf-classifier:google/vit-base-patch16-224",
                                  "openclip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
                                  "openclip:ViT-B-32/laion2b_s34b_b79k"])
def test_offline_hub_id_fails_fast_in_one_line(spec, scene, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    msg = _one_line_error(["explain", str(scene), "--model", spec, "--text", "x", "--device", "cpu"])
    assert time.perf_counter() - t0 < 10
    assert "network" in msg and "DIR" in msg or "checkpoint" in msg


def test_unreachable_hub_fails_fast_without_offline_flag(monkeypatch):

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match="cannot be reached"):
        load_adapter("hf:someone/not-cached-model", device="cpu")
    assert time.perf_counter() - t0 < 10


def test_imagebind_style_model_takes_text_image_and_audio_targets(tiny_models, tmp_path):
    adapter = load_adapter(tiny_models["imagebind"], device="cpu")
    assert adapter.describe()["modalities"] == ["vision", "text", "audio"]
    wav = tmp_path / "clip.wav"
    with wave.open(str(wav), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(8000)
        tone = (np.sin(np.arange(4000) * 0.3) * 20000).astype(np.int16)
        f.writeframes(tone.tobytes())
    t_audio = adapter.encode_target(Target.from_audio(wav))
    model = adapter.model
    with torch.inference_mode():
        ref = model({"audio": adapter.load_audio(str(wav))})["audio"][0]
    torch.testing.assert_close(t_audio, ref)
    assert adapter.encode_target(Target.from_text("a dog barking")).shape == t_audio.shape
    from mmattr import api

    e = api.explain(_img(3, 40, 40), target=Target.from_audio(wav), model=adapter,
                    division="grid", regions=4)
    assert sorted(e.order) == [0, 1, 2, 3] and e.target["kind"] == "audio"
    with pytest.raises(MmattrError, match="audio"):
        load_adapter(tiny_models["hf"], device="cpu").encode_target(Target.from_audio(wav))


def test_models_command_lists_every_family():
    r = CliRunner().invoke(app, ["models"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    for name in ("demo", "hf", "openclip", "hf-classifier", "torch", "imagebind"):
        assert f" {name} " in r.output
    rows = {row["name"]: row for row in list_model_families()}
    assert rows["openclip"]["installed"] and rows["openclip"]["extra"] == "openclip"
    assert not rows["imagebind"]["installed"] and "ImageBind" in rows["imagebind"]["install"]


def test_imagenet_vocabulary():
    names = load_vocabulary("imagenet")
    assert len(names) == 1000 == len(set(names))
    assert names[0] == "tench" and names[1] == "goldfish" and names[-1] == "toilet paper"


def test_dtype_and_device_choices(tiny_models):
    adapter = load_adapter(tiny_models["hf"], device="cpu", dtype="bf16")
    assert adapter.autocast_dtype is None  # autocast only on accelerators; CPU stays fp32
    with pytest.raises(ModelError, match="unknown dtype"):
        load_adapter(tiny_models["hf"], device="cpu", dtype="fp8")
    if torch.cuda.is_available():
        gpu = load_adapter(tiny_models["hf"], device="cuda", dtype="fp16")
        assert gpu.autocast_dtype == torch.float16
