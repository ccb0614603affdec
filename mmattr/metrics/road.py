"""ROAD (RemOve And Debias) with noisy linear imputation, and occlusion by ground-truth mask.

Ref. Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods",
ICML 2022 (ROAD, noisy linear imputation); seed 002 (occlusion of subject / background:
share of images whose confidence rises, mean relative drop).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..ranking import pixel_rank
from .base import EvalContext, Metric, MetricSkipped, ScoreFn, register_metric
from .curves import fill_image, saliency_2d
from .scoring import image_tensor

MORF_PERCENTAGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9)
LERF_PERCENTAGES = (0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)

# (dy, dx, weight): direct neighbours 1/6, diagonal 1/12, as the ROAD authors' imputer.
_NEIGHBOURS = ((0, 1, 1 / 6), (0, -1, 1 / 6), (1, 0, 1 / 6), (-1, 0, 1 / 6),
               (1, 1, 1 / 12), (1, -1, 1 / 12), (-1, 1, 1 / 12), (-1, -1, 1 / 12))


def noisy_linear_impute(image: np.ndarray, removed: np.ndarray, noise: float = 0.01,
                        rng: np.random.Generator | int | None = 0) -> np.ndarray:
    """Fill the `removed` pixels of a (H, W, C) float image (values in [0, 1]).

    Every removed pixel equals the weighted mean of its 8 neighbours (weights of neighbours
    outside the image dropped, the rest renormalised): one sparse linear system over the removed
    pixels, solved once (one LU factorisation) for all channels; then `noise`·N(0, 1) is added
    to the imputed pixels only.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    img = np.asarray(image, np.float64)
    if img.ndim == 2:
        img = img[..., None]
    h, w, c = img.shape
    hole = np.asarray(removed, bool)
    if hole.shape != (h, w):
        raise InputError(f"the removal mask {hole.shape} does not match the image {(h, w)}")
    n = int(hole.sum())
    out = img.copy()
    if n == 0:
        return out if image.ndim == 3 else out[..., 0]
    if n == h * w:
        raise InputError("noisy linear imputation needs at least one kept pixel")
    var = np.full((h, w), -1, np.int64)
    var[hole] = np.arange(n)
    ys, xs = np.nonzero(hole)
    rows, cols, vals = [], [], []
    diag = np.zeros(n)
    b = np.zeros((n, c))
    for dy, dx, wt in _NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        eq = np.nonzero(inside)[0]
        ny, nx = ny[inside], nx[inside]
        diag[eq] += wt
        unknown = hole[ny, nx]
        # Removed neighbour: a coefficient on its unknown; kept neighbour: a known term.
        rows.append(eq[unknown])
        cols.append(var[ny[unknown], nx[unknown]])
        vals.append(np.full(int(unknown.sum()), -wt))
        b[eq[~unknown]] += wt * img[ny[~unknown], nx[~unknown]]
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(diag)
    a = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n, n))
    solution = splu(a).solve(b)
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if noise:
        solution = solution + noise * g.standard_normal(solution.shape)
    out[hole] = solution
    return out if image.ndim == 3 else out[..., 0]


