"""The text side against known answers: a bag-of-words text tower in which one word ("zebra")
decides the match with the image and every other word only dilutes it (`modality_toys`)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import modality_toys as toys
from mmattr import explain
from mmattr.errors import InputError, ModelError
from mmattr.metrics.base import auc
from mmattr.modalities.text import TextElements
from mmattr.targets import Target

TEXT = "a zebra standing in the tall grass today"
WORDS = TEXT.split()
ZEBRA = WORDS.index("zebra")


def _target(adapter, image) -> torch.Tensor:
    return adapter.encode_target(Target.from_image(image))


def _text_cos(adapter, words: list[str], image) -> float:
    """The cosine of the text made of `words` to the image, computed straight from the toy:
    each template's embedding normalised, summed, normalised (a text target's encoding)."""
    rows = adapter.encode_texts([t.format(" ".join(words)) for t in adapter.text_templates])
    emb = F.normalize(F.normalize(rows, dim=-1).sum(0), dim=0)
    return float(emb @ _target(adapter, image))


@pytest.mark.parametrize("tokens,remove,resolved", [
    (True, "auto", "pad+hide"), (True, "drop", "drop"), (True, "pad", "pad"),
    (True, "hide", "hide"), (True, "pad+hide", "pad+hide"),
    (False, "auto", "drop"), (False, "drop", "drop")])
def test_smdl_ranks_the_deciding_word_first(tokens, remove, resolved, bright):
    adapter = toys.BagOfWordsAdapter(tokens=tokens, templates=("{}", "a photo of {}."))
    e = explain(bright, text=TEXT, model=adapter, explain="text",
                options={"text": {"remove": remove}})
    assert e.settings["element_settings"]["remove"] == resolved
    labels = [e.elements[i]["label"] for i in e.order]
    assert labels[0] == "zebra" and sorted(labels) == sorted(WORDS)
    assert e.elements[ZEBRA]["rank"] == 1
    # every filler word is worth less than the deciding one
    values = [row["value"] for row in e.elements]
    assert all(values[ZEBRA] > v for i, v in enumerate(values) if i != ZEBRA)
    # The curves are measured, not made up: the empty text, "zebra" alone and the whole text,
    # each encoded straight by the toy, are the insertion curve's first, second and last points
    # (every removal of this toy is the same as dropping the word).
    assert e.curve_score == "cosine"
    assert e.insertion_curve[0] == pytest.approx(_text_cos(adapter, [], bright), abs=1e-5)
    assert e.insertion_curve[1] == pytest.approx(_text_cos(adapter, ["zebra"], bright), abs=1e-5)
    assert e.insertion_curve[-1] == pytest.approx(_text_cos(adapter, WORDS, bright), abs=1e-5)
    # deletion: without "zebra" first, the match falls to the fillers' alone
    rest = [w for w in WORDS if w != "zebra"]
    assert e.deletion_curve[1] == pytest.approx(_text_cos(adapter, rest, bright), abs=1e-5)
    assert e.insertion_auc == pytest.approx(auc(e.curve_x, e.insertion_curve))
    assert e.curve_x == pytest.approx(np.linspace(0, 1, len(WORDS) + 1).tolist(), abs=1e-6)


def test_every_removal_gives_the_same_order_and_curves_on_the_toy(bag, bright):
    """On this toy, dropping, padding (the pad row is zero) and hiding a word give the very
    same embedding, so the four removals must give one order and one pair of curves."""
    runs = {rm: explain(bright, text=TEXT, model=bag, explain="text",
                        options={"text": {"remove": rm}})
            for rm in ("drop", "pad", "hide", "pad+hide")}
    first = runs["drop"]
    for rm, e in runs.items():
        assert e.order == first.order, rm
        np.testing.assert_allclose(e.insertion_curve, first.insertion_curve, atol=1e-5)
        np.testing.assert_allclose(e.deletion_curve, first.deletion_curve, atol=1e-5)
    # pad+hide composes two inputs per template: twice pad's forward passes
    assert runs["pad+hide"].forward_passes == 2 * runs["pad"].forward_passes


@pytest.mark.parametrize("method", ["occlusion", "lime", "kernelshap", "ig", "gradxinput"])
def test_baselines_rank_the_deciding_word_first(method, bag, bright):
    e = explain(bright, text=TEXT, model=bag, explain="text", method=method)
    assert e.method == method and e.modality == "text"
    assert e.elements[e.order[0]]["label"] == "zebra"
    values = np.array([row["value"] for row in e.elements])
    assert values[ZEBRA] > 0
    assert (np.delete(values, ZEBRA) < values[ZEBRA]).all()
    # the curves over words are measured alike for every method (same element set, score)
    assert len(e.insertion_curve) == len(e.deletion_curve) == len(WORDS) + 1
    assert e.insertion_curve[1] == pytest.approx(_text_cos(bag, ["zebra"], bright), abs=1e-5)


def test_occlusion_values_are_the_drop_of_the_match(bag, bright):
    """Leave one out: a word's value is cos(text) − cos(text without it)."""
    e = explain(bright, text=TEXT, model=bag, explain="text", method="occlusion")
    full = _text_cos(bag, WORDS, bright)
    for i, row in enumerate(e.elements):
        without = _text_cos(bag, WORDS[:i] + WORDS[i + 1:], bright)
        assert row["value"] == pytest.approx(full - without, abs=1e-5), row["label"]
    # a filler word only dilutes the match: leaving it out raises the cosine
    assert all(row["value"] < 0 for i, row in enumerate(e.elements) if i != ZEBRA)


