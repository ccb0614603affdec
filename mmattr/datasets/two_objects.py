"""Two-object captions of one-object images: the known answer of a text explanation.

Each scene holds one object; its caption names that object and one absent object of another
colour and another shape, in a random order ("a red circle and a blue square" for an image of
a red circle). The words that make the caption match the image are the present object's colour
and shape: the line's ``keywords``. Scenes come from a renderer the demo models were not
trained on (`mmattr.datasets.heldout`, `fourth`, `fifth` or `altshapes`), so the check is held
out; `fifth` is kept blind (no explanation method is tuned or inspected on it).

``style="and"`` (the default) always joins the two objects with "and"; ``style="mixed"`` draws
one of several phrasings per caption ("a photo of a red circle and a blue square", "there is a
blue square beside a red circle", ...). Only the filler words change: the objects, their order
and the keywords are those of ``"and"`` for the same seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .._io import atomic_write
from ..errors import InputError
from .shapes import COLORS, SHAPES, Scene

__all__ = ["RENDERERS", "STYLES", "two_object_caption", "caption_lines", "export_captions"]


def _renderers() -> dict[str, Callable[..., Scene]]:
    from .altshapes import render_alt_scene
    from .fifth import render_fifth_scene
    from .fourth import render_fourth_scene
    from .heldout import render_heldout_scene
    from .shapes import render_scene

    return {"heldout": render_heldout_scene, "fourth": render_fourth_scene,
            "fifth": render_fifth_scene, "altshapes": render_alt_scene, "shapes": render_scene}


#: renderer name → module the scenes come from (``shapes`` is the training renderer)
RENDERERS = ("heldout", "fourth", "fifth", "altshapes", "shapes")
#: caption styles: ``and`` joins the two objects with "and"; ``mixed`` varies the phrasing
STYLES = ("and", "mixed")
#: the phrasings of ``mixed``, over the first and second object phrase; no filler word is a
#: colour or a shape, so the keywords stay the present object's two words
_PHRASINGS = ("{} and {}", "{} next to {}", "a photo of {} and {}", "there is {} beside {}",
              "{} with {}", "a picture of {} and {}", "an image showing {} and {}",
              "{} together with {}")


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise InputError(f"unknown caption style {style!r}; choose from {', '.join(STYLES)}")


def two_object_caption(present: str, rng: np.random.Generator, style: str = "and"
                       ) -> tuple[str, list[str]]:
    """``a red circle`` → (``a red circle and a blue square`` or the other order, the
    keywords ``[red, circle]``); the absent object differs in colour and in shape.

    ``style="mixed"`` draws a phrasing of :data:`_PHRASINGS` after the objects and their order
    (so those match ``"and"`` for the same generator state), e.g. ``there is a blue square
    beside a red circle``."""
    _check_style(style)
    _, colour, shape = present.split()
    colours = [c for c in COLORS if c != colour]
    shapes = [s for s in SHAPES if s != shape]
    absent = f"a {colours[int(rng.integers(len(colours)))]} {shapes[int(rng.integers(len(shapes)))]}"
    first, second = (present, absent) if rng.random() < 0.5 else (absent, present)
    if style == "and":
        return f"{first} and {second}", [colour, shape]
    phrasing = _PHRASINGS[int(rng.integers(len(_PHRASINGS)))]
    return phrasing.format(first, second), [colour, shape]


def caption_lines(n: int, seed: int = 0, renderer: str = "heldout", size: int = 128,
                  style: str = "and") -> list[tuple[np.ndarray, dict]]:
    """`n` (image, manifest fields) pairs: scene i seeded by (seed, i), its caption by
    (seed, i, 1), so a prefix of a larger set is identical. `style`: see :data:`STYLES`."""
    _check_style(style)
    render = _renderers().get(renderer)
    if render is None:
        raise InputError(f"unknown renderer {renderer!r}; choose from {', '.join(RENDERERS)}")
    out = []
    for i in range(n):
        scene = render(np.random.default_rng((seed, i)), size=size, n_objects=1)
        text, keywords = two_object_caption(scene.labels[0], np.random.default_rng((seed, i, 1)),
                                            style)
        out.append((scene.image, {"text": text, "explain": "text", "keywords": keywords,
                                  "label": scene.labels[0], "renderer": renderer,
                                  "background": scene.background}))
    return out


def export_captions(folder: str | os.PathLike, n: int, seed: int = 0,
                    renderers: tuple[str, ...] = ("heldout",), size: int = 128,
                    style: str = "and") -> Path:
    """A manifest folder of text lines (``"explain": "text"``) for `mmattr evaluate`:
    ``images/RENDERER-NNNNN.png`` and ``manifest.jsonl``; returns the manifest path.
    `style`: see :data:`STYLES` (the default's lines are those before styles existed)."""
    _check_style(style)
    root = Path(folder)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for renderer in renderers:
        for i, (image, fields) in enumerate(caption_lines(n, seed, renderer, size, style)):
            rel = f"images/{renderer}-{i:05d}.png"
            Image.fromarray(image).save(root / rel)
            lines.append(json.dumps({"image": rel, **fields}))
    manifest = root / "manifest.jsonl"
    atomic_write(manifest, "".join(line + "\n" for line in lines))
    return manifest
