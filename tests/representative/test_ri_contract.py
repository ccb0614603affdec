"""Contract of the dataset-level explainer registry: every registered method fits on
reference images and explains one image with a map over it."""

from __future__ import annotations

import numpy as np
import pytest

from mmattr.explainers.dataset import DATASET_EXPLAINERS, DatasetExplainer
import mmattr.representative  # noqa: F401  (registers "representative")


@pytest.mark.parametrize("name", DATASET_EXPLAINERS.names())
def test_every_dataset_explainer_fits_then_explains(name, toy, diamond_refs):
    images, _ = diamond_refs
    cls = DATASET_EXPLAINERS.get(name)
    assert issubclass(cls, DatasetExplainer) and cls.name == name
    explainer = cls(toy.build_diamond())
    with pytest.raises(Exception):
        explainer.explain(images[0])  # not fitted yet
    assert explainer.fit(images) is explainer
    out = explainer.explain(images[20])
    heat = np.asarray(out.heatmap)
    assert heat.shape == images[20].shape[:2] and np.isfinite(heat).all()


def test_registry_names_the_method():
    assert "representative" in DATASET_EXPLAINERS
    with pytest.raises(Exception, match="unknown dataset method"):
        DATASET_EXPLAINERS.get("nope")
