"""One contract for every registered search strategy (`SEARCHES`), built as `mmattr explain`
builds it (`search_from_config`), run on the SMDL objective over a toy CNN's region stack: a
`SearchResult` whose order is a permutation of the regions, one score / term / prefix embedding
per step, scores that are the objective of each prefix, progress reported up to N of N, the same
result twice and for any batch size, and a one-line `InputError` for an option it lacks. A newly
registered strategy is picked up from the registry; one that cannot run here must be listed in
`SKIPPED` with the reason."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmattr.config import ExplainConfig
from mmattr.division import make_divider
from mmattr.errors import InputError
from mmattr.objective import SMDLObjective
from mmattr.regions import RegionStack
from mmattr.search import SEARCHES, Search, SearchResult, config_changes, search_from_config
from mmattr.targets import Target

#: registered strategies the contract cannot run here, each with the reason (none today)
SKIPPED: dict[str, str] = {}


def _cases():
    return [pytest.param(n, marks=pytest.mark.skip(reason=SKIPPED[n])) if n in SKIPPED else n
            for n in SEARCHES.names()]


def _setup(adapter, image, regions=16, batch_size=64):
    labels = make_divider("grid", regions).divide(image)
    stack = RegionStack(image, labels, adapter, batch_size=batch_size)
    target = adapter.encode_target(Target.from_text("a red disc"))
    objective = SMDLObjective(target, stack.embed_regions())  # the default weights
    return stack, objective


def _run(name, adapter, image, **kw):
    stack, objective = _setup(adapter, image, **kw)
    steps = []
    search = search_from_config(ExplainConfig(search=name))
    passes = stack.forward_passes
    result = search.run(objective, stack, progress=lambda done, total: steps.append((done, total)))
    return result, stack, objective, steps, stack.forward_passes - passes


def test_every_skip_names_a_registered_search():
    assert set(SKIPPED) <= set(SEARCHES.names())
    assert all(reason.strip() for reason in SKIPPED.values())


@pytest.mark.parametrize("name", _cases())
def test_search_result_contract(name, toy_cnn, toy_scene):
    assert isinstance(search_from_config(ExplainConfig(search=name)), Search)
    result, stack, objective, steps, passes = _run(name, toy_cnn, toy_scene)
    n = stack.n
    assert isinstance(result, SearchResult)
    assert sorted(result.order) == list(range(n)) and all(type(i) is int for i in result.order)
    assert len(result.scores) == n and np.isfinite(result.scores).all()
    assert set(result.terms) and all(len(v) == n for v in result.terms.values())
    d = toy_cnn.embed_dim
    for emb in (result.prefix_in, result.prefix_out):
        assert emb.shape == (n, d) and emb.dtype == torch.float32 and torch.isfinite(emb).all()
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(n), atol=1e-5, rtol=0)
    # each step's score is the objective of that prefix, its embeddings that prefix's images
    prefixes = torch.zeros(n, n)
    for k in range(n):
        prefixes[k:, result.order[k]] = 1.0
    emb_in, emb_out = stack.embed(prefixes)
    torch.testing.assert_close(result.prefix_in, emb_in, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(result.prefix_out, emb_out, atol=1e-5, rtol=1e-5)
    expected = objective.score(prefixes, emb_in, emb_out)
    np.testing.assert_allclose(result.scores, expected.numpy(), atol=1e-5, rtol=1e-5)
    # progress up to N of N; the passes it reports are the ones it made; settings are JSON
    assert steps and steps[-1] == (n, n) and [s for s, _ in steps] == sorted(s for s, _ in steps)
    assert result.extra["strategy"] == name and result.extra["search_passes"] == passes
    json.dumps(result.extra)


@pytest.mark.parametrize("name", _cases())
@pytest.mark.parametrize("regions", [1, 2, 3])
def test_few_regions(name, regions, toy_cnn, toy_scene):
    result, stack, *_ = _run(name, toy_cnn, toy_scene, regions=regions)
    assert stack.n == regions and sorted(result.order) == list(range(regions))
    assert len(result.scores) == regions and result.prefix_in.shape[0] == regions


@pytest.mark.parametrize("name", _cases())
def test_deterministic_and_independent_of_batch_size(name, toy_cnn, toy_scene):
    ref, *_, ref_passes = _run(name, toy_cnn, toy_scene, batch_size=256)
    again, *_ = _run(name, toy_cnn, toy_scene, batch_size=256)
    assert again.order == ref.order and again.scores == ref.scores
    for batch_size in (1, 3):
        small, *_, passes = _run(name, toy_cnn, toy_scene, batch_size=batch_size)
        assert small.order == ref.order
        np.testing.assert_allclose(small.scores, ref.scores, atol=1e-6, rtol=1e-6)
        for k in ref.terms:
            np.testing.assert_allclose(small.terms[k], ref.terms[k], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(small.prefix_in, ref.prefix_in, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(small.prefix_out, ref.prefix_out, atol=1e-6, rtol=1e-6)
        assert passes == ref_passes


@pytest.mark.parametrize("name", _cases())
def test_unknown_option_is_a_one_line_input_error(name):
    with pytest.raises(InputError) as info:
        config_changes(name, {"no_such_option": 1})
    assert "\n" not in str(info.value)
