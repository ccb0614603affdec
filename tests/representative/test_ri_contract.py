"""Contract of the dataset-level explainer registry (`DATASET_EXPLAINERS`): every registered
method fits on reference images and explains one image with a finite map over it in [0, 1],
refuses to explain before `fit`, gives the same interpretation twice and for any batch size,
and a one-line `InputError` for too few reference images. A newly registered method needs a
builder in `BUILDERS` (how to make it with a batch size) or a reason in `SKIPPED`."""

from __future__ import annotations

import numpy as np
import pytest

from mmattr.errors import InputError
from mmattr.explainers.dataset import DATASET_EXPLAINERS, DatasetExplainer
import mmattr.representative  # noqa: F401  (registers "representative")
from mmattr.representative import RIOptions

#: how to build each registered method on an adapter with a given batch size
BUILDERS = {
    "representative": lambda cls, adapter, batch_size: cls(adapter, RIOptions(batch_size=batch_size)),
}
#: registered dataset methods the contract cannot run here, each with the reason (none today)
SKIPPED: dict[str, str] = {}


def _cases():
    return [pytest.param(n, marks=pytest.mark.skip(reason=SKIPPED[n])) if n in SKIPPED else n
            for n in DATASET_EXPLAINERS.names()]


def _build(name, toy, batch_size=32):
    cls = DATASET_EXPLAINERS.get(name)
    assert name in BUILDERS, f"add a builder for the dataset method {name!r} (or a SKIPPED reason)"
    return BUILDERS[name](cls, toy.build_diamond(), batch_size)


def test_every_registered_method_is_built_or_skipped():
    names = set(DATASET_EXPLAINERS.names())
    assert names <= set(BUILDERS) | set(SKIPPED)
    assert set(SKIPPED) <= names and all(reason.strip() for reason in SKIPPED.values())


@pytest.mark.parametrize("name", _cases())
def test_every_dataset_explainer_fits_then_explains(name, toy, diamond_refs):
    images, _ = diamond_refs
    cls = DATASET_EXPLAINERS.get(name)
    assert issubclass(cls, DatasetExplainer) and cls.name == name
    explainer = _build(name, toy)
    with pytest.raises(Exception):
        explainer.explain(images[0])  # not fitted yet
    assert explainer.fit(images) is explainer
    out = explainer.explain(images[20])
    heat = np.asarray(out.heatmap)
    assert heat.shape == images[20].shape[:2] and np.isfinite(heat).all()
    assert heat.min() >= 0.0 and heat.max() <= 1.0


@pytest.mark.parametrize("name", _cases())
def test_deterministic_and_independent_of_batch_size(name, toy, diamond_refs):
    images, _ = diamond_refs
    ref = _build(name, toy, 64).fit(images).explain(images[20])
    again = _build(name, toy, 64).fit(images).explain(images[20])
    np.testing.assert_array_equal(np.asarray(again.heatmap), np.asarray(ref.heatmap))
    for batch_size in (1, 5):
        out = _build(name, toy, batch_size).fit(images).explain(images[20])
        np.testing.assert_allclose(np.asarray(out.heatmap), np.asarray(ref.heatmap),
                                   rtol=1e-5, atol=1e-6)
        assert out.predicted == ref.predicted and out.boundaries == ref.boundaries
        # The same covered images at the same distances. Their order is only compared up to
        # ties: the diamond's references sit symmetrically, so several distances are equal and
        # the toy's float32 features (their BLAS sums change with the batch) break those ties.
        assert sorted(out.ranked.tolist()) == sorted(ref.ranked.tolist())
        by_index = dict(zip(ref.ranked.tolist(), ref.distances.tolist()))
        np.testing.assert_allclose(out.distances, [by_index[i] for i in out.ranked.tolist()],
                                   atol=1e-5)
        np.testing.assert_allclose(out.distances, ref.distances, atol=1e-5)


@pytest.mark.parametrize("name", _cases())
def test_too_few_references_is_a_one_line_input_error(name, toy, diamond_refs):
    images, _ = diamond_refs
    with pytest.raises(InputError) as info:
        _build(name, toy).fit(images[:1])
    assert "\n" not in str(info.value)


def test_registry_names_the_method():
    assert "representative" in DATASET_EXPLAINERS
    with pytest.raises(Exception, match="unknown dataset method"):
        DATASET_EXPLAINERS.get("nope")
