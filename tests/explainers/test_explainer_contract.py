"""One contract for every registered explainer (`EXPLAINERS`), run through the public
`mmattr.explain` on the toy CNN of tests/conftest.py: the Explanation's types, shapes and
ranges, determinism under a fixed seed, results independent of the batch size, and a one-line
`InputError` on a bad image. A newly registered method is picked up from the registry; one
that cannot run here must be listed in `SKIPPED` with the reason. Methods that explain no image
(``modalities`` without ``image``, e.g. gradxinput on a text's tokens) have their contract in
tests/modalities/test_method_contract.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mmattr
from mmattr.errors import InputError
from mmattr.explainers import EXPLAINERS
from mmattr.explainers._common import MapExplainer
from mmattr.metrics import auc

#: registered explainers the contract cannot run here, each with the reason (none today)
SKIPPED: dict[str, str] = {}
#: the settings every method runs with: a 12-cell grid (LIME and Kernel SHAP then sample
#: coalitions instead of enumerating them, so the seeded sampling is exercised)
SETTINGS = dict(division="grid", regions=12, search="lazy", seed=0, device="cpu")
#: batch sizes compared: 3 splits every batch unevenly, 256 takes most in one pass
SMALL, LARGE = 1, 256


def _cases():
    return [pytest.param(n, marks=pytest.mark.skip(reason=SKIPPED[n])) if n in SKIPPED else n
            for n in EXPLAINERS.names() if "image" in EXPLAINERS.get(n).modalities]


def _explain(adapter, image, name, **settings):
    return mmattr.explain(image, text="a red disc", model=adapter, method=name,
                          **{**SETTINGS, **settings})


def test_every_skip_names_a_registered_explainer():
    assert set(SKIPPED) <= set(EXPLAINERS.names())
    assert all(reason.strip() for reason in SKIPPED.values())


@pytest.mark.parametrize("name", _cases())
def test_explanation_contract(name, toy_cnn, toy_scene):
    e = _explain(toy_cnn, toy_scene, name, batch_size=LARGE)
    h, w = toy_scene.shape[:2]
    assert e.method == name
    # the map: one finite float32 value per pixel, not constant
    assert e.attribution.shape == (h, w) and e.attribution.dtype == np.float32
    assert np.isfinite(e.attribution).all() and np.ptp(e.attribution) > 0
    # the regions: int32 labels 0..N-1, every label used; the order a permutation of them (or
    # empty for a pixel map), one score per ordered region
    assert e.regions.shape == (h, w) and e.regions.dtype == np.int32
    n = int(e.regions.max()) + 1
    assert set(np.unique(e.regions)) == set(range(n))
    assert e.order == [] or sorted(e.order) == list(range(n))
    assert len(e.scores) == len(e.order) and np.isfinite(e.scores).all()
    assert all(len(v) == len(e.order) for v in e.terms.values())
    # the curves: x from 0 to 1, increasing, one point per step; AUCs are their areas
    x = np.asarray(e.curve_x)
    assert x[0] == 0.0 and x[-1] == pytest.approx(1.0) and np.all(np.diff(x) >= 0)
    assert len(e.insertion_curve) == len(e.deletion_curve) == len(x)
    assert np.isfinite(e.insertion_curve).all() and np.isfinite(e.deletion_curve).all()
    assert e.insertion_auc == pytest.approx(auc(x, e.insertion_curve))
    assert e.deletion_auc == pytest.approx(auc(x, e.deletion_curve))
    assert e.curve_score in ("cosine", "probability")
    assert isinstance(e.forward_passes, int) and e.forward_passes >= 1
    # what explanation.json gets is plain JSON
    json.dumps(e.settings)
    json.dumps(e.terms)


@pytest.mark.parametrize("name", _cases())
def test_deterministic_and_independent_of_batch_size(name, toy_cnn, toy_scene):
    ref = _explain(toy_cnn, toy_scene, name, batch_size=LARGE)
    again = _explain(toy_cnn, toy_scene, name, batch_size=LARGE)
    np.testing.assert_array_equal(again.attribution, ref.attribution)
    assert again.order == ref.order and again.scores == ref.scores
    small = _explain(toy_cnn, toy_scene, name, batch_size=SMALL)
    np.testing.assert_allclose(small.attribution, ref.attribution, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(small.regions, ref.regions)
    assert small.order == ref.order
    np.testing.assert_allclose(small.scores, ref.scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small.insertion_curve, ref.insertion_curve, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small.deletion_curve, ref.deletion_curve, rtol=1e-5, atol=1e-6)
    assert small.forward_passes == ref.forward_passes


@pytest.mark.parametrize("name", _cases())
def test_bad_input_is_a_one_line_input_error(name, toy_cnn, toy_scene):
    bad = [
        np.zeros((8, 8, 2), np.uint8),                       # not an image
        dict(batch_size=0),                                  # a count below 1
        dict(regions=0),
        dict(seed="x"),                                      # not a number
    ]
    for case in bad:
        image, settings = (case, {}) if isinstance(case, np.ndarray) else (toy_scene, case)
        with pytest.raises(InputError) as info:
            _explain(toy_cnn, image, name, **settings)
        assert "\n" not in str(info.value).strip(), str(info.value)


@pytest.mark.parametrize("name", _cases())
def test_a_baseline_checks_its_image_itself(name, toy_cnn):
    """`MapExplainer.explain` promises an InputError for anything but (H, W, 3) uint8."""
    cls = EXPLAINERS.get(name)
    if not issubclass(cls, MapExplainer):
        pytest.skip("only MapExplainer promises its own image check")
    from mmattr.config import ExplainConfig
    from mmattr.targets import Target

    with pytest.raises(InputError):
        cls(ExplainConfig(**SETTINGS)).explain(np.zeros((8, 8, 3), np.float32),
                                               Target.from_text("x"), toy_cnn)
