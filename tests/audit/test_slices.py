"""Failure slices on embeddings with a planted flaw: every registered slicer must find it,
and none may report a slice where errors are spread at random."""

import numpy as np
import pytest

from mmattr.audit.slices import SliceSettings, find_slices, list_slicers


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
    assert top.accuracy < 0.5 and top.drop == pytest.approx(correct.mean() - top.accuracy)
    assert top.ci_low <= top.accuracy <= top.ci_high < correct.mean()
    assert top.rank == 1 and top.size == len(top.members) and top.errors == int((~correct[top.members]).sum())


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
