"""The explainer concept and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import numpy as np

from ..adapters.base import Adapter
from ..config import ExplainConfig
from ..explanation import Explanation
from ..registry import Registry
from ..targets import Target

EXPLAINERS: Registry[type["Explainer"]] = Registry("method")
ProgressFn = Callable[[int, int], None]


def register_explainer(name: str):
    return EXPLAINERS.register(name)


def list_explainers() -> list[str]:
    return EXPLAINERS.names()


class Explainer(ABC):
    """Attributes an adapter's match between an image and a target to image regions."""

    def __init__(self, config: ExplainConfig) -> None:
        self.config = config

    @abstractmethod
    def explain(self, image: np.ndarray, target: Target, adapter: Adapter,
                progress: ProgressFn | None = None) -> Explanation:
        """(H, W, 3) uint8 image → Explanation with an (H, W) attribution map."""
