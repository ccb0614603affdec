"""A packaged example image, so README and notebook code runs from any folder.

``scene()`` is the demo scene (224 × 224: a red circle, a red triangle and a blue circle on a
dark noise background, from `mmattr.datasets.shapes`'s world), the same picture as the
repository's examples/scene.png.

>>> e = mmattr.explain(mmattr.examples.scene(), text="a red circle")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: the scene's file inside the installed package
SCENE = Path(__file__).resolve().parent / "assets" / "scene.png"


def scene_path() -> Path:
    """The example scene's PNG file (inside the installed package)."""
    return SCENE


def scene() -> np.ndarray:
    """The example scene as an (H, W, 3) uint8 array."""
    from .image import load_image

    return load_image(SCENE)
