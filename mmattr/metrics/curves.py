"""Insertion / deletion curves and the metrics read off them.

Ref. Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box Models",
BMVC 2018 (insertion and deletion); Chen et al., "Less is More", ICLR 2024 (region-level
curves from the search, highest confidence within an area budget); Chattopadhay et al.,
"Grad-CAM++", WACV 2018 and seed 003 eq. 7-8 (Average Drop / Average Increase).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
# one fill for the metrics, the explainers and the curves (re-exported: mmattr.metrics.fill_image)
from ..fill import FILLS, fill_image
from ..ranking import pixel_rank
from .base import EvalContext, Metric, MetricSkipped, ScoreFn, auc, register_metric
from .scoring import image_tensor

#: steps of the pixel-level insertion / deletion curves: the metrics' default, and the curves
#: every explanation writes (so explanation.json's AUC equals the ``insertion`` metric)
PIXEL_CURVE_STEPS = 20
BUDGETS = (0.25, 0.5, 0.75, 1.0)


def saliency_2d(saliency: np.ndarray | torch.Tensor, hw: tuple[int, int],
                device: torch.device | str = "cpu") -> torch.Tensor:
    """A map as (H, W) float at the image's size: channel mean if 3-D, bilinear resize if needed."""
    s = torch.as_tensor(np.asarray(saliency) if not isinstance(saliency, torch.Tensor) else saliency)
    s = s.to(device).float()
    if s.ndim == 3:  # (C, H, W) or (H, W, C): channel mean, as Xplique ranks pixels
        s = s.mean(0) if s.shape[0] in (1, 3) and s.shape[-1] not in (1, 3) else s.mean(-1)
    if s.ndim != 2:
        raise InputError(f"a saliency map must be 2-D, got shape {tuple(s.shape)}")
    if tuple(s.shape) != tuple(hw):
        s = F.interpolate(s[None, None], size=hw, mode="bilinear", align_corners=False)[0, 0]
    return torch.nan_to_num(s, nan=0.0)


def step_counts(n_pixels: int, steps: int) -> list[int]:
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    return [int(round(k * n_pixels / steps)) for k in range(steps + 1)]


