"""Known answers for slice names: words the model cannot read are dropped, twins merged, the
score is hand-computable, and a name needs a permutation p-value below α (none: unnamed)."""

from __future__ import annotations

import numpy as np
import pytest

from mmattr.audit.naming import (name_slice, permutation_null, score_phrases, standardise,
                                 unknown_word, vet_phrases)


def test_unknown_words_by_their_pieces():
    assert unknown_word(["striped</w>"]) is None                # one token: known
    assert unknown_word(["▁check", "ered"]) is None              # sub-words, not characters
    assert unknown_word([None]) == "unknown token"
    assert unknown_word(["s", "no", "w</w>"]) == "split into characters"
    assert unknown_word(["t", "e", "x", "t", "u", "red</w>"]) == "6 pieces"


def test_vetting_drops_unreadable_phrases_and_merges_twins():
    pieces = {"on stripes": [["on</w>"], ["stripes</w>"]],
              "in the snow": [["in</w>"], ["the</w>"], [None]],
              "in the sand": [["in</w>"], ["the</w>"], [None]],
              "with dots": [["with</w>"], ["dots</w>"]],
              "with spots": [["with</w>"], ["spots</w>"]]}
    emb = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0], [0, 0, 1.0], [0, 0, 2.0]])
    v = vet_phrases(list(pieces), emb, pieces.get)
    assert v.phrases == ["on stripes", "with dots"]
    assert "does not know 'snow' (unknown token)" in v.dropped["in the snow"]
    assert v.dropped["with spots"] == "same text embedding as 'with dots'"
    assert v.merged == {"with dots": ["with spots"]} and v.checked
    unchecked = vet_phrases(list(pieces), emb, None)
    assert not unchecked.checked and "in the snow" in unchecked.phrases


def test_the_demo_tokenizer_keeps_its_own_words_only():
    from mmattr.adapters import load_adapter
    from mmattr.audit.naming import default_phrases
    from mmattr.audit.predict import phrase_embeddings

    adapter = load_adapter("demo", "cpu")
    phrases = default_phrases()
    v = vet_phrases(phrases, phrase_embeddings(adapter, phrases), adapter.word_pieces)
    assert "on a striped background" in v.phrases
    for gone in ("in the snow", "a black and white photo", "a blurry photo"):
        assert gone in v.dropped and gone not in v.phrases


def test_score_is_each_mistake_against_the_rest_of_its_class():
    # classes 0 (images 0-2) and 1 (images 3-5); focus = image 0 (class 0) and image 3 (class 1)
    z = np.array([[3.0], [0.0], [0.0], [1.0], [1.0], [-2.0]])
    focus = np.array([True, False, False, True, False, False])
    labels = np.array([0, 0, 0, 1, 1, 1])
    # class 0: 3 − mean(0, 0) = 3; class 1: 1 − mean(1, −2) = 1.5; equal weights → 2.25
    assert score_phrases(z, focus, labels)[0] == pytest.approx(2.25)
    # without labels: mean of the focus (2) minus the mean of the others (−0.25)
    assert score_phrases(z, focus)[0] == pytest.approx(2.25)
    z2 = np.array([[3.0], [0.0], [0.0], [5.0], [1.0], [-2.0]])
    assert score_phrases(z2, focus, labels)[0] == pytest.approx((3 + 5.5) / 2)


def _planted(seed: int, effect: float, n: int = 200, phrases: int = 30):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, n)
    sim = rng.normal(0, 1, (n, phrases))
    in_slice = np.zeros(n, bool)
    in_slice[:40] = True
    errors = in_slice & (rng.random(n) < 0.8)
    sim[errors, 0] += effect          # the slice's mistakes match phrase 0 more
    return sim, [f"phrase {i}" for i in range(phrases)], in_slice, errors, labels


def test_a_planted_phrase_is_named_with_its_p_value():
    sim, phrases, in_slice, errors, labels = _planted(0, effect=1.5)
    got = name_slice(sim, phrases, in_slice, errors, labels, permutations=500)
    assert got.names and got.names[0][0] == "phrase 0" and got.names[0][1] > 0
    assert got.names[0][2] <= 1 / 501 * 2 and not got.unnamed
    # every reported name is significant at the family-wise level
    assert all(p <= 0.05 for _, _, p in got.names)


def test_no_phrase_beats_chance_so_the_slice_is_unnamed():
    sim, phrases, in_slice, errors, labels = _planted(1, effect=0.0)
    got = name_slice(sim, phrases, in_slice, errors, labels, permutations=500)
    assert got.names == []
    assert got.unnamed.startswith("no phrase sets its mistakes apart better than chance")
    assert got.best is not None and got.best[2] > 0.05


def test_the_null_is_the_maximum_over_phrases_within_classes():
    sim, phrases, in_slice, errors, labels = _planted(2, effect=0.0)
    z = standardise(sim)
    null = permutation_null(z, errors, labels, permutations=300, seed=0)
    assert null.shape == (300,) and (null >= 0).all()
    again = permutation_null(z, errors, labels, permutations=300, seed=0)
    np.testing.assert_array_equal(null, again)
    # the maximum of 30 phrases' |scores| is larger than one phrase's typical |score|
    one = np.abs(permutation_null(z[:, :1], errors, labels, permutations=300, seed=0))
    assert np.median(null) > np.median(one)
