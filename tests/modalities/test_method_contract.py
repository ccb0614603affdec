"""One contract for every registered method that explains a text or an audio clip (its
``modalities``), run through `mmattr.explain` on the toys: the Explanation's fields, JSON-ready
settings, determinism under a fixed seed, results independent of the batch size, and a
one-line error for a method asked for a modality it does not explain. A newly registered
method is picked up from the registry."""

from __future__ import annotations

import json

import numpy as np
import pytest

import modality_toys as toys
import mmattr
from mmattr.errors import InputError
from mmattr.explainers import EXPLAINERS

TEXT = "a zebra standing in the tall grass"
SETTINGS = {"text": dict(text=TEXT), "audio": dict(audio=(toys.tone_clip(), toys.RATE),
                                                   options={"audio": {"segments": 6}})}


def _cases():
    return [pytest.param(name, modality, id=f"{name}-{modality}")
            for name in EXPLAINERS.names() for modality in ("text", "audio")
            if modality in EXPLAINERS.get(name).modalities]


def _explain(name, modality, **settings):
    model = toys.BagOfWordsAdapter() if modality == "text" else toys.tone_adapter()
    image = np.full((16, 16, 3), 200, np.uint8)
    return mmattr.explain(image, model=model, explain=modality, method=name, seed=0,
                          **SETTINGS[modality], **settings)


def test_the_text_and_audio_methods():
    """The methods the issue names for each side are registered for it."""
    text = {n for n in EXPLAINERS.names() if "text" in EXPLAINERS.get(n).modalities}
    audio = {n for n in EXPLAINERS.names() if "audio" in EXPLAINERS.get(n).modalities}
    assert {"smdl", "occlusion", "lime", "kernelshap", "ig", "gradxinput"} <= text
    assert {"smdl", "occlusion", "lime", "kernelshap"} <= audio


@pytest.mark.parametrize("name,modality", _cases())
def test_explanation_contract(name, modality):
    e = _explain(name, modality)
    n = len(e.elements)
    assert e.modality == modality and e.method == name and n >= 2
    assert sorted(e.order) == list(range(n))
    assert sorted(row["rank"] for row in e.elements) == list(range(1, n + 1))
    assert all(np.isfinite(row["value"]) for row in e.elements)
    assert e.attribution.dtype == np.float32 and e.regions.dtype == np.int32
    assert e.attribution.shape == e.regions.shape and e.regions.max() == n - 1
    assert len(e.insertion_curve) == len(e.deletion_curve) == len(e.curve_x) == n + 1
    assert np.isfinite(e.insertion_auc) and np.isfinite(e.deletion_auc)
    assert e.forward_passes > 0 and e.seconds >= 0
    json.dumps(e.to_dict())  # everything JSON-ready


@pytest.mark.parametrize("name,modality", _cases())
def test_deterministic_and_independent_of_batch_size(name, modality):
    ref = _explain(name, modality, batch_size=256)
    again = _explain(name, modality, batch_size=256)
    assert again.order == ref.order and again.elements == ref.elements
    small = _explain(name, modality, batch_size=1)
    assert small.order == ref.order
    np.testing.assert_allclose([r["value"] for r in small.elements],
                               [r["value"] for r in ref.elements], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small.insertion_curve, ref.insertion_curve, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small.deletion_curve, ref.deletion_curve, rtol=1e-5, atol=1e-6)
    assert small.forward_passes == ref.forward_passes


@pytest.mark.parametrize("name", EXPLAINERS.names())
def test_a_method_refuses_what_it_does_not_explain(name):
    modalities = EXPLAINERS.get(name).modalities
    for modality in ("text", "audio"):
        if modality in modalities:
            continue
        with pytest.raises(InputError, match=f"the {name} method explains") as info:
            _explain(name, modality)
        assert "\n" not in str(info.value)
