"""The element-set contract, run on every registered modality (`mmattr.elements.MODALITIES`):
what the searches, the objective and the curves rely on, whatever an element is."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import modality_toys as toys
from mmattr.elements import MODALITIES, ElementSet
from mmattr.regions import RegionStack
from mmattr.sound import AudioClip
from mmattr.targets import Target

TEXT = "a zebra on the grass"


def _image():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)
    labels = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 8, 0), 8, 1)  # 2×2 grid
    adapter = toys.PatchColourAdapter()

    def reference(keep: np.ndarray) -> torch.Tensor:  # the image with the kept regions, black
        shown = image * np.isin(labels, np.flatnonzero(keep))[..., None]
        pixels = torch.from_numpy(shown.astype(np.uint8))[None]
        return F.normalize(adapter.encode_images(adapter.preprocess(pixels)).float(), dim=-1)[0]

    return RegionStack(image, labels, adapter), reference


def _text():
    adapter = toys.BagOfWordsAdapter(templates=("{}", "a photo of {}."))
    es = MODALITIES.get("text").from_input(TEXT, adapter)
    words = TEXT.split()

    def reference(keep: np.ndarray) -> torch.Tensor:  # the text of the kept words, a target
        kept = " ".join(w for w, k in zip(words, keep) if k)
        return adapter.encode_target(Target.from_text(kept)) if kept else F.normalize(
            F.normalize(adapter.encode_texts([t.format("") for t in adapter.text_templates]),
                        dim=-1).sum(0), dim=0)

    return es, reference


def _audio():
    adapter = toys.tone_adapter()
    wave = toys.tone_clip()
    es = MODALITIES.get("audio").from_input(AudioClip(wave, toys.RATE), adapter)
    bounds = es.bounds

    def reference(keep: np.ndarray) -> torch.Tensor:  # the clip with the others silenced
        kept = np.zeros_like(wave)
        for i in np.flatnonzero(keep):
            kept[bounds[i]:bounds[i + 1]] = wave[bounds[i]:bounds[i + 1]]
        emb = adapter.encode_waveforms(torch.from_numpy(kept)[None], toys.RATE)[0]
        return F.normalize(emb.float(), dim=0)

    return es, reference


#: a builder per registered modality: (element set, the embedding of the input with only the
#: kept elements, made without the element set)
BUILDERS: dict[str, Callable[[], tuple[ElementSet, Callable[[np.ndarray], torch.Tensor]]]] = {
    "image": _image, "text": _text, "audio": _audio}


def test_every_registered_modality_is_covered():
    assert set(MODALITIES.names()) == set(BUILDERS)


@pytest.fixture(params=sorted(BUILDERS))
def built(request):
    es, reference = BUILDERS[request.param]()
    return request.param, es, reference


def test_contract(built):
    name, es, reference = built
    assert isinstance(es, ElementSet) and es.name == name and MODALITIES.get(name) is type(es)
    n = es.n
    assert n >= 2 and len(es.elements()) == n
    assert all(isinstance(e.label, str) and e.label for e in es.elements())
    # weights: each element's share of the input, summing to one
    w = es.weights.detach().cpu().numpy()
    assert w.shape == (n,) and (w > 0).all() and w.sum() == pytest.approx(1.0, abs=1e-6)
    adj = es.adjacency
    assert adj.shape == (n, n) and torch.equal(adj, adj.T) and not adj.diagonal().any()

    # compose: a batch of subsets → (masked-in, masked-out) model inputs
    g = torch.Generator().manual_seed(0)
    subsets = (torch.rand(5, n, generator=g) > 0.5).float()
    subsets[0], subsets[1] = 0.0, 1.0
    pair = es.compose(subsets.to(es.device))
    assert isinstance(pair, tuple) and len(pair) == 2

    # the two ends: the empty input and the full one, as the model embeds them unmasked
    empty, full = es.embed_ends()
    torch.testing.assert_close(full, reference(np.ones(n, bool)), atol=1e-5, rtol=0)
    torch.testing.assert_close(empty, reference(np.zeros(n, bool)), atol=1e-5, rtol=0)
    assert float(empty @ full) < 0.99  # the toys see every element: the checks below bite

    # any subset: masked-in is the input with only its elements; masked-out is the complement's
    passes = es.forward_passes
    emb_in, emb_out = es.embed(subsets)
    assert es.forward_passes - passes == 5 * 2 * es.passes_per_input
    assert emb_in.shape == emb_out.shape and emb_in.shape[0] == 5
    torch.testing.assert_close(emb_in.norm(dim=-1), torch.ones(5), atol=1e-5, rtol=0)
    for row, e_in, e_out in zip(subsets.numpy() > 0.5, emb_in, emb_out):
        torch.testing.assert_close(e_in, reference(row), atol=1e-5, rtol=0)
        torch.testing.assert_close(e_out, reference(~row), atol=1e-5, rtol=0)

    # one element added to a base (an element outside it, as the greedy searches ask) or
    # removed from it (an element inside it, as the bidirectional search asks)
    base = torch.zeros(n)
    base[::2] = 1.0
    outside, inside = torch.nonzero(base == 0)[:, 0], torch.nonzero(base == 1)[:, 0]
    added, _ = es.embed_add(base, outside)
    removed, _ = es.embed_add(base, inside, remove=True)
    for got, cands, value in ((added, outside, 1.0), (removed, inside, 0.0)):
        for k, c in enumerate(cands.tolist()):
            row = base.clone()
            row[c] = value
            torch.testing.assert_close(got[k], reference(row.numpy() > 0.5), atol=1e-5, rtol=0)
    alone = es.embed_regions()
    for c in range(n):
        torch.testing.assert_close(alone[c], reference(np.eye(n, dtype=bool)[c]), atol=1e-5, rtol=0)

    # results do not depend on how many inputs one encoder call takes
    es.chunk = 1
    one_by_one, _ = es.embed(subsets)
    torch.testing.assert_close(one_by_one, emb_in, atol=1e-5, rtol=0)


def test_the_text_invariant_on_real_architectures(demo, tiny_clip_dir):
    """The full text's embedding is the adapter's text target embedding (text.py's documented
    invariant), for every unit and removal a real tokenizer and text tower allow."""
    from mmattr.adapters import load_adapter
    from mmattr.modalities.text import TextElements

    clip = load_adapter(f"hf:{tiny_clip_dir}", device="cpu")
    for adapter, text, removals in (
            (demo, "a red circle and a blue square", ("drop", "pad", "hide", "pad+hide")),
            (clip, "red dog, ran", ("drop", "hide"))):
        want = adapter.encode_target(Target.from_text(text))
        for unit in ("words", "tokens"):
            for remove in removals:
                es = TextElements(text, adapter, unit=unit, remove=remove)
                empty, full = es.embed_ends()
                assert float(full @ want) == pytest.approx(1.0, abs=1e-5), (unit, remove)
                torch.testing.assert_close(full, want, atol=1e-5, rtol=0)
                assert float(empty @ want) < 0.999  # removing every word changes the text


@pytest.mark.parametrize("family", ["clip", "siglip", "siglip2", "openclip", "imagebind"])
def test_every_text_tower_family_explains_its_words(family, tiny_text_towers):
    """On every family with a text tower (tiny random weights, loaded through the public spec):
    the full text is the text target's embedding, each removal the model allows moves the
    embedding when one word goes (no silent no-op), the removals it does not allow are refused
    in one line, and an SMDL text explanation orders every word."""
    from mmattr import explain
    from mmattr.adapters import load_adapter
    from mmattr.errors import MmattrError
    from mmattr.modalities.text import TextElements

    adapter = load_adapter(tiny_text_towers[family], device="cpu")
    text = "red dog ran fast"
    want = adapter.encode_target(Target.from_text(text))
    allowed = 0
    for remove in ("drop", "pad", "hide", "pad+hide"):
        try:
            es = TextElements(text, adapter, remove=remove)
        except MmattrError as exc:  # refused: says which removal works instead, in one line
            assert "\n" not in str(exc) and "remove" in str(exc), (family, remove, exc)
            continue
        allowed += 1
        _, full = es.embed_ends()
        torch.testing.assert_close(full, want, atol=1e-5, rtol=0)
        one_out = torch.ones(es.n, es.n) - torch.eye(es.n)
        emb, _ = es.embed(one_out)
        assert float((1 - emb @ full).min()) > 1e-6, (family, remove)  # every word matters
    assert allowed >= 1  # drop works for every text tower
    image = np.full((32, 32, 3), 120, np.uint8)
    e = explain(image, text=text, model=adapter, explain="text")
    assert sorted(e.order) == list(range(4)) and [r["label"] for r in e.elements] == text.split()
    if adapter.text_embedding_layer() is not None and adapter.text_pad_id is not None:
        # IG on the token embeddings is complete on the real tower: its values sum to the
        # cosine of the text minus that of every word padded (the path's two ends)
        ig = explain(image, text=text, model=adapter, explain="text", method="ig",
                     options={"ig": {"steps": 64}})
        target = adapter.encode_target(Target.from_image(image))
        empty, full = TextElements(text, adapter, remove="pad").embed_ends()
        total = sum(r["value"] for r in ig.elements)
        assert total == pytest.approx(float(full @ target - empty @ target), abs=1e-3), family


def test_siglip_without_a_tokenizer_mask_reads_its_pads_as_trained(tiny_text_towers):
    """google/siglip's tokenizer returns no attention mask (`model_input_names` is input_ids
    only), so its tower reads the max-length padding; a composed text must be padded and read
    the same way to embed as the typed text does, for every removal."""
    from mmattr.adapters import load_adapter
    from mmattr.modalities.text import TextElements

    adapter = load_adapter(tiny_text_towers["siglip"], device="cpu", cache=None)
    adapter.tokenizer.model_input_names = ["input_ids"]
    text = "red dog"
    want = adapter.encode_target(Target.from_text(text))
    for remove in ("drop", "pad", "hide", "pad+hide"):
        es = TextElements(text, adapter, remove=remove)
        _, full = es.embed_ends()
        torch.testing.assert_close(full, want, atol=1e-5, rtol=0)


def test_words_the_model_never_reads_are_not_explained(demo):
    """The demo's text tower reads 32 tokens: a caption six times that long has words past the
    limit in every prompt template, whose removal could change nothing. They are left out with
    one warning naming where the read text stops, and the full text still embeds exactly as
    the (equally cut) text target does."""
    from mmattr.errors import MmattrWarning
    from mmattr.modalities.text import TextElements

    text = " ".join(["a red circle and a blue square"] * 6)
    with pytest.warns(MmattrWarning, match=r"its last 16 words \(from 'blue' on\) lie past"):
        es = TextElements(text, demo)
    assert es.n == 42 - 16 and [e.label for e in es.elements()] == text.split()[:26]
    _, full = es.embed_ends()
    torch.testing.assert_close(full, demo.encode_target(Target.from_text(text)), atol=1e-5,
                               rtol=0)
    # every word left owns a token the model reads, in at least one prompt template
    read = {int(o) for tpl in es.templated() for o in tpl.owner.tolist() if o >= 0}
    assert read == set(range(es.n))
