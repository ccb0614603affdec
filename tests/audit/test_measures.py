"""Known answers for the audit's measures: Wilson intervals, confusion, calibration, per-class accuracy."""

import numpy as np
import pytest

from mmattr.audit import measures


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