def test_kernelshap_is_exact_shapley_over_words(bag, bright):
    """Four words: every coalition fits the budget, so the values are the exact Shapley values,
    computed here by their definition over the toy's own text encodings."""
    words = ["the", "zebra", "runs", "fast"]
    e = explain(bright, text=" ".join(words), model=bag, explain="text", method="kernelshap")
    n = len(words)

    def f(keep: tuple[int, ...]) -> float:
        return _text_cos(bag, [words[i] for i in sorted(keep)], bright)

    for i in range(n):
        others = [j for j in range(n) if j != i]
        phi = sum(math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
                  * (f(s + (i,)) - f(s))
                  for k in range(n) for s in itertools.combinations(others, k))
        assert e.elements[i]["value"] == pytest.approx(phi, abs=1e-4), words[i]


def test_gradient_x_input_has_its_closed_form(bright):
    """One template, a bag of token embeddings s = Σ e_t: ∂cos(s, t)/∂e_t = (t − cos·ŝ)/|s|, so a
    word's gradient × input is e_w · (t − cos·ŝ)/|s|, summed over its tokens."""
    adapter = toys.BagOfWordsAdapter(tokens=True, templates=("{}",))
    text = "zebra on grass"
    e = explain(bright, text=text, model=adapter, explain="text", method="gradxinput")
    table = toys.embedding_table().double()
    tok = adapter.tokenize_text(text)
    s = table[list(tok.ids)].sum(0)
    t = _target(adapter, bright).double()
    cos = float(F.normalize(s, dim=0) @ t)
    grad = (t - cos * F.normalize(s, dim=0)) / s.norm()
    for i, (word, a, b) in enumerate([("zebra", 0, 5), ("on", 6, 8), ("grass", 9, 14)]):
        ids = [tid for tid, (x, y) in zip(tok.ids, tok.offsets) if x >= a and y <= b and y > x]
        want = float(sum(table[tid] @ grad for tid in ids))
        assert e.elements[i]["label"] == word
        assert e.elements[i]["value"] == pytest.approx(want, abs=1e-5), word
    assert e.forward_passes == 1  # one pass per template


def test_integrated_gradients_complete(bag, bright):
    """IG from the pad token (a zero row) at every word: the values sum to cos(text) −
    cos(every word padded), the insertion curve's last and first points on this toy."""
    e = explain(bright, text=TEXT, model=bag, explain="text", method="ig",
                options={"ig": {"steps": 64}})
    total = sum(row["value"] for row in e.elements)
    assert total == pytest.approx(e.insertion_curve[-1] - e.insertion_curve[0], abs=2e-3)
    assert e.forward_passes == 64 * len(bag.text_templates)


def test_tokens_are_the_elements_with_their_spans(bag, bright):
    text = "zebra, grazing quietly"
    e = explain(bright, text=text, model=bag, explain="text", options={"text": {"unit": "tokens"}})
    labels = [row["label"] for row in e.elements]
    assert labels == ["zebra", ",", "graz", "ing", "quie", "tly"]  # the toy's 4-letter pieces
    for row in e.elements:
        a, b = row["span"]
        assert text[a:b] == row["label"]
    assert e.elements[e.order[0]]["label"] == "zebra"
    # words: punctuation stays with its word
    w = explain(bright, text=text, model=bag, explain="text")
    assert [row["label"] for row in w.elements] == ["zebra,", "grazing", "quietly"]
    assert w.elements[w.order[0]]["label"] == "zebra,"


def test_text_is_explained_as_the_target_encodes_it(bag, bright):
    """Spaces are normalised (the full text's embedding is the text target's), and a text
    target's templates are used: the full text matches the target embedding."""
    e = explain(bright, text="  a   zebra\there ", model=bag, explain="text")
    assert e.text == "a zebra here"
    assert [row["label"] for row in e.elements] == ["a", "zebra", "here"]
    want = float(bag.encode_target(Target.from_text("a zebra here")) @ _target(bag, bright))
    assert e.insertion_curve[-1] == pytest.approx(want, abs=1e-5)


