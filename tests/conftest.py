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


class ToyCNNAdapter(Adapter):
    """A tiny random CNN with a text tower: the toy the contract tests run every registered
    component on. It has what every method may ask of an adapter (an image tower for CAM hooks,
    gradients), a 24×24 input reached by resize and centre crop (so the geometry is exercised),
    and prompts embedded as fixed pseudo-random vectors (distinct, unit norm after encoding)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 8))
        with torch.no_grad():
            for p in self.model.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        # float64 inside: its results do not change with the batch size (a float32 convolution
        # picks other kernels for other batch sizes), so the contracts can compare tightly
        self.model.double().eval().requires_grad_(False)
        self.spec = "toy:cnn"
        self.preprocess = Preprocess(shortest_edge=24, resize_hw=None, crop_hw=(24, 24),
                                     mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        self.device = torch.device("cpu")

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels.double()).float()

    def encode_texts(self, prompts) -> torch.Tensor:
        rows = [torch.randn(8, generator=torch.Generator().manual_seed(sum(map(ord, p)) % 2**31))
                for p in prompts]
        return torch.stack(rows)

    def vision_module(self) -> torch.nn.Module:
        return self.model


@pytest.fixture
def toy_cnn() -> ToyCNNAdapter:
    return ToyCNNAdapter()


@pytest.fixture
def toy_scene() -> np.ndarray:
    """A 40×48 (non-square) image with structure: a bright disc and a dark bar on noise."""
    rng = np.random.default_rng(1)
    img = rng.integers(60, 120, size=(40, 48, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:40, :48]
    img[(yy - 14) ** 2 + (xx - 30) ** 2 < 64] = (230, 40, 40)
    img[28:34, 6:26] = (20, 20, 200)
    return img
