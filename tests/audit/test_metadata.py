"""Known answers for metadata slices: columns and bins, a value that fails, an interacting pair,
no sub-slice of a reported slice, image properties, and a column that fully explains an
embedding slice (it becomes the slice's first name and merges its parts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audit_testlib import cue_world
from mmattr.audit.metadata import (PROPERTIES, Column, dataset_columns, explain_by_columns,
                                   image_properties, metadata_candidates, prune_sub_slices)
from mmattr.audit.stats import benjamini_hochberg
from mmattr.runner import DataItem


def _items(fields: list[dict]) -> list[DataItem]:
    return [DataItem(str(i), f"{i}.png", Path(f"{i}.png"), "x", fields=f)
            for i, f in enumerate(fields)]


def test_columns_bins_and_what_is_left_out():
    n = 240
    rng = np.random.default_rng(0)
    fields = [{"background": ["striped", "plain"][i % 2], "id": f"img{i}", "const": 1,
               "exposure": float(rng.random()), "site": i % 3, "nested": {"a": 1}}
              for i in range(n)]
    cols = {c.name: c for c in dataset_columns(_items(fields), ["a", "b"] * (n // 2))}
    assert set(cols) == {"label", "background", "exposure", "site"}  # id, const, nested left out
    assert set(cols["site"].values) == {"0", "1", "2"}               # few numbers: categories
    bins = sorted(set(cols["exposure"].values))
    assert len(bins) == 4 and any(b.startswith("lowest") for b in bins)  # quartiles at n ≥ 200
    counts = [cols["exposure"].values.count(b) for b in bins]
    assert min(counts) >= 55


def _tested(cols, correct):
    cands = metadata_candidates(cols, correct, min_support=8)
    for c, q in zip(cands, benjamini_hochberg([c.p_value for c in cands])):
        c.q_value = q
    return {tuple(sorted(c.rule.items())): c for c in cands}


def test_a_failing_value():
    n = 400
    rng = np.random.default_rng(1)
    bg = np.array(["striped", "plain"])[rng.integers(0, 2, n)]
    light = np.array(["dim", "bright"])[rng.integers(0, 2, n)]
    correct = rng.random(n) >= np.where(bg == "striped", 0.5, 0.05)
    rules = _tested([Column("background", bg.tolist(), "field"),
                     Column("light", light.tolist(), "field")], correct)
    striped = rules[(("background", "striped"),)]
    assert striped.q_value < 1e-6 and striped.accuracy < 0.6 and striped.kind == "metadata"
    assert striped.title() == "background = striped"
    assert rules[(("light", "dim"),)].q_value > 0.05          # light has nothing to do with it
    # a pair under the reported value is not reported
    pairs = [c for k, c in rules.items() if len(k) == 2 and ("background", "striped") in k]
    kept = prune_sub_slices([striped, *pairs])
    assert kept == [striped]


def test_an_interacting_pair_whose_values_alone_do_not_fail():
    """Errors in (striped, dim) and (plain, bright): each value alone fails as often as the
    rest, so only the pairs say where the model fails."""
    n = 480
    i = np.arange(n)
    bg = np.array(["striped", "plain"])[i % 2]
    light = np.array(["dim", "bright"])[(i // 2) % 2]
    hot = ((bg == "striped") & (light == "dim")) | ((bg == "plain") & (light == "bright"))
    # exactly 40 % wrong in the two hot cells, 2 in every other cell: balanced values
    correct = np.ones(n, bool)
    for cell in (hot, ~hot):
        idx = np.flatnonzero(cell & (bg == "striped")), np.flatnonzero(cell & (bg == "plain"))
        for part in idx:
            correct[part[: (48 if cell is hot else 2)]] = False
    rules = _tested([Column("background", bg.tolist(), "field"),
                     Column("light", light.tolist(), "field")], correct)
    assert all(rules[((c, v),)].q_value > 0.05
               for c, v in (("background", "striped"), ("light", "dim")))
    pair = rules[(("background", "striped"), ("light", "dim"))]
    assert pair.q_value < 1e-6 and pair.title() == "background = striped & light = dim"
    assert (("background", "striped"), ("light", "bright")) not in rules  # no interaction there
    assert prune_sub_slices([pair]) == [pair]


def test_image_properties_hand_values_and_cache(tmp_path):
    from PIL import Image

    from mmattr.runner import EmbeddingCache, file_digest

    img = np.zeros((2, 4, 3), np.uint8)
    img[:, 2:] = 200  # half black, half grey 200
    path = tmp_path / "a.png"
    Image.fromarray(img).save(path)
    items = [DataItem("a", "a.png", path)]
    cache = EmbeddingCache(tmp_path / "cache")
    digest = file_digest(path)
    props = image_properties(items, [digest], cache)
    got = dict(zip(PROPERTIES, props[0]))
    assert got["width"] == 4 and got["height"] == 2 and got["aspect"] == 2.0
    assert got["brightness"] == pytest.approx(100, abs=0.5)
    assert got["contrast"] == pytest.approx(100, abs=0.5)
    assert got["sharpness"] > 0 and np.isnan(got["object_area"])  # no mask
    path.unlink()  # read back from the cache, not the file
    np.testing.assert_allclose(image_properties(items, [digest], cache), props)
    # without a cache, an unreadable image gets NaNs and the rest goes on
    assert np.isnan(image_properties(items, [digest], None)).all()


def test_a_column_that_explains_an_embedding_slice_names_and_merges_it():
    """A cue in a quarter of every class makes the model fail there; the manifest says which
    images carry it. The audit's analysis finds the embedding slice, explains it by the column
    (its first name), links the metadata slice to it, and reports no metadata slice apart."""
    from mmattr.audit.core import analyse

    k = 6
    emb, labels, preds, correct, cue = cue_world(7, per=50, k=k, cue_scale=2.0, p_rest=0.02)
    logits = np.full((len(labels), k), -5.0)
    logits[np.arange(len(labels)), preds] = 5.0
    names = [f"class {c}" for c in range(k)]
    fields = [{"background": "striped" if c else ["plain", "dots", "grid"][i % 3]}
              for i, c in enumerate(cue)]
    cols = dataset_columns(_items(fields), [names[c] for c in labels])
    result = analyse(emb, logits, labels, names, columns=cols)
    assert len(result.slices) == 1
    top = result.slices[0]
    assert top.explained_by[0]["column"] == "background"
    assert top.explained_by[0]["value"] == "striped" and top.explained_by[0]["share"] >= 0.9
    assert top.title() == "background = striped" and top.same_as == "background = striped"
    (meta,) = [m for m in result.metadata_slices if m.rule == {"background": "striped"}]
    assert meta.same_as == "slice 1"
    assert explain_by_columns(np.flatnonzero(~cue)[::5], cols) == []  # plain images: nothing stands out
