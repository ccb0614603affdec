"""Known answers for where lazy greedy's stale-gain shortcut fails and the guard does not, and
for the beam search that sees past the greedy's myopic steps.

The toy objectives are set functions with a planted interaction: a region whose gain is ~0
alone and large once its partners are in (the objective is not submodular there, so a stale
gain is no bound). The regions are the cells of a 4 × 4 grid (id = 4·row + col), so which
regions are neighbours is known.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmattr.division import make_divider
from mmattr.objective import Objective
from mmattr.regions import RegionStack
from mmattr.search import make_search

N = 16


class Planted(Objective):
    """f(S) = Σ tiny modular weights + Σ single bonuses + Σ bonuses of sets fully inside S.

    The modular weights (1e-4 · (a permutation + 1)) break ties and make every other gain
    flat; a member of a bonus set without a single bonus weighs 0: worth nothing alone."""

    def __init__(self, singles: dict[int, float], sets: list[tuple[tuple[int, ...], float]],
                 seed: int = 0) -> None:
        self.w = torch.from_numpy((np.random.default_rng(seed).permutation(N) + 1) * 1e-4).float()
        for members, _ in sets:
            self.w[list(members)] = 0.0
        for region, value in singles.items():
            self.w[region] = value
        self.sets = sets

    def score(self, subsets, emb_in, emb_out):
        f = subsets @ self.w
        for members, value in self.sets:
            f = f + value * subsets[:, list(members)].prod(1)
        return f


def _stack(hotbox, gray_image) -> RegionStack:
    labels = make_divider("grid", N).divide(gray_image)
    return RegionStack(gray_image, labels, hotbox)


def _orders(objective, hotbox, gray_image, **lazy) -> dict[str, list[int]]:
    """Orders of the exact greedy, the guarded lazy search and plain CELF."""
    def order(name, **options):
        return make_search(name, **options).run(objective, _stack(hotbox, gray_image)).order
    return {"exact": order("exact"), "guarded": order("lazy", **lazy),
            "celf": order("lazy", guard=False)}


def test_grid_neighbours_are_the_regions_sharing_an_edge(hotbox, gray_image):
    adj = _stack(hotbox, gray_image).adjacency
    assert adj.shape == (N, N) and adj.dtype == torch.bool and not adj.diagonal().any()
    assert torch.nonzero(adj[5]).flatten().tolist() == [1, 4, 6, 9]  # not the diagonal 0, 10
    assert torch.nonzero(adj[0]).flatten().tolist() == [1, 4]


def test_complement_of_the_first_pick(hotbox, gray_image):
    """Region 10 is worth 1 only with region 0 (far apart): after 0 is picked its stale gain
    (≈0, measured against the empty set) hides it from CELF, which then takes the flat
    distractors; the guard evaluates every candidate after the first pick."""
    orders = _orders(Planted({0: 0.5}, [((0, 10), 1.0)]), hotbox, gray_image)
    assert orders["exact"][:2] == [0, 10]
    assert orders["guarded"][:2] == [0, 10]
    assert orders["celf"][0] == 0 and orders["celf"].index(10) > 5


def test_neighbour_of_a_later_pick(hotbox, gray_image):
    """Region 6 is worth 1 only once 0 and its neighbour 5 are in: at the full step after the
    first pick it is still worth ~0, and only 5's neighbours are re-checked after 5 is picked
    (flat refreshes switched off, so the neighbour rule alone finds it)."""
    objective = Planted({0: 0.5, 5: 0.3}, [((0, 5, 6), 1.0)])
    orders = _orders(objective, hotbox, gray_image, flat=0.0)
    assert orders["exact"][:3] == [0, 5, 6]
    assert orders["guarded"][:3] == [0, 5, 6]
    assert orders["celf"].index(6) > 5
    no_near = make_search("lazy", flat=0.0, near=1.0).run(objective, _stack(hotbox, gray_image))
    assert no_near.order.index(6) > 5  # without the neighbour rule the stale bound hides it


def test_flat_stretch(hotbox, gray_image):
    """Region 15 is worth 1 once 0 and 5 are in; it neighbours neither. After 5 every other
    gain is flat (≤ 0.0016 against a first-step spread of 0.5): the guard evaluates every
    candidate there and finds it; CELF and the guard without its flat rule do not."""
    objective = Planted({0: 0.5, 5: 0.3}, [((0, 5, 15), 1.0)])
    orders = _orders(objective, hotbox, gray_image)
    assert orders["exact"][:3] == [0, 5, 15]
    assert orders["guarded"][:3] == [0, 5, 15]
    assert orders["celf"].index(15) > 5
    no_flat = make_search("lazy", flat=0.0).run(objective, _stack(hotbox, gray_image))
    assert no_flat.order.index(15) > 5
    stats = make_search("lazy").run(objective, _stack(hotbox, gray_image)).extra
    assert stats["full_steps"] == 2 and stats["flat_refreshes"] >= 1


def test_guard_costs_passes_only_where_it_acts(hotbox, gray_image):
    """On a modular objective (no interaction, no flat step) the guard's extra evaluations are
    exactly the full step after the first pick and each pick's neighbours: counted by hand."""
    w = torch.from_numpy(np.random.default_rng(0).permutation(N) + 1.0).float()

    class Modular(Objective):
        def score(self, subsets, emb_in, emb_out):
            return subsets @ w

    stack = _stack(hotbox, gray_image)
    result = make_search("lazy", batch=1).run(Modular(), stack)
    order = torch.argsort(w, descending=True).tolist()
    assert result.order == order
    adj = stack.adjacency.numpy()
    evaluations = N + (N - 1)  # the first step and the full step after the first pick
    for t in range(2, N):
        prev, taken = order[t - 1], set(order[:t])
        near = {r for r in np.flatnonzero(adj[prev]) if r not in taken}
        evaluations += len(near) + (order[t] not in near)
    assert result.extra["evaluations"] == 1 + evaluations  # + the empty set
    assert result.extra["search_passes"] == 2 * (1 + evaluations)
    assert result.extra["flat_refreshes"] == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_guard_keeps_exact_answer_on_submodular_objective(seed, hotbox, gray_image):
    """Facility location (monotone submodular): CELF is exact, and so is the guard."""
    sim = torch.from_numpy(np.random.default_rng(seed).random((N, N))).float()

    class Facility(Objective):
        def score(self, subsets, emb_in, emb_out):
            masked = sim[None].masked_fill(~subsets.bool()[:, :, None], 0.0)
            return masked.max(1).values.sum(-1)

    exact = make_search("exact").run(Facility(), _stack(hotbox, gray_image))
    guarded = make_search("lazy").run(Facility(), _stack(hotbox, gray_image))
    assert guarded.order == exact.order