def _tie_broken_rank(saliency: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    s = np.asarray(saliency, np.float64)
    lo, hi = float(s.min()), float(s.max())
    s = (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)
    s = s + 1e-4 * rng.random(s.shape)  # the ROAD authors' random tie-breaker
    return pixel_rank(s)


def road_curve(score_fn: ScoreFn, image: np.ndarray | torch.Tensor,
               saliency: np.ndarray | torch.Tensor, order: str = "morf",
               percentages: Sequence[float] | None = None, noise: float = 0.01, seed: int = 0,
               device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """ROAD scores at each percentage p: MoRF removes the top p of the pixels, LeRF removes
    all but the top p (keeps the most relevant), the removed pixels imputed (noisy linear)."""
    if order not in ("morf", "lerf"):
        raise InputError(f"ROAD order must be morf or lerf, got {order!r}")
    ps = tuple(percentages or (MORF_PERCENTAGES if order == "morf" else LERF_PERCENTAGES))
    img = image_tensor(image, "cpu").permute(1, 2, 0).numpy().astype(np.float64)
    rng = np.random.default_rng(seed)
    sal = saliency_2d(saliency, img.shape[:2]).cpu().numpy()
    rank = _tie_broken_rank(sal, rng)
    total = rank.size
    batch = []
    for p in ps:
        top = rank < int(round(p * total))
        removed = top if order == "morf" else ~top
        batch.append(noisy_linear_impute(img, removed, noise, rng))
    x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float().to(device)
    with torch.inference_mode():
        y = score_fn(x).float().cpu().numpy().astype(np.float64)
    return np.asarray(ps, np.float64), y


def occlusion_confidence(score_fn: ScoreFn, image: np.ndarray | torch.Tensor, subject: np.ndarray,
                         fill: str = "black", seed: int = 0, device: torch.device | str = "cpu"
                         ) -> dict[str, float]:
    """Seed 002's occlusion test for one image: hide the subject ("s") or the background ("b").

    Returns, for each, ``increase`` (1 if the target score rises, as in "% ↑ in confidence")
    and ``drop`` (max(0, Y - O) / Y, as in "% ↓ in confidence"). `fill` is black, mean, blur
    or ``road`` (noisy linear imputation of the hidden part).
    """
    img = image_tensor(image, device)
    subj = torch.as_tensor(np.asarray(subject, bool), device=img.device)
    if tuple(subj.shape) != tuple(img.shape[-2:]):
        raise InputError(f"the mask {tuple(subj.shape)} does not match the image {tuple(img.shape[-2:])}")
    variants = []
    for hidden in (subj, ~subj):
        if fill == "road":
            arr = img.permute(1, 2, 0).cpu().numpy().astype(np.float64)
            filled = noisy_linear_impute(arr, hidden.cpu().numpy(), rng=seed)
            variants.append(torch.from_numpy(filled).permute(2, 0, 1).float().to(img.device))
        else:
            base = fill_image(img, fill)
            variants.append(torch.where(hidden[None], base, img))
    with torch.inference_mode():
        y = score_fn(torch.stack([img, *variants])).float().cpu().numpy()
    full = float(y[0])
    out = {}
    for tag, occluded in (("s", float(y[1])), ("b", float(y[2]))):
        out[f"increase_{tag}"] = float(full < occluded)
        out[f"drop_{tag}"] = max(0.0, full - occluded) / full if full > 0 else 0.0
    return out


class _Road(Metric):
    order = "morf"

    def __init__(self, percentages: Sequence[float] | None = None, noise: float = 0.01, **options):
        super().__init__(percentages=list(percentages) if percentages else None, noise=noise, **options)
        self.percentages, self.noise = percentages, float(noise)

    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        if context.score_fn is None:
            raise MetricSkipped("needs a model")
        x, y = road_curve(context.score_fn, context.image, explanation.attribution, self.order,
                          self.percentages, self.noise, context.seed, context.device)
        return {self.name: float(np.mean(y)), f"{self.name}_x": x.tolist(),
                f"{self.name}_curve": y.tolist()}


@register_metric("road_morf")
class RoadMoRF(_Road):
    """ROAD, most relevant first removed (mean score over p; ↓)."""

    order = "morf"
    higher_is_better = {"road_morf": False}


@register_metric("road_lerf")
class RoadLeRF(_Road):
    """ROAD, least relevant first removed (mean score over p; ↑)."""

    order = "lerf"
    higher_is_better = {"road_lerf": True}


@register_metric("occlusion")
class Occlusion(Metric):
    """Occlusion of the subject / background by the ground-truth mask, black fill and ROAD
    imputation (seed 002). Needs a mask. Measures the model on the dataset, not the map: the
    same for every method; `occlusion_map` below hides the map's own top area instead."""

    needs_mask = True
    higher_is_better = {f"occlusion{v}_{k}": good for v in ("", "_road") for k, good in
                        (("increase_b", True), ("drop_b", False), ("increase_s", False),
                         ("drop_s", True))}

    def _subject(self, explanation, context: EvalContext) -> np.ndarray:
        return np.asarray(context.mask, bool)

    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        if context.mask is None:
            raise MetricSkipped("needs a ground-truth mask")
        if context.score_fn is None:
            raise MetricSkipped("needs a model")
        subject = self._subject(explanation, context)
        out = {}
        for fill, prefix in (("black", self.name), ("road", f"{self.name}_road")):
            values = occlusion_confidence(context.score_fn, context.image, subject, fill,
                                          context.seed, context.device)
            out.update({f"{prefix}_{k}": v for k, v in values.items()})
        return out


@register_metric("occlusion_map")
class MapOcclusion(Occlusion):
    """Like `occlusion`, but the subject is the map's top pixels covering the same area as the
    ground-truth mask (seed 002 per-method tables): hiding a good map's subject hurts most."""

    higher_is_better = {k.replace("occlusion", "occlusion_map"): v
                        for k, v in Occlusion.higher_is_better.items()}

    def _subject(self, explanation, context: EvalContext) -> np.ndarray:
        from .localisation import top_area

        mask = np.asarray(context.mask, bool)
        return top_area(explanation.attribution, mask.mean())
