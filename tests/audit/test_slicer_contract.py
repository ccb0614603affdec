"""One contract for every registered audit slicer (`SLICERS`): `fit` returns the slicer,
`assign` gives one component in [0, n_slices) and one finite distance ≥ 0 per image, the same
partition twice for a seed, whatever the images' order, and through `find_slices` a list of
`Slice`s or a one-line `InputError`. Slicers have no batch size (they see every embedding at
once), so there is none to vary. A newly registered slicer is picked up from the registry; one
that cannot run here must be listed in `SKIPPED` with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from mmattr.audit.slices import (SLICERS, Slice, SliceSettings, Slicer, embedding_features,
                                 find_slices)
from mmattr.errors import InputError

#: registered slicers the contract cannot run here, each with the reason (none today)
SKIPPED: dict[str, str] = {}


def _cases():
    return [pytest.param(n, marks=pytest.mark.skip(reason=SKIPPED[n])) if n in SKIPPED else n
            for n in SLICERS.names()]


def _data(seed=0, n_per=30, k=4, dim=16):
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(k), n_per)
    emb = rng.normal(0, 1, (k, dim))[group] * 3 + rng.normal(0, 1, (len(group), dim))
    errors = rng.random(len(group)) < np.where(group == 1, 0.8, 0.05)
    return embedding_features(emb, dims=8), errors


def _fit(name, features, errors, n_slices=4, seed=0):
    slicer = SLICERS.get(name)(n_slices, seed=seed)
    assert isinstance(slicer, Slicer)
    assert slicer.fit(features, errors) is slicer
    return slicer.assign()


def test_every_skip_names_a_registered_slicer():
    assert set(SKIPPED) <= set(SLICERS.names())
    assert all(reason.strip() for reason in SKIPPED.values())


@pytest.mark.parametrize("name", _cases())
def test_assignment_contract(name):
    features, errors = _data()
    labels, distance = _fit(name, features, errors)
    assert labels.shape == distance.shape == (len(features),)
    assert np.issubdtype(labels.dtype, np.integer) and labels.min() >= 0 and labels.max() < 4
    assert np.isfinite(distance).all() and (distance >= 0).all()
    one, _ = _fit(name, features, errors, n_slices=1)
    assert not one.any()


@pytest.mark.parametrize("name", _cases())
def test_deterministic_and_independent_of_order(name):
    features, errors = _data()
    labels, distance = _fit(name, features, errors)
    again, again_d = _fit(name, features, errors)
    np.testing.assert_array_equal(again, labels)
    np.testing.assert_array_equal(again_d, distance)
    # the same partition (up to renaming components) when the images come in another order
    perm = np.random.default_rng(1).permutation(len(features))
    shuffled, _ = _fit(name, features[perm], errors[perm])
    same = labels[perm][:, None] == labels[perm][None, :]
    np.testing.assert_array_equal(shuffled[:, None] == shuffled[None, :], same)


@pytest.mark.parametrize("name", _cases())
def test_find_slices_contract(name):
    rng = np.random.default_rng(2)
    group = np.repeat(np.arange(4), 40)
    emb = rng.normal(0, 1, (4, 16))[group] * 3 + rng.normal(0, 1, (len(group), 16))
    correct = rng.random(len(group)) >= np.where(group == 2, 0.8, 0.05)
    slices = find_slices(emb, correct, SliceSettings(method=name, n_components=4))
    assert all(isinstance(s, Slice) for s in slices)
    assert [s.rank for s in slices] == list(range(1, len(slices) + 1))
    for s in slices:
        assert 0 <= s.accuracy <= 1 and s.size == len(s.members) and set(s.typical) <= set(s.members)
    with pytest.raises(InputError) as info:
        find_slices(emb[:10], correct, SliceSettings(method=name))
    assert "\n" not in str(info.value)
