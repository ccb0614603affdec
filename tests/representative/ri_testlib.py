"""Helpers of the RI tests, importable by name (`from ri_testlib import ...`): a module
called `conftest` resolves to whichever test folder comes first on sys.path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

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


def colour_image(r: int, g: int, size: int = 16) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    img[..., 0], img[..., 1] = r, g
    return img


def t_of(r: int, g: int) -> tuple[float, float]:
    """The diamond's t for a uniform colour: what the model computes (float32)."""
    return (float(np.float32(r) / np.float32(255) - np.float32(0.5)) * 4,
            float(np.float32(g) / np.float32(255) - np.float32(0.5)) * 4)