def test_beam_sees_past_a_myopic_step(hotbox, gray_image):
    """Greedy takes 0 (0.5) first; 1 (0.4) with 2 (0 alone, +0.8 with 1) reaches 1.2 in two
    steps. Area under the objective's curve: greedy 0, 1, 2 → 0.5 + 0.9 + 1.7 = 3.1; the beam's
    1, 2, 0 → 0.4 + 1.2 + 1.7 = 3.3."""
    objective = Planted({0: 0.5, 1: 0.4}, [((1, 2), 0.8)])
    exact = make_search("exact").run(objective, _stack(hotbox, gray_image))
    beam = make_search("beam", width=2).run(objective, _stack(hotbox, gray_image))
    assert exact.order[:3] == [0, 1, 2]
    assert beam.order[:3] == [1, 2, 0]
    prefixes = torch.zeros(3, N)
    for k, region in enumerate([1, 2, 0]):
        prefixes[k:, region] = 1.0
    np.testing.assert_allclose(beam.scores[:3], objective.score(prefixes, None, None), rtol=1e-6)
    assert sum(beam.scores) > sum(exact.scores) + 0.19  # 0.2 more area, less the tiny weights
    assert beam.extra["beam_won"] is True


def test_beam_never_below_greedy_and_width_one_is_exact(hotbox, gray_image):
    rng = np.random.default_rng(3)
    objective = Planted({int(r): float(v) for r, v in zip(rng.permutation(N)[:6], rng.random(6))},
                        [((1, 6), 0.7), ((3, 12, 9), 0.9)])
    stack = _stack(hotbox, gray_image)
    exact = make_search("exact").run(objective, stack)
    exact_passes = stack.forward_passes
    one = make_search("beam", width=1).run(objective, _stack(hotbox, gray_image))
    assert one.order == exact.order
    stack = _stack(hotbox, gray_image)
    beam = make_search("beam", width=3).run(objective, stack)
    assert sum(beam.scores) >= sum(exact.scores) - 1e-6
    assert stack.forward_passes <= 4 * exact_passes  # at most (width + 1) × exact's