def perturbation_curve(score_fn: ScoreFn, image: np.ndarray | torch.Tensor,
                       saliency: np.ndarray | torch.Tensor, mode: str = "insertion",
                       steps: int = PIXEL_CURVE_STEPS, fill: str | torch.Tensor = "black",
                       chunk: int = 16, device: torch.device | str | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-level insertion or deletion curve of any map: (x = fraction of pixels, scores).

    Insertion starts from the fill and reveals the most salient pixels first; deletion starts
    from the image and hides them first. `fill` is a named fill (`mmattr.fill`) or the
    (3, H, W) baseline itself. The perturbed images are built on the device, `chunk` steps at
    a time, and handed to `score_fn` as one batch per chunk.
    """
    if mode not in ("insertion", "deletion"):
        raise InputError(f"mode must be insertion or deletion, got {mode!r}")
    dev = torch.device(device) if device is not None else (
        image.device if isinstance(image, torch.Tensor) else torch.device("cpu"))
    img = image_tensor(image, dev)
    hw = tuple(img.shape[-2:])
    rank = pixel_rank(saliency_2d(saliency, hw, dev))
    base = fill.to(dev, img.dtype) if isinstance(fill, torch.Tensor) else fill_image(img, fill)
    counts = step_counts(rank.numel(), steps)
    ys = []
    with torch.inference_mode():
        for start in range(0, len(counts), chunk):
            c = torch.tensor(counts[start:start + chunk], device=dev)
            shown = (rank[None] < c[:, None, None]).to(img.dtype)[:, None]  # (S, 1, H, W)
            if mode == "insertion":
                batch = base + shown * (img - base)
            else:
                batch = img + shown * (base - img)
            ys.append(score_fn(batch).float())
    y = torch.cat(ys).cpu().numpy().astype(np.float64)
    return np.asarray(counts, np.float64) / rank.numel(), y


def highest_confidence(x: Sequence[float], y: Sequence[float],
                       budgets: Sequence[float] = BUDGETS) -> dict[float, float]:
    """For each area budget b, the highest score of any curve point with x ≤ b (insertion
    curve: the most confident prefix of the ranking within the budget)."""
    xa, ya = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return {float(b): float(ya[xa <= b + 1e-9].max()) for b in budgets}


def average_drop_increase(score_fn: ScoreFn, image: np.ndarray | torch.Tensor,
                          saliency: np.ndarray | torch.Tensor, keep: float = 0.2,
                          fill: str = "black", device: torch.device | str | None = None
                          ) -> tuple[float, float]:
    """(drop, increase) of one image: keep the top `keep` of the pixels, the rest filled.

    drop = max(0, Y - Y') / Y; increase = 1 if Y < Y' else 0; Average Drop / Increase are their
    dataset means (seed 003 eq. 7-8, keep = 20%).
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    img = image_tensor(image, dev)
    rank = pixel_rank(saliency_2d(saliency, tuple(img.shape[-2:]), dev))
    kept = (rank < int(round(keep * rank.numel()))).to(img.dtype)
    base = fill_image(img, fill)
    with torch.inference_mode():
        y = score_fn(torch.stack([img, base + kept * (img - base)])).float().cpu().numpy()
    full, part = float(y[0]), float(y[1])
    drop = max(0.0, full - part) / full if full > 0 else 0.0
    return drop, float(full < part)


# -- metric classes -----------------------------------------------------------------------------

def _curve_key(mode: str, steps: int, fill: str) -> str:
    return f"curve:{mode}:{steps}:{fill}"


def cached_curve(ctx: EvalContext, explanation, mode: str, steps: int, fill: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    if ctx.score_fn is None:
        raise MetricSkipped("needs a model")
    return ctx.cached(_curve_key(mode, steps, fill), lambda: perturbation_curve(
        ctx.score_fn, ctx.image, explanation.attribution, mode, steps, fill, device=ctx.device))


class _PixelCurve(Metric):
    """On an image, the pixel-level curve of any map; on a text or a clip (no pixels), the
    element-level curve every method's explanation carries, measured alike for all methods
    (the method's order, each prefix composed by the same element set)."""

    mode = "insertion"
    modalities = ("image", "text", "audio")

    def __init__(self, steps: int = PIXEL_CURVE_STEPS, fill: str = "black", **options: Any) -> None:
        if fill not in FILLS:
            raise InputError(f"unknown fill {fill!r}; use {', '.join(FILLS)}")
        super().__init__(steps=int(steps), fill=fill, **options)
        self.steps, self.fill = int(steps), fill

    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        if getattr(explanation, "modality", "image") != "image":
            return _element_curve(self.name, self.mode, explanation)
        x, y = cached_curve(context, explanation, self.mode, self.steps, self.fill)
        return {self.name: auc(x, y), f"{self.name}_x": x.tolist(), f"{self.name}_curve": y.tolist()}


def _element_curve(name: str, mode: str, explanation) -> dict[str, Any]:
    """The explanation's own insertion or deletion curve as a metric's columns."""
    curve = getattr(explanation, f"{mode}_curve", None)
    x = getattr(explanation, "curve_x", None)
    if not curve or not x or len(curve) != len(x):
        raise MetricSkipped(f"the {explanation.method} explanation has no curve over elements")
    return {name: auc(x, curve), f"{name}_x": list(map(float, x)),
            f"{name}_curve": list(map(float, curve))}


@register_metric("insertion")
class Insertion(_PixelCurve):
    """Pixel-level insertion AUC of any map (↑): reveal the most salient pixels first."""

    mode = "insertion"
    higher_is_better = {"insertion": True}


@register_metric("deletion")
class Deletion(_PixelCurve):
    """Pixel-level deletion AUC of any map (↓): hide the most salient pixels first."""

    mode = "deletion"
    higher_is_better = {"deletion": False}


class _RegionCurve(Metric):
    needs_model = False
    mode = "insertion"
    modalities = ("image", "text", "audio")

    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        curve = getattr(explanation, f"{self.mode}_curve", None)
        x = getattr(explanation, "curve_x", None)
        if not curve or not x or len(curve) != len(x):
            raise MetricSkipped(f"the {explanation.method} explanation has no region-level curve")
        return {self.name: auc(x, curve), f"{self.name}_x": list(map(float, x)),
                f"{self.name}_curve": list(map(float, curve))}


@register_metric("insertion_region")
class RegionInsertion(_RegionCurve):
    """Region-level insertion AUC from the search's own scores, no extra passes (↑)."""

    mode = "insertion"
    higher_is_better = {"insertion_region": True}


@register_metric("deletion_region")
class RegionDeletion(_RegionCurve):
    """Region-level deletion AUC from the search's own scores, no extra passes (↓)."""

    mode = "deletion"
    higher_is_better = {"deletion_region": False}


def _budget_columns(prefix: str, values: dict[float, float]) -> dict[str, float]:
    return {f"{prefix}@{int(round(b * 100))}": v for b, v in values.items()}


@register_metric("highest_confidence")
class HighestConfidence(Metric):
    """Highest target score reached within 25/50/75/100% of the pixels, on the pixel-level
    insertion curve (↑); the paper reports it on misclassified samples (Table 2)."""

    higher_is_better = {f"highest_confidence@{b}": True for b in (25, 50, 75, 100)}

    def __init__(self, steps: int = PIXEL_CURVE_STEPS, fill: str = "black", budgets=BUDGETS,
                 **options) -> None:
        super().__init__(steps=int(steps), fill=fill, budgets=list(budgets), **options)
        self.steps, self.fill, self.budgets = int(steps), fill, tuple(budgets)

    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        x, y = cached_curve(context, explanation, "insertion", self.steps, self.fill)
        return _budget_columns(self.name, highest_confidence(x, y, self.budgets))


@register_metric("highest_confidence_region")
class RegionHighestConfidence(Metric):
    """Highest target score of any region prefix within 25/50/75/100% of the area, from the
    search's own insertion curve (↑; SMDL Table 2)."""

    needs_model = False
    higher_is_better = {f"highest_confidence_region@{b}": True for b in (25, 50, 75, 100)}
    modalities = ("image", "text", "audio")

    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        curve, x = getattr(explanation, "insertion_curve", None), getattr(explanation, "curve_x", None)
        if not curve or not x:
            raise MetricSkipped(f"the {explanation.method} explanation has no region-level curve")
        return _budget_columns(self.name, highest_confidence(x, curve))


class _DropIncrease(Metric):
    def __init__(self, keep: float = 0.2, fill: str = "black", **options) -> None:
        super().__init__(keep=float(keep), fill=fill, **options)
        self.keep, self.fill = float(keep), fill

    def _both(self, explanation, ctx: EvalContext) -> tuple[float, float]:
        if ctx.score_fn is None:
            raise MetricSkipped("needs a model")
        return ctx.cached(f"adai:{self.keep}:{self.fill}", lambda: average_drop_increase(
            ctx.score_fn, ctx.image, explanation.attribution, self.keep, self.fill, ctx.device))


@register_metric("average_drop")
class AverageDrop(_DropIncrease):
    """Relative score drop when only the top 20% of the pixels are kept (↓; mean = Average Drop)."""

    higher_is_better = {"average_drop": False}

    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        return {self.name: self._both(explanation, context)[0]}


@register_metric("average_increase")
class AverageIncrease(_DropIncrease):
    """1 when keeping only the top 20% of the pixels raises the score (↑; mean = Average Increase)."""

    higher_is_better = {"average_increase": True}

    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        return {self.name: self._both(explanation, context)[1]}
