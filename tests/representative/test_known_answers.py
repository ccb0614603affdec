"""Known answers of Representative Interpretations on a piecewise-linear toy whose decision
regions are known by construction (the diamond |t1| + |t2| < 1, see toy_models.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmattr.representative import (RepresentativeInterpretations, RIOptions, greedy_region,
                                   rank_covered)

from ri_testlib import colour_image, t_of

FACETS = {(1, 1), (1, -1), (-1, 1), (-1, -1)}


def _uint(t: float) -> int:
    return int(round(255 * (t / 4 + 0.5)))


@pytest.fixture(scope="module", params=["gradient", "walk"])
def fitted(request, toy, diamond_refs):
    images, _ = diamond_refs
    ri = RepresentativeInterpretations(toy.build_diamond(),
                                       RIOptions(layer="psi", boundaries=64, sampler=request.param))
    return ri.fit(images)


def test_greedy_recovers_the_polytope(fitted, diamond_refs):
    _, points = diamond_refs
    inside = np.abs(points).sum(1) < 1
    assert inside.sum() == 12 and np.array_equal(fitted.fitted.preds == 0, inside)
    x = colour_image(_uint(0.2), _uint(0.1))
    it = fitted.explain(x)
    assert it.predicted_name == "inside" and it.tau == 0 and it.delta == 0
    # covered reference images = exactly the diamond's
    covered = np.zeros(len(points), bool)
    covered[it.ranked] = True
    assert np.array_equal(covered, inside)
    assert it.coverage == 12 and it.other_covered == 0 and it.accuracy_model == 1.0
    # the chosen boundaries are the polytope's four facets s·t = 1, oriented inward
    assert len(it.boundaries) == 4
    got = {tuple(int(v) for v in np.sign(-a.numpy())) for a in it.alpha}
    assert got == FACETS
    assert np.allclose(np.abs(it.alpha.numpy()), 0.25, atol=1e-5)  # |W^k| = 1/4 per position


def test_region_of_an_outside_point_is_the_half_plane_beyond_its_facet(fitted, diamond_refs):
    _, points = diamond_refs
    it = fitted.explain(colour_image(_uint(1.2), _uint(1.0)))
    assert it.predicted_name == "outside"
    covered = np.zeros(len(points), bool)
    covered[it.ranked] = True
    # no inside image may be covered (δ = τ = 0); the known maximal convex region through
    # x is the half-plane t1 + t2 > 1 (one facet)
    assert np.array_equal(covered, points.sum(1) > 1)
    assert len(it.boundaries) == 1


def test_eq5_heat_map_equals_a_hand_computation(fitted):
    # Left half of the image (t-values a, c), right half (b, d): ψ channels are
    # [[a, b], [a, b]] and [[c, d], [c, d]] on the 2×2 grid.
    x = np.zeros((16, 16, 3), np.uint8)
    (rl, gl), (rr, gr) = (_uint(0.6), _uint(-0.2)), (_uint(-0.2), _uint(0.4))
    x[:, :8, 0], x[:, :8, 1], x[:, 8:, 0], x[:, 8:, 1] = rl, gl, rr, gr
    (a, c), (b, d) = t_of(rl, gl), t_of(rr, gr)
    it = fitted.explain(x)
    assert it.predicted_name == "inside"
    psi1 = np.array([[a, b], [a, b]])
    psi2 = np.array([[c, d], [c, d]])
    expected = []
    for s1, s2 in sorted(FACETS):
        # facet s·t = 1 oriented so x is on the positive side: W = -(s1, s2)/4 per position,
        # α_k = mean of W^k over the 4 positions = -s_k / 4
        raw = np.maximum(0, -(s1 * psi1 + s2 * psi2) / 4)
        raw = raw - raw.min()
        raw = raw / (raw.max() + 1e-7)
        up = F.interpolate(torch.tensor(raw, dtype=torch.float32)[None, None], size=(16, 16),
                           mode="bilinear", align_corners=False)[0, 0].clamp(min=0).numpy()
        up = up - up.min()
        expected.append(up / (up.max() + 1e-7))
    expected = np.mean(expected, axis=0)
    assert expected.max() > 0.1  # a non-trivial map: the left half scores higher here
    np.testing.assert_allclose(it.heatmap, expected, atol=1e-5)


def test_eq6_ranks_covered_images_by_their_known_distance(fitted, diamond_refs):
    _, points = diamond_refs
    xt = t_of(_uint(0.2), _uint(0.1))
    it = fitted.explain(colour_image(_uint(0.2), _uint(0.1)))
    # Σ over the 4 facets of |s·Δt| = 2(|Δ1 + Δ2| + |Δ1 - Δ2|) = 4·max(|Δ1|, |Δ2|)
    linf = np.abs(points[it.ranked] - np.array(xt)).max(1)
    np.testing.assert_allclose(it.distances, 4 * linf, rtol=1e-4, atol=1e-5)
    assert np.all(np.diff(it.distances) >= 0)
    assert np.all(np.diff(linf) >= -1e-6)


def test_channel_weights_are_reused_on_covered_images(fitted, diamond_refs):
    images, _ = diamond_refs
    it = fitted.explain(colour_image(_uint(0.2), _uint(0.1)))
    maps = fitted.heatmaps(it, [images[i] for i in it.ranked[:3]])
    assert len(maps) == 3 and all(m.shape == (16, 16) for m in maps)
    flat, _ = fitted.features([images[i] for i in it.ranked])
    assert fitted.covers(it, flat).all()
    outside = [i for i in range(len(images)) if i not in set(it.ranked.tolist())]
    flat_out, _ = fitted.features([images[i] for i in outside])
    assert not fitted.covers(it, flat_out).any()


def test_greedy_eq4_steps_tie_rule_delta_and_pruning():
    # reference images 0-2 same class as x, 3-5 other class; True = on x's side
    same = np.array([[1, 1, 1, 0, 0, 1],    # cuts off {3, 4}: 0 same / 2 other
                     [0, 1, 1, 1, 1, 0],    # cuts off {0, 5}: 1 / 1
                     [1, 0, 0, 0, 0, 0],    # cuts off {1, 2, 3, 4, 5}: 2 / 3
                     [1, 1, 1, 0, 1, 1]],   # cuts off {3}: 0 / 1 (loses the tie to row 0)
                    dtype=bool)
    other = np.array([0, 0, 0, 1, 1, 1], dtype=bool)
    r = greedy_region(same, other, np.ones(4, bool))
    assert r.boundaries == [0, 1] and r.tau == 0 and r.delta == 0
    assert r.covered.tolist() == [False, True, True, False, False, False]
    r1 = greedy_region(same, other, np.ones(4, bool), delta=1)
    assert r1.boundaries == [0] and r1.other_covered == 1
    # δ below τ is raised to τ (nothing smaller is feasible)
    same_tau = same.copy()
    same_tau[:, 5] = True
    r2 = greedy_region(same_tau, other, np.ones(4, bool), delta=0)
    assert r2.tau == 1 and r2.delta == 1 and r2.other_covered == 1
    # pruning: boundary 0 (cuts {3}, ratio 0) is taken first, then boundary 1 (cuts {0, 3, 4})
    # makes it redundant: it is dropped, the covered set unchanged
    red = np.array([[1, 1, 1, 0, 1], [0, 1, 1, 0, 0], [0, 1, 1, 1, 0]], dtype=bool)
    oth = np.array([0, 0, 0, 1, 1], dtype=bool)
    r3 = greedy_region(red, oth, np.ones(3, bool), prune=False)
    assert r3.boundaries == [0, 1]
    r4 = greedy_region(red, oth, np.ones(3, bool))
    assert r4.boundaries == [1] and r4.covered.tolist() == r3.covered.tolist()


def test_rank_covered_orders_by_l1_of_projections():
    proj_x = np.array([0.0, 1.0])
    proj = np.array([[3.0, 1.0, 0.5, 9.0], [1.0, 1.0, 1.0, 1.0]])
    idx, dist = rank_covered(proj_x, proj, np.array([True, True, True, False]))
    assert idx.tolist() == [2, 1, 0] and dist.tolist() == [0.5, 1.0, 3.0]


def test_walk_ends_on_ties_of_the_two_classes(toy, diamond_refs):
    from mmattr.representative.boundaries import walk_to_ties
    from mmattr.representative.head import LayerHead

    images, points = diamond_refs
    head = LayerHead(toy.build_diamond(), "psi", ["inside", "outside"])
    psi, logits = head.features(head.pixels(images))
    inside = np.flatnonzero(np.abs(points).sum(1) < 1)
    outside = np.flatnonzero(np.abs(points).sum(1) > 1)[:len(inside)]
    ties = walk_to_ties(head.logits, psi[inside], psi[outside], torch.zeros(len(inside), dtype=torch.long))
    with torch.inference_mode():
        g = head.logits(ties)
    assert (g[:, 0] >= g[:, 1]).all()  # x's class still on top
    assert (g[:, 0] - g[:, 1]).abs().max() < 1e-4  # and tied with the runner-up
    t = ties.mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(np.abs(t).sum(1), 1.0, atol=1e-4)  # on the diamond's facets
