"""Known answers for the audit's measures, label-issue scores and slice naming."""

import numpy as np
import pytest

from mmattr.audit import label_issues, measures
from mmattr.audit.naming import name_slice, score_phrases


def test_wilson_interval_hand_values():
    lo, hi = measures.wilson_interval(8, 10)
    # p = 0.8, z = 1.96: centre 0.71675, half-width 0.22657 (worked by hand)
    assert float(lo) == pytest.approx(0.4902, abs=1e-4)
    assert float(hi) == pytest.approx(0.9433, abs=1e-4)
    lo, hi = measures.wilson_interval(0, 5)
    assert float(lo) == 0.0 and float(hi) == pytest.approx(0.4345, abs=1e-4)
    lo, hi = measures.wilson_interval(0, 0)
    assert (float(lo), float(hi)) == (0.0, 1.0)


def test_ece_hand_computed():
    conf = np.array([0.85, 0.85, 0.55, 0.55])
    correct = np.array([1, 0, 1, 1], bool)
    cal = measures.calibration(conf, correct, n_bins=10)
    # bin (0.8, 0.9]: conf 0.85, acc 0.5 -> gap 0.35; bin (0.5, 0.6]: conf 0.55, acc 1 -> 0.45
    assert cal.ece == pytest.approx(0.5 * 0.35 + 0.5 * 0.45)
    assert cal.mce == pytest.approx(0.45)
    assert cal.bin_count[8] == 2 and cal.bin_count[5] == 2 and sum(cal.bin_count) == 4
    # a confidence of exactly 1 lands in the last bin, 0 in the first
    cal = measures.calibration(np.array([1.0, 0.0]), np.array([True, False]), n_bins=4)
    assert cal.bin_count == [1, 0, 0, 1] and cal.ece == 0.0


def test_perfectly_calibrated_is_near_zero():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, 200_000)
    correct = rng.random(conf.size) < conf
    assert measures.calibration(conf, correct).ece < 0.01


def test_confusion_and_pairs():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = np.array([0, 1, 1, 1, 0, 2, 2, 0, 1])
    cm = measures.confusion_matrix(labels, preds, 3)
    assert cm.tolist() == [[1, 2, 0], [1, 1, 0], [1, 1, 2]]
    pairs = measures.most_confused_pairs(cm, ["a", "b", "c"], top=2)
    assert pairs[0] == {"true": "a", "predicted": "b", "count": 2, "share_of_true": 2 / 3}
    assert pairs[1]["count"] == 1
    per = {c.name: c for c in measures.per_class_accuracy(labels, preds, ["a", "b", "c", "d"])}
    assert set(per) == {"a", "b", "c"}  # no image of "d": no row
    assert per["c"].accuracy == 0.5 and per["c"].support == 4 and per["a"].correct == 1


def test_confident_learning_flags_the_mislabelled_image():
    # Class 1's images give it p1 = 0.8 on average; image 4 is labelled 0 but p1 = 0.9.
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.85, 0.15],
                      [0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.2, 0.8]])
    labels = np.array([0, 0, 0, 1, 0, 1, 1])
    t = label_issues.class_thresholds(probs, labels)
    assert t == pytest.approx([(0.9 + 0.8 + 0.85 + 0.1) / 4, (0.8 + 0.7 + 0.8) / 3])
    s = label_issues.label_issue_scores(probs, labels)
    assert np.flatnonzero(s["is_issue"]).tolist() == [4]
    assert s["confident_class"][4] == 1
    assert s["mistakenness"][4] == pytest.approx((1 + 0.9 - 0.1) / 2)
    assert label_issues.likely_label_errors(s).tolist() == [4]
    preds = probs.argmax(1)
    conf = probs.max(1)
    assert label_issues.confident_mistakes(preds, labels, conf).tolist() == [4]


def test_phrase_score_hand_computed():
    # 4 images, 2 phrases; slice = images 0, 1; image 0 is the slice's only mistake.
    sim = np.array([[3.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    in_slice = np.array([True, True, False, False])
    errors = np.array([True, False, False, False])
    z0 = (sim[:, 0] - 1.0) / np.sqrt(1.5)  # mean 1, std sqrt(1.5)
    z1 = sim[:, 1] / np.sqrt(0.5)
    want = [z0[0] - z0[2:].mean(), z1[0] - z1[2:].mean()]
    assert score_phrases(sim, in_slice, errors) == pytest.approx(want)
    names = name_slice(sim, ["stripes", "dots"], in_slice, errors, top=2)
    assert names[0][0] == "stripes" and names[0][1] == pytest.approx(want[0])
    # a slice without mistakes is described by all its members
    none = np.zeros(4, bool)
    assert score_phrases(sim, in_slice, none)[0] == pytest.approx(z0[:2].mean() - z0[2:].mean())
