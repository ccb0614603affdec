"""One contract for every registered metric (`METRICS`), scored as `mmattr evaluate` scores it
(`TargetScore` as the context's score function): the columns it declares in
`higher_is_better` and no other scalars, finite floats in [0, 1] for a score in [0, 1] (AUCs over
x in [0, 1], shares, drops, hits), curves as lists with their x, `MetricSkipped` when the mask
or the model it declares a need for is missing, the same values twice and for any batch size.
A newly registered metric is picked up from the registry; one that cannot run here must be
listed in `SKIPPED` with the reason. Metrics of text explanations only (``modalities`` without
``image``, e.g. keywords) are tested in tests/modalities."""

from __future__ import annotations

import numpy as np
import pytest

import mmattr
from mmattr.errors import InputError
from mmattr.metrics import METRICS, EvalContext, Metric, MetricSkipped, TargetScore, make_metric
from mmattr.targets import Target

#: registered metrics the contract cannot run here, each with the reason (none today)
SKIPPED: dict[str, str] = {}
TARGET = Target.from_text("a red disc")


def _cases():
    return [pytest.param(n, marks=pytest.mark.skip(reason=SKIPPED[n])) if n in SKIPPED else n
            for n in METRICS.names() if "image" in METRICS.get(n).modalities]


@pytest.fixture
def vocabulary(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("a red disc\na blue bar\ngrey noise\n")
    return str(path)


@pytest.fixture
def explanation(toy_cnn, toy_scene):
    # SMDL: a map and the region-level curves the *_region metrics read
    return mmattr.explain(toy_scene, target=TARGET, model=toy_cnn, division="grid", regions=12,
                          search="lazy", device="cpu")


@pytest.fixture
def mask(toy_scene):
    yy, xx = np.mgrid[:toy_scene.shape[0], :toy_scene.shape[1]]
    return (yy - 14) ** 2 + (xx - 30) ** 2 < 64  # the disc


def _score(name, adapter, toy_scene, explanation, mask, vocabulary, batch_size):
    scorer = TargetScore(adapter, TARGET, score="probability", vocabulary=vocabulary,
                         batch_size=batch_size)
    ctx = EvalContext(image=toy_scene, score_fn=scorer, mask=mask, device=adapter.device, seed=0)
    return make_metric(name).evaluate(explanation, ctx)


def test_every_skip_names_a_registered_metric():
    assert set(SKIPPED) <= set(METRICS.names())
    assert all(reason.strip() for reason in SKIPPED.values())


@pytest.mark.parametrize("name", _cases())
def test_metric_values_contract(name, toy_cnn, toy_scene, explanation, mask, vocabulary):
    metric = make_metric(name)
    assert isinstance(metric, Metric) and metric.name == name and metric.higher_is_better
    values = _score(name, toy_cnn, toy_scene, explanation, mask, vocabulary, 64)
    scalars = {k: v for k, v in values.items() if not isinstance(v, list)}
    assert set(scalars) == set(metric.higher_is_better)
    for key, v in scalars.items():
        assert isinstance(v, float) and np.isfinite(v), (key, v)
        assert 0.0 <= v <= 1.0, (key, v)  # the probability score is in [0, 1]
    for key, curve in values.items():
        if isinstance(curve, list) and key.endswith("_curve"):
            x = values[key[:-len("_curve")] + "_x"]
            assert len(x) == len(curve) and all(isinstance(c, float) for c in curve)
            assert all(0.0 <= c <= 1.0 for c in curve) and all(0.0 <= t <= 1.0 for t in x)


@pytest.mark.parametrize("name", _cases())
def test_deterministic_and_independent_of_batch_size(name, toy_cnn, toy_scene, explanation,
                                                     mask, vocabulary):
    ref = _score(name, toy_cnn, toy_scene, explanation, mask, vocabulary, 64)
    assert _score(name, toy_cnn, toy_scene, explanation, mask, vocabulary, 64) == ref
    for batch_size in (1, 3):
        small = _score(name, toy_cnn, toy_scene, explanation, mask, vocabulary, batch_size)
        assert small.keys() == ref.keys()
        for key in ref:
            np.testing.assert_allclose(small[key], ref[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name", _cases())
def test_declared_needs_are_skips(name, toy_cnn, toy_scene, explanation, mask, vocabulary):
    metric = make_metric(name)
    scorer = TargetScore(toy_cnn, TARGET, score="probability", vocabulary=vocabulary)
    no_model = EvalContext(image=toy_scene, score_fn=None, mask=mask)
    no_mask = EvalContext(image=toy_scene, score_fn=scorer, mask=None)
    for ctx, needed in ((no_model, metric.needs_model), (no_mask, metric.needs_mask)):
        if needed:
            with pytest.raises(MetricSkipped):
                metric.evaluate(explanation, ctx)
        else:
            assert metric.evaluate(explanation, ctx)


def test_unknown_metric_is_a_one_line_input_error():
    with pytest.raises(InputError) as info:
        make_metric("insertoin")
    assert "\n" not in str(info.value) and "insertion" in str(info.value)
