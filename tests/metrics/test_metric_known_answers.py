"""Every metric against a hand computation on inputs where the answer is known."""

import numpy as np
import pytest
import torch

from mmattr.metrics import (EvalContext, average_drop_increase, auc, energy_pointing_game,
                            highest_confidence, list_metrics, make_metric, mean_curve,
                            noisy_linear_impute, occlusion_confidence, perturbation_curve,
                            pointing_game, road_curve, top_k_iou)


def linear_score(weights: np.ndarray):
    """score(x) = Σ_p w_p · mean_c x_c,p : a model whose curves are computable by hand."""
    w = torch.as_tensor(weights, dtype=torch.float32)

    def fn(images: torch.Tensor) -> torch.Tensor:
        return (images.mean(1) * w).flatten(1).sum(1)

    return fn


def test_auc_import_path_kept():
    from mmattr.metrics import auc as again

    assert again([0, 0.5, 1], [0, 1, 1]) == pytest.approx(0.75)


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_insertion_deletion_linear_score_exact(chunk):
    rng = np.random.default_rng(0)
    h, w = 4, 5
    weights = rng.random((h, w))
    weights /= weights.sum()
    image = np.full((h, w, 3), 255, np.uint8)  # white: every pixel contributes its weight
    saliency = weights  # the right ranking: the heaviest pixels first
    x, ins = perturbation_curve(linear_score(weights), image, saliency, "insertion", steps=20,
                                chunk=chunk)
    _, dele = perturbation_curve(linear_score(weights), image, saliency, "deletion", steps=20,
                                 chunk=chunk)
    # By hand: 20 pixels, 20 steps → one pixel per step, in descending weight order.
    cum = np.concatenate([[0.0], np.cumsum(np.sort(weights.ravel())[::-1])])
    np.testing.assert_allclose(x, np.arange(21) / 20)
    np.testing.assert_allclose(ins, cum, atol=1e-6)
    np.testing.assert_allclose(dele, 1.0 - cum, atol=1e-6)
    expected_ins = sum((cum[k] + cum[k + 1]) / 2 / 20 for k in range(20))
    assert auc(x, ins) == pytest.approx(expected_ins, abs=1e-6)
    assert auc(x, ins) + auc(x, dele) == pytest.approx(1.0, abs=1e-6)


def test_insertion_uniform_score_is_half_and_fills():
    image = np.full((8, 8, 3), 200, np.uint8)
    ones = np.ones((8, 8)) / 64
    sal = np.arange(64.0).reshape(8, 8)
    x, y = perturbation_curve(linear_score(ones), image, sal, "insertion", steps=4)
    np.testing.assert_allclose(y, 200 / 255 * np.array([0, .25, .5, .75, 1]), atol=1e-6)
    # mean fill of a constant image is the image itself: a flat curve
    _, y = perturbation_curve(linear_score(ones), image, sal, "insertion", steps=4, fill="mean")
    np.testing.assert_allclose(y, 200 / 255, atol=1e-6)
    _, y = perturbation_curve(linear_score(ones), image, sal, "deletion", steps=4, fill="blur")
    assert y[0] == pytest.approx(200 / 255, abs=1e-5)


def test_highest_confidence_budgets_by_hand():
    x = [0, .1, .25, .3, .5, .6, .75, 1.0]
    y = [0, .2, .1, .7, .3, .9, .2, .5]
    hc = highest_confidence(x, y)
    assert hc == {0.25: .2, 0.5: .7, 0.75: .9, 1.0: .9}


def test_average_drop_increase_by_hand():
    weights = np.zeros((10, 10))
    weights[0, :5] = 0.1
    weights[9, :5] = 0.1  # total 1.0 over a white image
    image = np.full((10, 10, 3), 255, np.uint8)
    # top 20% = 20 pixels: rows 0 and 9 in raster order of ties → all weight kept
    sal = np.zeros((10, 10))
    sal[0] = 1
    sal[9] = 1
    drop, inc = average_drop_increase(linear_score(weights), image, sal)
    assert drop == pytest.approx(0.0, abs=1e-6) and inc == 0.0
    # a map pointing at rows 1-2 keeps no weight: drop is 100%
    sal2 = np.zeros((10, 10))
    sal2[1:3] = 1
    drop, inc = average_drop_increase(linear_score(weights), image, sal2)
    assert drop == pytest.approx(1.0) and inc == 0.0


def test_pointing_energy_iou_tiny_maps():
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    sal = np.zeros((4, 4))
    sal[0, 0] = 3.0
    sal[3, 3] = 1.0
    assert pointing_game(sal, mask) == 1.0
    assert pointing_game(-sal, mask) == pytest.approx(3 / 14)  # 14 tied maxima, 3 in the mask
    # min-max normalised: mass 1 at (0,0), 1/3 at (3,3) → 0.75 inside
    assert energy_pointing_game(sal, mask) == pytest.approx(0.75)
    assert energy_pointing_game(np.ones((4, 4)), mask) == pytest.approx(0.25)
    # top 25% (4 px): (0,0),(3,3) then ties in raster order (0,1),(0,2) → ∩ 2, ∪ 6
    assert top_k_iou(sal, mask, k=0.25) == pytest.approx(2 / 6)
    ideal = mask.astype(float)
    assert top_k_iou(ideal, mask) == 1.0


