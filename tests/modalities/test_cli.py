"""`mmattr explain --explain text|audio` end to end, and every bad input as one line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from modality_toys import TONE_SPEC
from mmattr.cli import app
from mmattr.datasets.shapes import render_scene

runner = CliRunner()
CAPTION = "a red circle and a blue square"


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(render_scene(166, size=96).image).save(path)
    return path


def _bad(args: list[str], out: Path, expect: str) -> str:
    result = runner.invoke(app, [*args, "--out", str(out)])
    text = result.output.strip()
    assert result.exit_code == 2, (args, result.output)
    assert expect in text, text
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    assert not out.exists(), "no partial output folder"
    return text


def test_explain_text_writes_every_file_and_resumes(scene, tmp_path):
    out = tmp_path / "out"
    args = ["explain", str(scene), "--text", CAPTION, "--explain", "text", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "text: 7 words" in result.output and "top words" in result.output
    for name in ("overlay.png", "curves.png"):
        assert Image.open(out / name).size[0] > 0
    data = json.loads((out / "explanation.json").read_text())
    explained = data["explained"]
    assert explained["modality"] == "text" and explained["text"] == CAPTION
    assert [row["label"] for row in explained["elements"]] == CAPTION.split()
    assert sorted(row["rank"] for row in explained["elements"]) == list(range(1, 8))
    assert data["target"]["kind"] == "image" and data["target"]["image"] == str(scene.resolve())
    assert data["settings"]["explain"] == "text" and data["curve_score"] == "cosine"
    attribution, regions = np.load(out / "attribution.npy"), np.load(out / "regions.npy")
    assert attribution.shape == regions.shape == (len(CAPTION),)
    # the summary's top words are the order's
    words = [explained["elements"][i]["label"] for i in data["order"][:5]]
    assert f"top words {', '.join(words)}" in result.output

    before = (out / "explanation.json").read_text()
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "already holds" in again.output
    assert (out / "explanation.json").read_text() == before
    # another text is another result: the folder says so instead of mixing them
    other = runner.invoke(app, [*args[:3], "a green star", *args[4:]])
    assert other.exit_code == 2 and "other settings" in other.output


def test_default_folder_is_named_after_the_text(scene, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["explain", "--image", str(scene), "--text", "a red circle",
                                 "--explain", "text"])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "explanations").iterdir()
    assert folder.name.startswith("text-a-red-circle-") and ".smdl." in folder.name


def test_tokens_unit_on_the_demo_model(scene, tmp_path, demo):
    out = tmp_path / "tok"
    text = "a red circle"
    result = runner.invoke(app, ["explain", str(scene), "--text", text, "--explain", "text",
                                 "-O", "text.unit=tokens", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "explanation.json").read_text())
    tok = demo.tokenize_text(text)
    spans = [list(o) for o, sp in zip(tok.offsets, tok.special) if not sp]
    assert [row["span"] for row in data["explained"]["elements"]] == spans
    assert [row["label"] for row in data["explained"]["elements"]] == [text[a:b] for a, b in spans]
    assert data["settings"]["element_settings"]["unit"] == "tokens"


def test_explain_audio_with_an_imagebind_style_model(scene, tone_wav, tmp_path):
    out = tmp_path / "a"
    args = ["explain", str(scene), "--audio", str(tone_wav), "--explain", "audio",
            "--model", TONE_SPEC, "-O", "audio.segments=8", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "audio: 8 segments" in result.output and "top segments 0.75-1.00 s" in result.output
    data = json.loads((out / "explanation.json").read_text())
    assert data["order"][0] == 3 and data["explained"]["audio"] == str(tone_wav)
    assert np.load(out / "attribution.npy").shape == (16000,)
    assert "already holds" in runner.invoke(app, args).output
    # against a text target, no image
    result = runner.invoke(app, ["explain", "--audio", str(tone_wav), "--text", "a beep",
                                 "--explain", "audio", "--model", TONE_SPEC,
                                 "-O", "audio.segments=8", "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert "top segments 0.75-1.00 s" in result.output
    data = json.loads((tmp_path / "t" / "explanation.json").read_text())
    assert data["target"]["kind"] == "text" and data["order"][0] == 3
    # onset division from the command line
    result = runner.invoke(app, [*args[:-2], "-O", "audio.division=onset",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "o" / "explanation.json").read_text())
    assert data["settings"]["element_settings"]["division"] == "onset"


def test_bad_inputs_are_one_line(scene, tone_wav, tmp_path):
    out = tmp_path / "never"
    base = ["explain", str(scene)]
    _bad([*base, "--explain", "audio", "--audio", str(tone_wav)], out, "no audio tower")
    _bad([*base, "--explain", "text"], out, "--explain text explains the words of --text")
    msg = _bad([*base, "--explain", "bogus", "--text", "x"], out, "unknown modality 'bogus'")
    assert "audio, image, text" in msg
    msg = _bad([*base, "--method", "gradcam", "--explain", "text", "--text", "a b"], out,
               "the gradcam method explains image, not text")
    for name in ("smdl", "occlusion", "lime", "kernelshap", "ig", "gradxinput"):
        assert name in msg
    _bad([*base, "--method", "gradxinput", "--text", "a b"], out, "explains text, not image")
    _bad([*base, "--explain", "text", "--text", "a b", "-O", "text.remove=erase"], out,
         "must be one of auto, drop, pad, hide, pad+hide")
    _bad([*base, "--explain", "text", "--text", "a b", "-O", "text.units=tokens"], out, "units")
    _bad([*base, "--explain", "text", "--text", "a b", "--score", "probability"], out,
         "--score cosine")
    _bad([*base, "--explain", "text", "--text", "a b", "--audio", str(tone_wav)], out,
         "got --image and --audio")
    _bad(["explain", "--explain", "text", "--text", "a b"], out, "needs one target")
    _bad(["explain", "--text", "a b"], out, "missing IMAGE")
    _bad([*base, "--image", str(scene), "--text", "a b"], out, "give the image once")
    _bad(["explain", "--explain", "audio", "--audio", str(tmp_path / "no.wav"), "--text", "x",
          "--model", TONE_SPEC], out, "audio file not found")
    _bad(["explain", "--explain", "audio", "--audio", str(scene), "--text", "x",
          "--model", TONE_SPEC], out, "cannot read audio")
    _bad(["explain", "--explain", "audio", "--text", "x", "--model", TONE_SPEC], out,
         "give an audio clip")


# -- a tiny random-weight CLIP (the real transformers class) through the public loader -------

def _clip(folder: Path):
    from mmattr.adapters import load_adapter

    return load_adapter(f"hf:{folder}", device="cpu", cache=None)  # its own: changed below


def test_clip_token_offsets_map_tokens_to_words(tiny_clip_dir):
    """The tokenizer's offsets: each token's characters are its vocabulary piece (the tiny
    tokenizer's pieces are single letters, "</w>" closing a word), and each token belongs to
    the word whose characters it covers, inside every prompt template."""
    from mmattr.modalities.text import TextElements, words_of

    adapter = _clip(tiny_clip_dir)
    text = "red dog, ran"
    tok = adapter.tokenize_text(text)
    backend = adapter.tokenizer.backend_tokenizer
    assert tok.special[0] and tok.special[-1] and not any(tok.special[1:-1])
    for tid, (a, b), special in zip(tok.ids, tok.offsets, tok.special):
        if not special:
            assert backend.id_to_token(tid).replace("</w>", "") == text[a:b]
    assert "".join(text[a:b] for (a, b), sp in zip(tok.offsets, tok.special) if not sp) == \
        text.replace(" ", "")
    words = words_of(text)
    adapter.text_templates = ("a {}.",)  # (the tiny model reads 16 tokens: one per letter)
    es = TextElements(text, adapter, remove="hide")
    (tpl,) = es.templated()
    full = adapter.tokenize_text("a red dog, ran.")
    assert tpl.ids.tolist() == list(full.ids)
    prefix = len("a ")
    for owner, (a, b), special in zip(tpl.owner.tolist(), full.offsets, full.special):
        inside = [i for i, (_, s, e) in enumerate(words)
                  if not special and s <= a - prefix and b - prefix <= e]
        assert owner == (inside[0] if inside else -1), (a, b)
    assert sorted(set(tpl.owner.tolist())) == [-1, 0, 1, 2]


def test_clip_removes_words_by_hiding_them(tiny_clip_dir, scene, tmp_path):
    """CLIP's pad token is its end-of-text token, at which it reads the text's embedding: a
    padded word would end the text there (every subset without the first word would embed as
    the empty text). The words are hidden instead, and each kept word counts."""
    from mmattr.modalities.text import TextElements

    adapter = _clip(tiny_clip_dir)
    assert adapter.tokenizer.pad_token_id == adapter.model.config.text_config.eos_token_id
    assert adapter.text_pad_id is None
    es = TextElements("red dog ran", adapter)
    assert es.remove == "hide"
    subsets = torch.tensor([[0, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 1]], dtype=torch.float32)
    emb, _ = es.embed(subsets, masked_out=False)
    cos = emb @ emb.T
    assert (cos[0, 1:] < 0.99).all() and cos[1, 2] < 0.99  # distinct subsets, distinct inputs

    out = tmp_path / "clip"
    result = runner.invoke(app, ["explain", str(scene), "--text", "red dog ran", "--explain",
                                 "text", "--model", f"hf:{tiny_clip_dir}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "explanation.json").read_text())
    assert data["settings"]["element_settings"]["remove"] == "hide"
    _bad(["explain", str(scene), "--text", "red dog", "--explain", "text", "--model",
          f"hf:{tiny_clip_dir}", "-O", "text.remove=pad"], tmp_path / "never",
         "no pad token that can stand in for a word")
    _bad(["explain", str(scene), "--text", "red dog", "--explain", "text", "--model",
          f"hf:{tiny_clip_dir}", "--method", "ig"], tmp_path / "never",
         "no pad token for the Integrated Gradients baseline")
    result = runner.invoke(app, ["explain", str(scene), "--text", "red dog ran", "--explain",
                                 "text", "--model", f"hf:{tiny_clip_dir}", "--method",
                                 "gradxinput", "--out", str(tmp_path / "gx")])
    assert result.exit_code == 0, result.output


def test_which_pad_token_can_stand_in_for_a_word(tiny_clip_dir, demo):
    """The rule of `HFAdapter.text_pad_id`: a CLIP text tower reads the text at its first
    end-of-text token (configs since transformers PR #24773) or at its largest id (older
    configs, eos_token_id 2); a pad token it would read there is no pad token. ALIGN (the demo)
    reads its first token, so its end-of-text pad token is kept."""
    adapter = _clip(tiny_clip_dir)
    tower = next(m for m in adapter.model.modules() if isinstance(getattr(m, "eos_token_id", None), int))
    eos = tower.eos_token_id
    assert adapter.tokenizer.pad_token_id == eos and adapter.text_pad_id is None
    adapter.tokenizer.pad_token_id = 5  # a pad token that is not the end of the text
    assert adapter.text_pad_id == 5
    tower.eos_token_id = 2  # the legacy pooling: the largest id, the end-of-text token's here
    assert adapter.text_pad_id == 5
    adapter.tokenizer.pad_token_id = eos
    assert adapter.text_pad_id is None
    assert demo.text_pad_id == demo.tokenizer.pad_token_id is not None
