"""The metric concept: one `evaluate` method, a registry, and the context a metric reads.

Every metric is also a plain function on arrays (see the sibling modules); the classes only bind
settings and read what they need from an `Explanation` and an `EvalContext`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..registry import Registry

METRICS: Registry[type["Metric"]] = Registry("metric")

#: (B, 3, H, W) float images in [0, 1] pixel space, on the model's device → (B,) scores
ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def register_metric(name: str):
    """Class decorator: make a metric available by name (CLI ``--metrics NAME``)."""

    def decorator(cls: type["Metric"]) -> type["Metric"]:
        cls.name = name
        return METRICS.register(name)(cls)

    return decorator


def list_metrics() -> list[str]:
    return METRICS.names()


def make_metric(name: str, **options: Any) -> "Metric":
    return METRICS.get(name)(**options)


def auc(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> float:
    """Area under y(x) by the trapezoid rule, x increasing (a fraction of pixels in [0, 1])."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError("auc needs two 1-D arrays of the same length, at least 2 points")
    if np.any(np.diff(x) < 0):
        raise ValueError("auc needs x in increasing order")
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def mean_curve(curves: list[tuple[np.ndarray, np.ndarray]], points: int = 101
               ) -> tuple[np.ndarray, np.ndarray]:
    """The dataset-mean curve: every (x, y) curve linearly interpolated onto one grid, averaged.

    Curves that share their x (pixel-level, fixed steps) are averaged exactly at those x.
    Ref. Xplique's insertion / deletion, which average the curve over the dataset before the AUC.
    """
    if not curves:
        raise ValueError("mean_curve needs at least one curve")
    xs = [np.asarray(x, np.float64) for x, _ in curves]
    ys = [np.asarray(y, np.float64) for _, y in curves]
    if all(len(x) == len(xs[0]) and np.allclose(x, xs[0]) for x in xs):
        return xs[0], np.mean(ys, axis=0)
    grid = np.linspace(0.0, 1.0, points)
    return grid, np.mean([np.interp(grid, x, y) for x, y in zip(xs, ys)], axis=0)


@dataclass
class EvalContext:
    """What a metric may need besides the explanation: the image, the model's score, a mask.

    `cache` lets metrics of one (image, method) share work, e.g. the insertion curve that the
    highest-confidence metric reads again.
    """

    image: np.ndarray
    score_fn: ScoreFn | None = None
    mask: np.ndarray | None = None
    device: torch.device = torch.device("cpu")
    seed: int = 0
    cache: dict[str, Any] = field(default_factory=dict)
    #: the dataset line's other fields (e.g. a text line's ``keywords``)
    fields: dict[str, Any] = field(default_factory=dict)

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]


class MetricSkipped(Exception):
    """A metric cannot run on this input (no mask, no curves); the reason becomes a note."""


class Metric(ABC):
    """Scores one explanation; returns named values (scalars, and curves as lists).

    Subclasses set `needs_mask` / `needs_model` so a runner can skip them with a note, and
    `higher_is_better` (per returned scalar name when it differs) for the tables.
    """

    name: str = ""
    needs_mask: bool = False
    needs_model: bool = True
    higher_is_better: dict[str, bool] = {}
    #: the explanations it measures (`Explanation.modality`); others are skipped with a note
    modalities: tuple[str, ...] = ("image",)

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        """→ {column: value}; scalars are floats, curves are lists of floats."""

    def settings(self) -> dict[str, Any]:
        return dict(self.options)
