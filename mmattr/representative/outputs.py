"""Files per interpretation: overlay.png, gallery.png and interpretation.json (atomic writes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .._io import atomic_path, atomic_write
from ..viz import colorize
from .explainer import Interpretation, RepresentativeInterpretations

GALLERY = 8
TILE = 160


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The heat map blended over the photo (the photo stays visible underneath)."""
    out = (1 - alpha) * image.astype(np.float32) + alpha * colorize(heat).astype(np.float32)
    return out.clip(0, 255).astype(np.uint8)


def _tile(img: np.ndarray, caption: str) -> Image.Image:
    tile = Image.fromarray(img).convert("RGB").resize((TILE, TILE), Image.BILINEAR)
    canvas = Image.new("RGB", (TILE, TILE + 30), "white")
    canvas.paste(tile, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(caption.split("\n")[:2]):
        draw.text((3, TILE + 2 + 13 * k), line, fill="black")
    return canvas


def _save_png(path: Path, img: Image.Image) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG")


def write_interpretation(folder: Path, explainer: RepresentativeInterpretations,
                         interp: Interpretation, image: np.ndarray,
                         extra: dict | None = None, gallery: int = GALLERY) -> dict:
    """Write one interpretation; returns its JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    fit = explainer.fitted
    _save_png(folder / "overlay.png", Image.fromarray(overlay(image, interp.heatmap)))
    top = [int(i) for i in interp.ranked[:gallery]]
    tiles = [_tile(overlay(image, interp.heatmap),
                   f"input: {interp.predicted_name}\np={interp.probability:.2f}")]
    if top and explainer.images:
        refs: Sequence[np.ndarray] = [explainer.images[i] for i in top]
        maps = explainer.heatmaps(interp, refs)  # the same channel weights, reused
        for rank, (i, im, hm) in enumerate(zip(top, refs, maps), 1):
            tiles.append(_tile(overlay(im, hm), f"#{rank} {fit.ids[i][-18:]}\n"
                                                f"eq.6 dist {interp.distances[rank - 1]:.3g}"))
    sheet = Image.new("RGB", (TILE * len(tiles), TILE + 30), "white")
    for k, t in enumerate(tiles):
        sheet.paste(t, (k * TILE, 0))
    _save_png(folder / "gallery.png", sheet)
    data = {**interp.to_json(fit), **(extra or {})}
    atomic_write(folder / "interpretation.json", json.dumps(data, indent=2) + "\n")
    return data
