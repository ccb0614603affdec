"""The Python API on the text and audio sides: `explain(..., explain=...)`, `explain_batch`,
the Explanation's fields and its save / load round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.io import wavfile

import modality_toys as toys
import mmattr
from mmattr import Explanation, explain, explain_batch
from mmattr.errors import InputError
from mmattr.metrics.base import auc
from mmattr.targets import Target

TEXT = "a zebra standing in the tall grass"


def _check_elements(e: Explanation, n: int) -> None:
    """What every text or audio explanation holds, as explanation.json documents it."""
    assert len(e.elements) == n and sorted(e.order) == list(range(n))
    for k, i in enumerate(e.order):  # rank 1 is the first element of the order
        assert e.elements[i]["rank"] == k + 1
    assert len(e.curve_x) == len(e.insertion_curve) == len(e.deletion_curve) == n + 1
    assert e.curve_x[0] == 0.0 and e.curve_x[-1] == 1.0
    assert e.insertion_auc == pytest.approx(auc(e.curve_x, e.insertion_curve))
    assert e.deletion_auc == pytest.approx(auc(e.curve_x, e.deletion_curve))
    # the curves meet at the ends: the full input and the empty one
    assert e.insertion_curve[-1] == pytest.approx(e.deletion_curve[0], abs=1e-6)
    assert e.insertion_curve[0] == pytest.approx(e.deletion_curve[-1], abs=1e-6)
    # region_scores reads each element's value back from the per-character / per-sample maps
    values = np.array([row["value"] for row in e.elements], np.float32)
    np.testing.assert_allclose(e.region_scores, values, atol=1e-6)
    inside = e.regions >= 0
    np.testing.assert_allclose(e.attribution[inside], values[e.regions[inside]])
    assert (e.attribution[~inside] == 0).all()


def test_explain_text_fields(bag, bright):
    e = explain(bright, text=TEXT, model=bag, explain="text")
    assert e.modality == "text" and e.text == TEXT and e.method == "smdl"
    assert e.target["kind"] == "image" and e.curve_score == "cosine"
    _check_elements(e, len(TEXT.split()))
    for row, word in zip(e.elements, TEXT.split()):
        a, b = row["span"]
        assert row["label"] == word == TEXT[a:b]
    # one map entry per character: spaces belong to no word
    assert e.attribution.shape == e.regions.shape == (len(TEXT),)
    assert (e.regions[[i for i, c in enumerate(TEXT) if c == " "]] == -1).all()
    # SMDL's default values: (N − rank + 1) / N
    n = len(e.elements)
    assert [row["value"] for row in e.elements] == pytest.approx(
        [(n - row["rank"] + 1) / n for row in e.elements])
    # the image is the target: it is the picture, and no image was explained
    assert e.image.shape == bright.shape and e.source is None


def test_explain_text_returns_tensors_when_asked(bag, bright):
    import torch

    e = explain(bright, text=TEXT, model=bag, explain="text")
    t = explain(bright, text=TEXT, model=bag, explain="text", return_tensors="pt")
    assert torch.is_tensor(t.attribution) and torch.is_tensor(t.regions)
    np.testing.assert_array_equal(t.attribution.numpy(), e.attribution)
    np.testing.assert_array_equal(t.regions.numpy(), e.regions)
    torch.testing.assert_close(t.region_scores, torch.from_numpy(e.region_scores))
    with pytest.raises(InputError, match="return_tensors"):
        explain(bright, text=TEXT, model=bag, explain="text", return_tensors="tf")


def test_explain_text_with_marginal_gains(bag, bright):
    e = explain(bright, text=TEXT, model=bag, explain="text", attribution="gain")
    gains = np.diff(np.concatenate([[0.0], e.scores]))
    assert [e.elements[i]["value"] for i in e.order] == pytest.approx(gains.tolist(), abs=1e-6)


def test_explain_batch_text_is_each_explanation_values(bag, bright):
    images = np.stack([bright, bright[::-1].copy()])
    texts = [TEXT, "the zebra"]
    values = explain_batch(images, texts, model=bag, explain="text")
    assert isinstance(values, list) and [v.shape for v in values] == [(7,), (2,)]
    for image, text, got in zip(images, texts, values):
        e = explain(image, text=text, model=bag, explain="text")
        np.testing.assert_allclose(got, [row["value"] for row in e.elements])
    # targets given as text Targets, and by another method
    again = explain_batch(images, [Target.from_text(t) for t in texts], model=bag,
                          explain="text", method="occlusion")
    e = explain(images[1], text="the zebra", model=bag, explain="text", method="occlusion")
    np.testing.assert_allclose(again[1], [row["value"] for row in e.elements])
    assert int(np.argmax(again[0])) == TEXT.split().index("zebra")


def test_save_and_load_a_text_explanation(bag, bright, tmp_path):
    e = explain(bright, text=TEXT, model=bag, explain="text")
    e.save(tmp_path / "out")
    for name in ("overlay.png", "curves.png", "attribution.npy", "regions.npy"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    data = json.loads((tmp_path / "out" / "explanation.json").read_text())
    assert data["explained"] == {"modality": "text", "elements": e.elements, "text": TEXT}
    assert data["order"] == e.order and data["n_regions"] == len(e.elements)
    assert data["image"] is None  # nothing was explained from an image file
    # image-only settings (division, regions, fill, resizing) would describe nothing here
    assert "division" not in data
    assert not {"division", "regions", "fill", "max_side"} & set(data["settings"])
    assert data["settings"]["element_settings"]["unit"] == "words"
    with pytest.warns(mmattr.errors.MmattrWarning, match="gray"):  # the target was an array
        back = Explanation.load(tmp_path / "out")
    assert back.modality == "text" and back.text == TEXT and back.elements == e.elements
    assert back.order == e.order and back.insertion_curve == pytest.approx(e.insertion_curve)
    np.testing.assert_array_equal(back.attribution, e.attribution)
    np.testing.assert_array_equal(back.regions, e.regions)
    np.testing.assert_allclose(back.region_scores, e.region_scores)
    assert back.to_dict()["explained"] == data["explained"]
    # the display of a text explanation (a notebook's) is the words' picture
    assert "text, 7 words" in repr(back)
    assert back._repr_png_()[:4] == b"\x89PNG" and "top words" in back._repr_html_()


def test_load_a_text_explanation_against_an_image_file(bag, bright, tmp_path):
    from PIL import Image

    path = tmp_path / "zebra.png"
    Image.fromarray(bright).save(path)
    e = explain(path, text=TEXT, model=bag, explain="text")
    assert e.target["image"] == str(path.resolve())
    e.save(tmp_path / "out")
    back = Explanation.load(tmp_path / "out")  # the target image is there: no warning
    np.testing.assert_array_equal(back.image, bright)


def test_explain_audio_fields(tone, bright, tmp_path):
    wave = toys.tone_clip()
    e = explain(bright, audio=(wave, toys.RATE), model=tone, explain="audio",
                options={"audio": {"segments": 8}})
    assert e.modality == "audio" and e.text is None and e.sample_rate == toys.RATE
    np.testing.assert_array_equal(e.waveform, wave)
    _check_elements(e, 8)
    assert e.attribution.shape == e.regions.shape == (len(wave),)
    assert e.regions.tolist() == np.repeat(np.arange(8), 2000).tolist()
    for k, row in enumerate(e.elements):
        assert row["span"] == [2000 * k, 2000 * (k + 1)]
        assert row["start_s"] == pytest.approx(k * 0.25) and row["end_s"] == pytest.approx((k + 1) * 0.25)
    e.save(tmp_path / "a")
    data = json.loads((tmp_path / "a" / "explanation.json").read_text())
    assert data["explained"]["sample_rate"] == toys.RATE
    assert data["explained"]["samples"] == len(wave) and data["explained"]["audio"] is None
    with pytest.warns(mmattr.errors.MmattrWarning, match="gray"):  # the image was an array
        back = Explanation.load(tmp_path / "a")
    # the clip was an array, not a file: its maps come back, the waveform cannot
    assert back.modality == "audio" and back.elements == e.elements and back.waveform is None
    assert "audio, 8 segments" in repr(back)


def test_an_audio_explanation_from_a_file_reads_its_clip_back(tone, tone_wav, tmp_path):
    e = explain(audio=str(tone_wav), text="a beep", model=tone, explain="audio")
    assert e.source == str(tone_wav) and e.target["kind"] == "text"
    e.save(tmp_path / "a")
    data = json.loads((tmp_path / "a" / "explanation.json").read_text())
    assert data["image"] is None and data["explained"]["audio"] == str(tone_wav)
    back = Explanation.load(tmp_path / "a")
    assert back.source == str(tone_wav)
    np.testing.assert_array_equal(back.waveform, e.waveform)


def test_a_wav_target_for_a_text(tone, tmp_path):
    """The text side against an audio clip (ImageBind-style): which words match the sound."""
    path = tmp_path / "beep.wav"
    wavfile.write(str(path), toys.RATE, toys.tone_clip(segments=1, tone_segment=0, noise=0.0))
    e = explain(text="a loud beep now", audio=str(path), model=tone, explain="text")
    assert e.target["kind"] == "audio" and e.elements[e.order[0]]["label"] == "beep"


@pytest.mark.parametrize("kwargs,message", [
    ({"text": TEXT, "explain": "text"}, "needs one target"),
    ({"image": "IMG", "explain": "text"}, "give one text"),
    ({"image": "IMG", "text": " ", "explain": "text"}, "give one text"),
    ({"image": "IMG", "text": TEXT, "explain": "audio"}, "give an audio clip"),
    ({"image": "IMG", "audio": "AUDIO", "text": "a beep", "explain": "audio"},
     "needs one target"),
    ({"image": "IMG", "text": TEXT, "target": "TARGET", "explain": "text"}, "not both"),
    ({"image": "IMG", "text": TEXT, "explain": "text", "score": "probability"},
     "cosine"),
    ({"text": TEXT, "class_name": "zebra", "explain": "text"}, "not a class"),
])
def test_bad_calls_are_one_line(kwargs, message, bag, bright, tone_wav):
    kwargs = {k: {"IMG": bright, "AUDIO": str(tone_wav),
                  "TARGET": Target.from_image(bright)}.get(v, v) if isinstance(v, str) else v
              for k, v in kwargs.items()}
    with pytest.raises(InputError, match=message) as info:
        explain(model=bag, **kwargs)
    assert "\n" not in str(info.value)


def test_image_only_methods_refuse_text(bag, bright):
    with pytest.raises(InputError, match="for explain='text' use") as info:
        explain(bright, text=TEXT, model=bag, explain="text", method="gradcam")
    for name in ("smdl", "occlusion", "lime", "kernelshap", "ig", "gradxinput"):
        assert name in str(info.value)
    with pytest.raises(InputError, match="unknown modality"):
        explain(bright, text=TEXT, model=bag, explain="video")


def test_explain_batch_refuses_audio_in_one_line(tone, bright):
    """A batch is images and their targets: a clip side has no batch form, and says what to
    call instead (not "give an audio clip", which the caller did not omit)."""
    images = np.stack([bright, bright])
    with pytest.raises(InputError, match=r"explain_batch explains images or their texts, "
                                         r"not audio: call explain\(audio="):
        explain_batch(images, ["a beep", "a beep"], model=tone, explain="audio")
