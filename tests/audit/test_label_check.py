"""Known answers for the label check: a flipped label among clean neighbours is a label error,
a group the model fails on alike is not, and the evidence never comes from the model alone."""

from __future__ import annotations

import numpy as np
import pytest

from mmattr.audit import label_issues
from mmattr.audit.stats import benjamini_hochberg, excess_errors_p, format_p, group_vs_rest_p


def _world(seed: int = 0, per: int = 12, k: int = 6, dim: int = 24):
    """k well-separated classes of `per` images each; a perfect model."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (k, dim)) * 4
    labels = np.repeat(np.arange(k), per)
    emb = centres[labels] + rng.normal(0, 1, (len(labels), dim))
    probs = np.full((len(labels), k), 0.01)
    probs[np.arange(len(labels)), labels] = 1 - 0.01 * (k - 1)
    return rng, emb, labels, probs


def test_a_flipped_label_is_a_label_error():
    rng, emb, labels, probs = _world()
    given = labels.copy()
    flipped = [3, 40]            # an image of class 0 and one of class 3 get wrong labels
    given[3], given[40] = 5, 1
    check = label_issues.check_labels(emb, probs, given)
    assert check.k == 10         # median class size 12, minus one, capped at 10
    assert np.flatnonzero(check.label_error).tolist() == flipped
    assert not check.systematic.any()
    # the neighbours carry the true class: support for the prediction, none for the label
    assert check.prediction_support[3] == 1.0 and check.label_support[3] == 0.0
    assert check.label_errors().tolist() == sorted(flipped, key=lambda i: -check.mistakenness[i])
    assert (check.score[flipped] > 1).all() and (check.score[np.setdiff1d(np.arange(72), flipped)] == 0).all()


def test_a_group_the_model_fails_on_alike_is_not_a_label_error():
    """Six images of class 0 sit next to class 1 (a spurious cue) and the model calls them
    class 1: each has neighbours with the same mistake, so none is a label error, even though
    the model is as confident as on a flipped label."""
    rng, emb, labels, probs = _world(1)
    group = np.flatnonzero(labels == 0)[:6]
    emb[group] = emb[labels == 1].mean(axis=0) + rng.normal(0, 1, (6, emb.shape[1]))
    probs[group] = probs[np.flatnonzero(labels == 1)[0]]      # confidently class 1
    check = label_issues.check_labels(emb, probs, labels)
    assert not check.label_error.any()
    assert check.systematic[group].all() and check.systematic.sum() == 6
    assert (check.same_mistake[group] >= 1).all()


def test_a_reference_model_must_agree():
    rng, emb, labels, probs = _world(2)
    given = labels.copy()
    given[5] = 2
    alone = label_issues.check_labels(emb, probs, given)
    assert alone.label_error[5]
    # a reference model that predicts the given label vetoes it
    ref_pred = labels.copy()
    ref_pred[5] = 2
    vetoed = label_issues.check_labels(emb, probs, given, reference_emb=emb, reference_pred=ref_pred)
    assert not vetoed.label_error[5] and vetoed.systematic[5]
    agreed = label_issues.check_labels(emb, probs, given, reference_emb=emb, reference_pred=labels)
    assert agreed.label_error[5]


def test_neighbours_leave_the_image_out_and_k_follows_the_class_size():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    nn = label_issues.nearest_neighbours(x, 2)
    assert nn[:, 0].tolist() == [1, 0, 3, 2]
    assert (nn != np.arange(4)[:, None]).all()
    assert label_issues.neighbour_count(np.repeat(np.arange(36), 8)) == 7
    assert label_issues.neighbour_count(np.repeat(np.arange(3), 100)) == 10
    assert label_issues.neighbour_count(np.repeat(np.arange(3), 2)) == 3


def test_tests_and_false_discovery_hand_values():
    # P(X >= 3) for X ~ Bin(4, 0.5) = (4 + 1) / 16
    assert excess_errors_p(3, 4, 0.5) == pytest.approx(5 / 16)
    assert excess_errors_p(0, 4, 0.5) == 1.0
    # Fisher exact, one-sided: 4 of 4 wrong, the other 6 all right → p = 1 / C(10, 4)
    assert group_vs_rest_p(4, 4, 4, 10) == pytest.approx(1 / 210)
    # one mistake in 8 when the other 292 have none is not significant on its own
    assert group_vs_rest_p(1, 8, 1, 300) == pytest.approx(8 / 300)
    # BH: p (0.01, 0.04, 0.03, 0.5) → q = (0.04, 0.0533, 0.0533, 0.5)
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.5])
    assert q == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert np.isnan(benjamini_hochberg([np.nan, 0.2])[0])
    assert format_p(1e-9) == "< 1e-6" and format_p(0.0004) == "4e-04" and format_p(0.31) == "0.31"