def test_without_token_access_only_drop_words_work(bright):
    adapter = toys.BagOfWordsAdapter(tokens=False)
    for options in ({"remove": "pad"}, {"remove": "hide"}, {"remove": "pad+hide"},
                    {"unit": "tokens"}):
        with pytest.raises(ModelError, match="no token access") as info:
            explain(bright, text=TEXT, model=adapter, explain="text", options={"text": options})
        assert "text.remove=drop" in str(info.value) and "\n" not in str(info.value)
    for method in ("ig", "gradxinput"):
        with pytest.raises(ModelError, match="token embeddings"):
            explain(bright, text=TEXT, model=adapter, explain="text", method=method)


def test_pad_needs_a_pad_token(bright):
    class NoPad(toys.BagOfWordsAdapter):
        text_pad_id = None  # token access, but no pad token

    adapter = NoPad()
    with pytest.raises(ModelError, match="no pad token"):
        TextElements(TEXT, adapter, remove="pad")
    with pytest.raises(ModelError, match="Integrated Gradients baseline"):
        explain(bright, text=TEXT, model=adapter, explain="text", method="ig")
    # auto keeps the positions: the words are hidden, not dropped
    assert TextElements(TEXT, adapter).remove == "hide"
    e = explain(bright, text=TEXT, model=adapter, explain="text")
    assert e.elements[e.order[0]]["label"] == "zebra"


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_text_is_one_line(text, bag):
    with pytest.raises(InputError):
        TextElements(text, bag)  # type: ignore[arg-type]


def test_bad_unit_and_removal_are_one_line(bag):
    with pytest.raises(InputError, match="unknown text unit"):
        TextElements(TEXT, bag, unit="letters")
    with pytest.raises(InputError, match="unknown text removal"):
        TextElements(TEXT, bag, remove="erase")


@pytest.mark.parametrize("search", ["exact", "lazy", "bidirectional", "beam", "stochastic"])
def test_every_search_runs_over_words(search, bag, bright):
    """The searches never look at what an element is: each orders the words, and the
    deterministic greedy ones put the deciding word first."""
    e = explain(bright, text=TEXT, model=bag, explain="text", search=search)
    assert sorted(e.order) == list(range(len(WORDS)))
    assert e.settings["search_settings"]["strategy"] == search
    if search != "stochastic":  # (it scores a random sample of the words at each step)
        assert e.elements[e.order[0]]["label"] == "zebra"


def test_integrated_gradients_on_tokens_match_captum(bright):
    """Cross-check with a peer library: mmattr's IG over token embeddings (two prompt templates
    averaged, the pad token's embedding as the baseline at the explained words) equals Captum's
    LayerIntegratedGradients on the same embedding layer, same baseline, same midpoint rule."""
    captum_attr = pytest.importorskip("captum.attr")
    from mmattr.explainers._common import target_embedding
    from mmattr.explainers.gradient import token_attributions

    bag = toys.BagOfWordsAdapter(templates=("{}", "a photo of {}"))
    elements = TextElements(TEXT, bag)
    target = target_embedding(bag, Target.from_image(bright)).float()
    ours, _ = token_attributions(elements, target, bag, steps=16, baseline=True)

    seqs = elements.templated()
    length = max(int(q.ids.shape[0]) for q in seqs)
    ids = torch.full((len(seqs), length), toys.PAD, dtype=torch.long)
    mask = torch.zeros_like(ids)
    owner = torch.full_like(ids, -1)
    for i, q in enumerate(seqs):
        ids[i, : q.ids.shape[0]], mask[i, : q.ids.shape[0]] = q.ids, 1
        owner[i, : q.ids.shape[0]] = q.owner
    base = torch.where(owner >= 0, torch.full_like(ids, toys.PAD), ids)

    def forward(batch: torch.Tensor) -> torch.Tensor:  # (B, T, L) ids → (B,) cosine
        b = batch.shape[0]
        out = bag.encode_token_ids(batch.reshape(-1, length), mask.repeat(b, 1))
        out = F.normalize(out.float(), dim=-1).reshape(b, len(seqs), -1).sum(1)
        return F.normalize(out, dim=-1) @ target

    lig = captum_attr.LayerIntegratedGradients(forward, bag.text_embedding_layer())
    theirs = lig.attribute(ids[None], baselines=base[None], n_steps=16,
                           method="riemann_middle").sum(-1).reshape(len(seqs), length)
    per_word = torch.zeros(elements.n).index_add_(0, owner[owner >= 0],
                                                  theirs[owner >= 0].float())
    np.testing.assert_allclose(ours, per_word.numpy(), atol=1e-5)
    assert int(np.argmax(ours)) == TEXT.split().index("zebra")
