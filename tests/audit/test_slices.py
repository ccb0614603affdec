"""Failure slices on embeddings with planted flaws: every registered slicer finds a planted
group, none reports a slice where errors fall at random, two components of one failure mode
merge into one slice, and a metadata column that explains a slice names it."""

import numpy as np
import pytest

from audit_testlib import cue_world
from mmattr.audit.slices import (SliceSettings, class_offsets, combine, find_slices,
                                 list_slicers, slice_candidates)


def _blobs(seed: int, n_per: int = 50, k: int = 6, dim: int = 48):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (k, dim)) * 3
    group = np.repeat(np.arange(k), n_per)
    emb = centres[group] + rng.normal(0, 1, (len(group), dim))
    return rng, emb, group


@pytest.mark.parametrize("method", list_slicers())
def test_planted_blob_is_the_top_slice(method):
    rng, emb, group = _blobs(1)
    planted = 3
    p_err = np.where(group == planted, 0.8, 0.05)
    correct = rng.random(len(group)) >= p_err
    slices = find_slices(emb, correct, SliceSettings(method=method))
    assert slices, "the planted slice was not found"
    top = slices[0]
    assert np.mean(group[top.typical] == planted) >= 0.8
    assert len(top.typical) == 10
    assert top.accuracy < 0.5
    assert top.drop == pytest.approx(top.rest_accuracy - top.accuracy)
    assert top.ci_low <= top.accuracy <= top.ci_high < correct.mean()
    assert top.rank == 1 and top.size == len(top.members) and top.errors == int((~correct[top.members]).sum())
    assert top.q_value <= 0.05 and top.p_value <= top.q_value


@pytest.mark.parametrize("method", list_slicers())
def test_random_errors_give_no_slice(method):
    rng, emb, group = _blobs(2)
    correct = rng.random(len(group)) >= 0.1
    assert find_slices(emb, correct, SliceSettings(method=method)) == []


def test_no_errors_no_slices_and_size_check():
    _, emb, group = _blobs(3)
    assert find_slices(emb, np.ones(len(group), bool)) == []
    from mmattr.errors import InputError

    with pytest.raises(InputError):
        find_slices(emb[:10], np.ones(11, bool))


def test_a_cue_across_classes_is_one_slice_in_class_relative_space():
    emb, labels, preds, correct, cue = cue_world(4)
    slices = find_slices(emb, correct, labels=labels, preds=preds)
    assert len(slices) == 1
    top = slices[0]
    assert cue[top.members].mean() >= 0.9 and cue[top.typical].all()
    assert (cue & ~correct)[top.members].sum() >= 0.9 * (cue & ~correct).sum()


def test_two_components_of_one_failure_mode_merge():
    """Forced into two mixture components, the cue group splits; its two halves share their
    offset direction and confusion cells, so they merge back into one slice."""
    emb, labels, preds, correct, cue = cue_world(5, per=60)
    # the cue group is two sub-blobs along a second axis, so a mixture splits it in two
    rng = np.random.default_rng(0)
    half = cue & (rng.random(len(cue)) < 0.5)
    emb[half] += rng.normal(0, 1, emb.shape[1]) * 3
    unmerged = slice_candidates(emb, correct, SliceSettings(merge_cosine=1.1), labels=labels)
    merged = slice_candidates(emb, correct, SliceSettings(), labels=labels, preds=preds)
    cue_parts = [c for c in unmerged if cue[c.members].mean() > 0.8]
    assert len(cue_parts) >= 2, [(c.size, cue[c.members].mean()) for c in unmerged]
    cue_slices = [c for c in merged if cue[c.members].mean() > 0.8]
    assert len(cue_slices) == 1 and cue_slices[0].merged >= 2
    assert cue_slices[0].size >= sum(c.size for c in cue_parts) * 0.9


def test_combine_recomputes_the_statistics():
    emb, labels, preds, correct, cue = cue_world(6)
    (top,) = find_slices(emb, correct, labels=labels, preds=preds)
    a, b = top.members[: top.size // 2], top.members[top.size // 2:]
    from mmattr.audit.slices import Slice

    parts = [Slice(1, 0, m, m[:5], len(m), 0, 0, 0, 0, 0, q_value=q) for m, q in ((a, 0.01), (b, 0.02))]
    both = combine(parts, correct)
    assert both.size == top.size and both.errors == int((~correct[top.members]).sum())
    assert both.q_value == 0.02 and both.merged == 2 and len(both.typical) == 10


def test_offsets_are_relative_to_the_correct_images_of_the_own_class():
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.6, 0.8]])
    labels = np.array([0, 0, 1, 1, 1])
    correct = np.array([True, True, True, True, False])
    off = class_offsets(emb, labels, correct)
    # image 4 (wrong) against the mean of images 2, 3 (class 1, correct)
    assert off[4] == pytest.approx([0.6, -0.2])
    # image 2 against image 3 only (itself left out)
    assert off[2] == pytest.approx([0.0, 0.0])


def test_set_aside_images_are_placed_by_their_features():
    """Images left out of the fit (likely label errors) are placed afterwards: one on the
    failure mode goes to its slice, one among the correct images to none."""
    emb, labels, preds, correct, cue = cue_world(8, per=50)
    ignore = np.zeros(len(labels), bool)
    on_mode = np.flatnonzero(cue & ~correct)[:2]
    off_mode = np.flatnonzero(~cue & correct)[:2]
    ignore[on_mode] = True
    ignore[off_mode] = True
    (top,) = find_slices(emb, correct, labels=labels, preds=preds, ignore=ignore)
    assert not np.isin(np.flatnonzero(ignore), top.members).any()  # never tested members
    assert set(on_mode) <= set(top.aside.tolist())
    assert not set(off_mode) & set(top.aside.tolist())


def test_a_label_error_candidate_inside_a_slice_is_set_back():
    from mmattr.audit import label_issues

    emb, labels, preds, correct, cue = cue_world(9, per=50)
    probs = np.full((len(labels), 6), 0.01)
    probs[np.arange(len(labels)), preds] = 0.95
    check = label_issues.check_labels(emb, probs, labels)
    forced = np.flatnonzero(cue & ~correct)[:3]
    check.label_error[forced] = True
    check.systematic[forced] = False
    check.demote(forced)
    assert not check.label_error[forced].any() and check.systematic[forced].all()
    assert sorted(check.demoted.tolist()) == sorted(forced.tolist())
    assert (check.score[forced] == check.mistakenness[forced]).all()
