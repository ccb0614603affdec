"""`interpretations_for_groups`: what the audit report shows per class and per slice."""

from __future__ import annotations

import numpy as np

from mmattr.representative import RIOptions, interpretations_for_groups


def test_one_fit_interpretations_per_group_and_errors_reported(toy, diamond_refs):
    images, points = diamond_refs
    inside = np.abs(points).sum(1) < 1
    labels = ["inside" if i else "outside" for i in inside]
    groups = {"inside": np.flatnonzero(inside).tolist(),
              "far corner": np.flatnonzero(points.min(1) > 0.9).tolist()}
    recs = interpretations_for_groups(toy.build_diamond(), images, labels, groups=groups,
                                      per_group=2, options=RIOptions(layer="psi", boundaries=64))
    assert [r.group for r in recs] == ["inside", "inside", "far corner", "far corner"]
    for r in recs:
        assert r.error is None and r.image_index in groups[r.group]
        assert r.summary["coverage"] == r.interpretation.coverage
    assert all(r.summary["predicted"] == "inside" and r.summary["coverage"] == 12
               for r in recs[:2])
    assert all(r.summary["predicted"] == "outside" for r in recs[2:])
    # default groups: one per label
    by_label = interpretations_for_groups(toy.build_diamond(), images, labels, per_group=1,
                                          options=RIOptions(layer="psi", boundaries=16))
    assert sorted(r.group for r in by_label) == ["inside", "outside"]
    # a group whose images cannot be interpreted is reported, not raised
    few = interpretations_for_groups(toy.build_diamond(), images, labels,
                                     groups={"inside": groups["inside"]}, per_group=1,
                                     options=RIOptions(layer="psi", boundaries=16,
                                                       min_class_refs=13))
    assert few[0].interpretation is None and "only 12 reference images" in few[0].error
