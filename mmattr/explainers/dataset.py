"""The dataset-level explainer concept and its registry.

A dataset-level method first learns from a set of reference images (`fit`), then explains one
image at a time with what it learned (`explain`): Representative Interpretations is one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np

from ..registry import Registry

DATASET_EXPLAINERS: Registry[type["DatasetExplainer"]] = Registry("dataset method")


def register_dataset_explainer(name: str):
    return DATASET_EXPLAINERS.register(name)


def list_dataset_explainers() -> list[str]:
    return DATASET_EXPLAINERS.names()


class DatasetExplainer(ABC):
    """Learns from reference images (`fit`, once), then explains single images (`explain`)."""

    name: str = ""

    @abstractmethod
    def fit(self, images: Sequence[np.ndarray], labels: Sequence[str | None] | None = None
            ) -> "DatasetExplainer":
        """Learn from (H, W, 3) uint8 reference images (labels optional); returns self."""

    @abstractmethod
    def explain(self, image: np.ndarray) -> Any:
        """(H, W, 3) uint8 image → the method's interpretation of it (needs `fit` first)."""
