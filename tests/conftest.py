"""Toy models with known answers, shared by the tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmattr.adapters._preprocess import Preprocess
from mmattr.adapters.base import Adapter


class HotBoxAdapter(Adapter):
    """A toy encoder that sees only one box of the image.

    Its embedding is [mean brightness inside the box, 0.1]; every text maps to [1, 0], so the
    cosine to the target grows with what is visible in the box and nothing else matters.
    """

    def __init__(self, box: tuple[int, int, int, int], size: int = 32) -> None:
        self.box = box
        self.spec = "toy:hotbox"
        self.preprocess = Preprocess(shortest_edge=None, resize_hw=(size, size), crop_hw=None,
                                     mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        self.device = torch.device("cpu")
        self.calls = 0

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        y0, y1, x0, x1 = self.box
        hot = pixels[:, :, y0:y1, x0:x1].mean(dim=(1, 2, 3))
        return torch.stack([hot, torch.full_like(hot, 0.1)], dim=1)

    def encode_texts(self, prompts) -> torch.Tensor:
        return torch.tensor([[1.0, 0.0]]).repeat(len(prompts), 1)


@pytest.fixture
def hotbox() -> HotBoxAdapter:
    # Grid 4×4 over 32×32: the box is exactly cell (row 1, col 2), label 6.
    return HotBoxAdapter(box=(8, 16, 16, 24))


@pytest.fixture
def gray_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (150 + rng.integers(-20, 20, size=(32, 32, 3))).astype(np.uint8)
