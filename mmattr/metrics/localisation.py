"""Localisation against ground-truth masks: pointing game, energy pointing game, top-k% IoU.

Ref. Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016 (pointing
game); Wang et al., "Score-CAM", CVPR Workshops 2020 (energy-based pointing game); seed 002
(IoU of the top activated area with the annotated mask).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..ranking import top_fraction
from .base import EvalContext, Metric, MetricSkipped, register_metric


def _check(saliency: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.nan_to_num(np.asarray(saliency, np.float64))
    m = np.asarray(mask, bool)
    if s.ndim == 3:
        s = s.mean(-1) if s.shape[-1] in (1, 3) else s.mean(0)
    if s.shape != m.shape:
        import cv2

        s = cv2.resize(s, (m.shape[1], m.shape[0]), interpolation=cv2.INTER_LINEAR)
    return s, m


def pointing_game(saliency: np.ndarray, mask: np.ndarray) -> float:
    """1 if the map's maximum falls in the mask, else 0. When several pixels tie for the
    maximum (region-valued maps), the share of them inside the mask: the expected hit of a
    random tie-break, so flat maps earn no free hit."""
    s, m = _check(saliency, mask)
    top = s == s.max()
    return float(m[top].mean())


def energy_pointing_game(saliency: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's energy inside the mask, the map min-max normalised to [0, 1] first
    (so a constant offset does not count as energy). A constant map gives the mask's area."""
    s, m = _check(saliency, mask)
    lo, hi = s.min(), s.max()
    if hi <= lo:
        return float(m.mean())
    s = (s - lo) / (hi - lo)
    return float(s[m].sum() / s.sum())


def top_area(saliency: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the top `fraction` of the pixels by saliency (ties in raster order)."""
    s = np.nan_to_num(np.asarray(saliency, np.float64))
    if not 0.0 <= fraction <= 1.0:
        raise InputError(f"an area fraction must be in [0, 1], got {fraction}")
    return top_fraction(s, fraction)


def top_k_iou(saliency: np.ndarray, mask: np.ndarray, k: float | None = None) -> float:
    """IoU of the top-k area of the map with the mask; k is a fraction of the image, or None for
    the mask's own area (so a map that ranks the mask first scores 1)."""
    s, m = _check(saliency, mask)
    top = top_area(s, float(m.mean()) if k is None else float(k))
    union = (top | m).sum()
    return float((top & m).sum() / union) if union else 0.0


class _Localisation(Metric):
    needs_mask = True
    needs_model = False

    def _masks(self, explanation, context: EvalContext):
        if context.mask is None:
            raise MetricSkipped("needs a ground-truth mask")
        return explanation.attribution, context.mask


@register_metric("pointing")
class PointingGame(_Localisation):
    """Pointing game: the map's maximum inside the ground-truth mask (↑)."""

    higher_is_better = {"pointing": True}

    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        return {self.name: pointing_game(*self._masks(explanation, context))}


@register_metric("energy_pointing")
class EnergyPointingGame(_Localisation):
    """Energy pointing game: share of the map's mass inside the mask (↑)."""

    higher_is_better = {"energy_pointing": True}

    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        return {self.name: energy_pointing_game(*self._masks(explanation, context))}


@register_metric("iou")
class TopKIoU(_Localisation):
    """IoU of the map's top-k% area with the mask (↑); k defaults to the mask's own area."""

    higher_is_better = {"iou": True}

    def __init__(self, k: float | None = None, **options) -> None:
        super().__init__(k=k, **options)
        self.k = k

    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        return {self.name: top_k_iou(*self._masks(explanation, context), k=self.k)}
