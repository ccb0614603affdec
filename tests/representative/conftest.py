from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
TOY = HERE / "toy_models.py"


def load_module(path: Path, name: str):
    """A test helper file as a module (the test folders are not packages)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load():
    return load_module(TOY, "ri_toy_models")


@pytest.fixture(scope="session")
def toy():
    return _load()


def colour_image(r: int, g: int, size: int = 16) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    img[..., 0], img[..., 1] = r, g
    return img


def t_of(r: int, g: int) -> tuple[float, float]:
    """The diamond's t for a uniform colour: what the model computes (float32)."""
    return (float(np.float32(r) / np.float32(255) - np.float32(0.5)) * 4,
            float(np.float32(g) / np.float32(255) - np.float32(0.5)) * 4)


@pytest.fixture(scope="session")
def diamond_refs():
    """64 uniform images on an 8×8 grid of t, at least 0.1 off the axes and the facets."""
    ts = [-1.45, -1.05, -0.65, -0.25, 0.15, 0.55, 0.95, 1.35]
    images, points = [], []
    for t1 in ts:
        for t2 in ts:
            r, g = (int(round(255 * (t / 4 + 0.5))) for t in (t1, t2))
            images.append(colour_image(r, g))
            points.append(t_of(r, g))
    return images, np.array(points)
