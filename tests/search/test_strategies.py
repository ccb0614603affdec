"""Search strategies on toy encoders and toy objectives whose right answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mmattr
from mmattr.division import make_divider
from mmattr.objective import Objective, SMDLObjective, SMDLWeights
from mmattr.regions import RegionStack
from mmattr.search import (DEFAULT_SEARCH, SearchResult, StochasticGreedy, list_searches,
                           make_search, search_from_config)
from mmattr.config import ExplainConfig
from mmattr.errors import InputError

STRATEGIES = ["exact", "lazy", "stochastic", "bidirectional", "beam"]
N = 16


class ModularObjective(Objective):
    """f(S) = Σ_{i∈S} w_i: every gain is fixed, so every greedy variant must find sort(w)."""

    def __init__(self, w: torch.Tensor) -> None:
        self.w = w

    def score(self, subsets, emb_in, emb_out):
        return subsets @ self.w


class FacilityLocation(Objective):
    """f(S) = Σ_j max_{i∈S} sim_ij: monotone submodular, so lazy greedy == exact greedy."""

    def __init__(self, sim: torch.Tensor) -> None:
        self.sim = sim

    def score(self, subsets, emb_in, emb_out):
        masked = self.sim[None].masked_fill(~subsets.bool()[:, :, None], 0.0)  # (C, N, N)
        return masked.max(1).values.sum(-1)


def _stack(adapter, image, n=N, batch_size=64) -> RegionStack:
    labels = make_divider("grid", n).divide(image)
    return RegionStack(image, labels, adapter, batch_size=batch_size)


def _weights(n=N, seed=0) -> torch.Tensor:
    # Distinct values: no ties, so "the same answer" is well defined.
    return torch.from_numpy(np.random.default_rng(seed).permutation(n) + 1.0).float()


def _is_permutation(order, n=N) -> bool:
    return sorted(order) == list(range(n))


def test_registry_has_every_strategy():
    assert set(STRATEGIES) <= set(list_searches())
    assert DEFAULT_SEARCH in STRATEGIES


@pytest.mark.parametrize("name", STRATEGIES)
def test_modular_objective_every_strategy_sorts(name, hotbox, gray_image):
    w = _weights()
    stack = _stack(hotbox, gray_image)
    options = {"epsilon": 1e-9} if name == "stochastic" else {}  # sample everything: exact
    result = make_search(name, **options).run(ModularObjective(w), stack)
    assert isinstance(result, SearchResult)
    assert result.order == torch.argsort(w, descending=True).tolist()
    # Scores are f(prefix): the running sums of the sorted weights.
    np.testing.assert_allclose(result.scores, torch.cumsum(w.sort(descending=True).values, 0))
    assert result.prefix_in.shape == (N, 2) and result.prefix_out.shape == (N, 2)


@pytest.mark.parametrize("batch", [1, 3, 4, 16])
def test_lazy_pass_count_on_modular_objective(batch, hotbox, gray_image):
    # Gains never change: after the full first step each step re-evaluates exactly one batch
    # (plain CELF; the guard's own count is in test_guard.py).
    stack = _stack(hotbox, gray_image)
    result = make_search("lazy", batch=batch, guard=False).run(ModularObjective(_weights()), stack)
    expected = 2 + 2 * N + sum(2 * min(batch, N - t) for t in range(1, N))
    assert stack.forward_passes == expected == result.extra["search_passes"]
    assert result.extra["reevaluation_rounds"] == N - 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lazy_equals_exact_on_submodular_objective(seed, hotbox, gray_image):
    rng = np.random.default_rng(seed)
    sim = torch.from_numpy(rng.random((N, N))).float()
    objective = FacilityLocation(sim)
    exact = make_search("exact").run(objective, _stack(hotbox, gray_image))
    lazy_stack = _stack(hotbox, gray_image)
    lazy = make_search("lazy", batch=2).run(objective, lazy_stack)
    assert lazy.order == exact.order
    np.testing.assert_allclose(lazy.scores, exact.scores, rtol=1e-6)
    assert lazy_stack.forward_passes < N * (N + 1)  # and it saved passes doing so


def test_exact_matches_a_greedy_computed_by_hand(gray_image):
    """A linear encoder: embedding = Σ of visible cells' brightness on their own axis.

    With cosine consistency and collaboration and no effectiveness, f(S) is a closed form of
    the cell brightnesses, so the greedy answer can be computed without the model.
    """
    from mmattr.adapters._preprocess import Preprocess
    from mmattr.adapters.base import Adapter

    class CellSums(Adapter):
        def __init__(self):
            self.spec = "toy:cells"
            self.preprocess = Preprocess(shortest_edge=None, resize_hw=(32, 32), crop_hw=None,
                                         mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
            self.device = torch.device("cpu")

        def encode_images(self, pixels):
            return pixels.mean(1).unfold(1, 8, 8).unfold(2, 8, 8).sum((-1, -2)).flatten(1)

    adapter = CellSums()
    rng = np.random.default_rng(3)
    image = rng.integers(20, 250, size=(32, 32, 3)).astype(np.uint8)
    target = torch.nn.functional.normalize(torch.from_numpy(rng.random(N)).float(), dim=0)
    stack = _stack(adapter, image)
    objective = SMDLObjective(target, torch.eye(N), SMDLWeights(0, 0, 1, 1))
    result = make_search("exact").run(objective, stack)

    b = torch.from_numpy(image.astype(np.float64).mean(2).reshape(4, 8, 4, 8).sum((1, 3))
                         .ravel() / 255.0)
    t = target.double()

    def f(member: np.ndarray) -> float:
        e_in, e_out = b * torch.from_numpy(member), b * torch.from_numpy(1.0 - member)
        cos = lambda e: float(e @ t / e.norm()) if e.norm() > 0 else 0.0  # noqa: E731
        return cos(e_in) + 1.0 - cos(e_out)

    member, expected = np.zeros(N), []
    for _ in range(N):
        gains = [f(np.where(np.arange(N) == c, 1.0, member)) if not member[c] else -math.inf
                 for c in range(N)]
        best = int(np.argmax(gains))
        member[best] = 1.0
        expected.append(best)
    assert result.order == expected


def test_stochastic_pass_count_and_seed(hotbox, gray_image):
    search = StochasticGreedy(epsilon=0.05, seed=7)
    s = math.ceil(math.log(1 / 0.05))
    assert search.sample_size(N) == s == 3
    stack = _stack(hotbox, gray_image)
    objective = ModularObjective(_weights())
    a = search.run(objective, stack)
    assert stack.forward_passes == sum(2 * min(s, N - t) for t in range(N))
    assert a.extra["sample_size"] == s and a.extra["seed"] == 7
    b = StochasticGreedy(epsilon=0.05, seed=7).run(objective, _stack(hotbox, gray_image))
    orders = {tuple(StochasticGreedy(epsilon=0.05, seed=k).run(objective, _stack(hotbox, gray_image)).order)
              for k in range(4)}
    assert a.order == b.order and len(orders) > 1
    assert StochasticGreedy(epsilon=0.01, k=4).sample_size(100) == math.ceil(25 * math.log(100))


def test_bidirectional_pass_count(hotbox, gray_image):
    stack = _stack(hotbox, gray_image)
    result = make_search("bidirectional", shortlist=4).run(ModularObjective(_weights()), stack)
    # Both ends while more than shortlist + 1 remain (16, 14, 12, 10, 8, 6), then the front alone.
    both = [c for c in range(N, 0, -2) if c > 5]
    front_only = list(range(N - 2 * len(both), 0, -1))
    expected = sum(2 * c + 2 * 4 for c in both) + sum(2 * c for c in front_only) + 2
    assert stack.forward_passes == expected
    assert result.extra["back"] == len(both) and result.extra["extra_prefix_passes"] == 2
    assert result.extra["front"] + result.extra["back"] == N


@pytest.mark.parametrize("name", STRATEGIES)
def test_hot_region_first_and_batch_size_invariance(name, hotbox, gray_image):
    ref = mmattr.explain(gray_image, text="x", model=hotbox, division="grid", regions=16,
                         search=name, batch_size=512)
    assert _is_permutation(ref.order)
    # A sample may miss the hot cell for a step or two; once sampled it always wins.
    assert ref.order[0] == 6 if name != "stochastic" else ref.order.index(6) < 4
    assert ref.settings["search_settings"]["strategy"] == name
    assert ref.forward_passes == ref.settings["search_settings"]["search_passes"] + 16 + 2
    for batch_size in (1, 5):
        e = mmattr.explain(gray_image, text="x", model=hotbox, division="grid", regions=16,
                           search=name, batch_size=batch_size)
        assert e.order == ref.order
        np.testing.assert_allclose(e.scores, ref.scores, atol=1e-6)
        np.testing.assert_allclose(e.insertion_curve, ref.insertion_curve, atol=1e-6)
        assert e.forward_passes == ref.forward_passes


def test_fast_strategies_need_fewer_passes(hotbox, gray_image):
    passes = {name: mmattr.explain(gray_image, text="x", model=hotbox, division="grid",
                                   regions=16, search=name).forward_passes
              for name in STRATEGIES}
    assert passes["exact"] == 16 * 17 + 16 + 2
    assert max(passes["lazy"], passes["stochastic"], passes["bidirectional"]) < passes["exact"]


def test_search_from_config_and_bad_options():
    cfg = ExplainConfig(search="stochastic", search_epsilon=0.2, seed=5)
    s = search_from_config(cfg)
    assert isinstance(s, StochasticGreedy) and s.epsilon == 0.2 and s.seed == 5
    assert search_from_config(ExplainConfig(search="lazy", search_batch=3)).batch == 3
    assert search_from_config(ExplainConfig(search="bidirectional", search_shortlist=5)).shortlist == 5
    with pytest.raises(InputError, match="epsilon"):
        make_search("stochastic", epsilon=1.5)
    with pytest.raises(InputError, match="batch"):
        make_search("lazy", batch=0)
    with pytest.raises(InputError, match="stochastic search's k must be at least 1"):
        make_search("stochastic", k=0)
    with pytest.raises(InputError, match="shortlist must be at least 1"):
        make_search("bidirectional", shortlist=0)
    with pytest.raises(InputError, match="unknown search"):
        make_search("fastest")
    with pytest.raises(InputError, match="search_epsilon"):
        ExplainConfig().replace(search_epsilon=0)