def test_occlusion_box_score():
    weights = np.zeros((6, 6))
    weights[1:3, 1:3] = 0.25
    mask = weights > 0
    image = np.full((6, 6, 3), 255, np.uint8)
    out = occlusion_confidence(linear_score(weights), image, mask)
    assert out["drop_s"] == pytest.approx(1.0) and out["increase_s"] == 0.0
    assert out["drop_b"] == pytest.approx(0.0, abs=1e-6) and out["increase_b"] == 0.0
    # ROAD imputation of a constant image is the constant (+ noise 0.01): the subject survives
    road = occlusion_confidence(linear_score(weights), image, mask, fill="road")
    assert road["drop_s"] < 0.05


def test_imputation_hand_made_cases():
    img = np.zeros((3, 3))
    img[0, 1] = img[1, 0] = img[1, 2] = img[2, 1] = 1.0  # direct neighbours of the centre
    hole = np.zeros((3, 3), bool)
    hole[1, 1] = True
    out = noisy_linear_impute(img, hole, noise=0.0)
    assert out[1, 1] == pytest.approx(4 / 6)  # 4·1/6 + 4·0·1/12, weights sum to 1
    hole = np.zeros((3, 3), bool)
    hole[0, 0] = True  # corner: neighbours (0,1) 1/6, (1,0) 1/6, (1,1) 1/12
    img2 = np.zeros((3, 3))
    img2[0, 1], img2[1, 0], img2[1, 1] = 1.0, 0.5, 0.2
    out = noisy_linear_impute(img2, hole, noise=0.0)
    assert out[0, 0] == pytest.approx((1 / 6 * 1.0 + 1 / 6 * 0.5 + 1 / 12 * 0.2) / (5 / 12))
    assert np.all(out[~hole] == img2[~hole])


def _dense_impute(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Independent dense solve, one equation per removed pixel, written out loop by loop."""
    h, w = hole.shape
    ids = {p: i for i, p in enumerate(zip(*np.nonzero(hole)))}
    n = len(ids)
    a = np.zeros((n, n))
    b = np.zeros((n, img.shape[2]))
    for (y, x), i in ids.items():
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dy, dx) == (0, 0) or not (0 <= y + dy < h and 0 <= x + dx < w):
                    continue
                wt = 1 / 12 if dy and dx else 1 / 6
                a[i, i] += wt
                if (y + dy, x + dx) in ids:
                    a[i, ids[(y + dy, x + dx)]] -= wt
                else:
                    b[i] += wt * img[y + dy, x + dx]
    out = img.copy()
    sol = np.linalg.solve(a, b)
    for (y, x), i in ids.items():
        out[y, x] = sol[i]
    return out


def test_imputation_matches_dense_solve_and_noise_level():
    rng = np.random.default_rng(1)
    img = rng.random((9, 11, 3))
    hole = rng.random((9, 11)) < 0.6
    np.testing.assert_allclose(noisy_linear_impute(img, hole, noise=0.0), _dense_impute(img, hole),
                               atol=1e-10)
    noisy = noisy_linear_impute(img, hole, noise=0.01, rng=0)
    diff = (noisy - _dense_impute(img, hole))[hole]
    assert 0.007 < diff.std() < 0.013
    assert np.all(noisy[~hole] == img[~hole])


def test_road_morf_lerf_linear_score():
    # Score = brightness of the left half; an image bright on the left, dark on the right.
    weights = np.zeros((8, 8))
    weights[:, :4] = 1 / 32
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4] = 255
    good = weights.copy()
    x, morf = road_curve(linear_score(weights), image, good, "morf", noise=0.0)
    _, lerf = road_curve(linear_score(weights), image, good, "lerf", noise=0.0)
    assert list(x) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9]
    assert np.all(np.diff(morf) <= 1e-9)  # removing more of the left half only lowers it
    assert morf[-1] < 0.2 and lerf.min() > 0.5  # keeping the relevant half keeps the score
    _, bad = road_curve(linear_score(weights), image, -good, "morf", noise=0.0)
    assert bad.mean() > morf.mean()


def test_mean_curve_same_and_different_grids():
    x, y = mean_curve([([0, .5, 1], [0, 1, 1]), ([0, .5, 1], [0, 0, 1])])
    np.testing.assert_allclose(y, [0, .5, 1])
    x, y = mean_curve([([0, 1], [0, 1]), ([0, .5, 1], [1, 1, 1])], points=3)
    np.testing.assert_allclose(x, [0, .5, 1])
    np.testing.assert_allclose(y, [.5, .75, 1])


def test_registry_and_metric_classes_on_toy_explanation():
    from types import SimpleNamespace

    assert {"insertion", "deletion", "road_morf", "road_lerf", "pointing", "energy_pointing",
            "iou", "average_drop", "average_increase", "highest_confidence", "occlusion",
            "insertion_region", "deletion_region"} <= set(list_metrics())
    weights = np.full((4, 5), 1 / 20)
    e = SimpleNamespace(attribution=np.arange(20.0).reshape(4, 5), method="toy",
                        curve_x=[0, .5, 1], insertion_curve=[0, .8, 1],
                        deletion_curve=[1, .2, 0])
    ctx = EvalContext(image=np.full((4, 5, 3), 255, np.uint8), score_fn=linear_score(weights),
                      mask=np.ones((4, 5), bool))
    ins = make_metric("insertion", steps=20).evaluate(e, ctx)
    assert ins["insertion"] == pytest.approx(0.5, abs=1e-6)
    hc = make_metric("highest_confidence", steps=20).evaluate(e, ctx)
    assert hc["highest_confidence@25"] == pytest.approx(0.25, abs=1e-6)
    assert make_metric("insertion_region").evaluate(e, ctx)["insertion_region"] == pytest.approx(0.65)
    assert make_metric("deletion_region").evaluate(e, ctx)["deletion_region"] == pytest.approx(0.35)
    assert make_metric("pointing").evaluate(e, ctx)["pointing"] == 1.0
