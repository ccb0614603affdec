"""A third, independent renderer of the 36 colour-shape objects, kept for held-out evaluation.

Nothing is trained or tuned on this renderer: it exists so that a result measured on
:mod:`mmattr.datasets.shapes` (the training world) or :mod:`mmattr.datasets.altshapes` can be
checked on images nobody looked at while building the method. Its style differs from both:

* backgrounds: hard-edged bands of random widths (``stripes``, unlike the sinusoidal stripes of
  the training renderer), fine ``paper`` grain, grey ``tiles`` with grout lines, multi-scale
  ``clouds``, a flat field with a dark ``vignette``, and sparse ``speckle`` dots; all low in
  saturation;
* objects: a soft "pillow" gradient (brighter inside, darker towards the edge, lit from one
  side), a thin light rim and, sometimes, a soft blurred contact shadow;
* camera: a slight Gaussian blur of the whole image, a small global colour cast and sensor noise.

Object colours stay the named colours (jitter, shading and cast together keep the interior
within about ±20 per channel), so every caption ``a {color} {shape}`` keeps one right answer.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .shapes import (COLORS, SHAPES, Scene, _place, _rng, _shape_mask, _smooth_field,
                     draw_objects, export_one_object, scene_from_owner,
                     world_background)

__all__ = ["HELDOUT_BACKGROUNDS", "heldout_world_background", "render_heldout_scene",
           "export_heldout"]

#: background kinds of this renderer, recorded per scene (``Scene.background``)
HELDOUT_BACKGROUNDS: tuple[str, ...] = ("stripes", "paper", "tiles", "clouds", "vignette",
                                        "speckle")

_ROTATING = {"square", "triangle", "cross", "star"}  # the shapes the training renderer rotates
_JITTER = 10          # per-channel object colour jitter (the cast and shading add the rest)
_CAST = 0.035         # per-channel global gain in 1 ± _CAST
_RADIUS = (0.15, 0.45)  # object circumradius as a fraction of half the image side


def heldout_world_background(rng: np.random.Generator, shapes: list[str],
                             world: str = "clean") -> str:
    """Background kind of a scene holding ``shapes`` in ``world``: the rule of
    :func:`mmattr.datasets.shapes.world_background` over :data:`HELDOUT_BACKGROUNDS`."""
    return world_background(rng, shapes, world, HELDOUT_BACKGROUNDS)


# --- backgrounds -------------------------------------------------------------------------------

def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return (xx + 0.5) / size, (yy + 0.5) / size


def _bands(g: np.random.Generator, size: int) -> np.ndarray:
    """Hard-edged bands of random widths at a random angle, two grey tones."""
    xx, yy = _grid(size)
    theta = g.uniform(0, np.pi)
    t = (xx - 0.5) * np.cos(theta) + (yy - 0.5) * np.sin(theta)  # in [-0.71, 0.71]
    mean_w = g.uniform(0.03, 0.10)
    widths = g.uniform(0.4, 1.6, size=int(1.6 / (0.4 * mean_w)) + 2) * mean_w
    edges = np.cumsum(widths) - 0.75 - g.uniform(0, widths[0])
    band = np.searchsorted(edges, t.ravel()).reshape(size, size)
    contrast = g.uniform(22, 50)
    lum = np.where(band % 2 == 0, 0.5, -0.5).astype(np.float32) * contrast
    return lum + (_smooth_field(g, size, 6) - 0.5) * 8


def _paper(g: np.random.Generator, size: int) -> np.ndarray:
    """Fine grain plus faint fibres along one direction."""
    grain = g.normal(0, g.uniform(5, 10), size=(size, size)).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), 0.6)
    fib = g.random((max(2, size // 10), size), dtype=np.float32)
    fib = cv2.resize(fib, (size, size), interpolation=cv2.INTER_LINEAR) - 0.5
    if g.random() < 0.5:
        fib = fib.T
    return grain + fib * g.uniform(6, 14) + (_smooth_field(g, size, 4) - 0.5) * 10


def _tiles(g: np.random.Generator, size: int) -> np.ndarray:
    """A grid of slightly different grey tiles separated by grout lines."""
    xx, yy = _grid(size)
    cells = int(g.integers(3, 9))
    ox, oy = g.uniform(0, 1, 2)
    u, v = xx * cells + ox, yy * cells + oy
    shade = g.uniform(-12, 12, size=(cells + 2, cells + 2)).astype(np.float32)
    lum = shade[v.astype(int), u.astype(int)]
    grout = g.uniform(0.05, 0.10)
    on_grout = (u % 1 < grout) | (v % 1 < grout)
    lum = np.where(on_grout, g.choice([-1.0, 1.0]) * g.uniform(25, 45), lum)
    return lum.astype(np.float32) + g.normal(0, 2.0, size=(size, size)).astype(np.float32)


def _clouds(g: np.random.Generator, size: int) -> np.ndarray:
    """Multi-scale smooth noise (a few octaves of resized random fields)."""
    lum = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for cells in (2, 4, 8, 16, 32):
        lum += (_smooth_field(g, size, min(cells, size)) - 0.5) * amp
        total += amp
        amp *= 0.55
    lum /= total
    lum = lum / max(float(np.abs(lum).max()), 1e-6)
    return lum * g.uniform(30, 60)


def _vignette(g: np.random.Generator, size: int) -> np.ndarray:
    """Flat field with a dark vignette towards the corners (applied as a gain, see caller)."""
    return np.zeros((size, size), np.float32)


def _speckle(g: np.random.Generator, size: int) -> np.ndarray:
    """Sparse small dots, lighter and darker than the ground."""
    lum = np.zeros((size, size), np.float32)
    scale = size / 128
    for sign in (1.0, -1.0):
        for radius in (0.6, 1.4):
            seeds = (g.random((size, size)) < g.uniform(0.002, 0.006)).astype(np.float32)
            k = max(1, int(round(2 * radius * scale)) | 1)
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
            dots = cv2.dilate(seeds, kernel)
            lum += sign * dots * g.uniform(25, 50)
    return lum + g.normal(0, 1.5, size=(size, size)).astype(np.float32)


_BACKGROUND_FNS = {"stripes": _bands, "paper": _paper, "tiles": _tiles, "clouds": _clouds,
                   "vignette": _vignette, "speckle": _speckle}


def _heldout_background(g: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """(size, size, 3) float32: grey level, a mild tint and the kind's luminance pattern."""
    base = g.uniform(75, 185)
    tint = g.uniform(-14, 14, size=3).astype(np.float32)
    img = base + _BACKGROUND_FNS[kind](g, size)[..., None] + tint[None, None, :]
    if kind == "vignette":
        xx, yy = _grid(size)
        cx, cy = 0.5 + g.uniform(-0.12, 0.12, 2)
        r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / 0.5
        img = img * (1.0 - g.uniform(0.35, 0.6) * np.clip(r2, 0, 1.5) ** 1.3)[..., None]
    return img.astype(np.float32)


# --- objects -----------------------------------------------------------------------------------

def _pillow(g: np.random.Generator, rgb: np.ndarray, m: np.ndarray, dx: np.ndarray,
            dy: np.ndarray, radius: float, rim_px: float) -> np.ndarray:
    """Per-pixel colour of one object: soft inner gradient, side lighting, light rim."""
    dist = cv2.distanceTransform(np.pad(m, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    depth = np.clip(dist / max(float(dist.max()), 1.0), 0, 1)
    theta = g.uniform(0, 2 * np.pi)
    side = np.clip((dx * np.cos(theta) + dy * np.sin(theta)) / max(radius, 1.0), -1, 1)
    gain = 0.92 + 0.12 * np.sqrt(depth) + 0.05 * side
    col = rgb[None, None, :] * gain[..., None]
    # The rim fades out on thin objects (a small ring is all edge), so it never dominates.
    alpha = 0.3 * float(np.clip((dist.max() - rim_px) / (3 * rim_px), 0, 1))
    rim = (m & (dist <= rim_px)).astype(np.float32)[..., None] * np.float32(alpha)
    col = col * (1 - rim) + rim * np.float32(245)
    return col


def render_heldout_scene(rng: np.random.Generator | int, size: int = 224,
                         n_objects: int | None = None, background: str | None = None,
                         world: str = "clean") -> Scene:
    """Render one held-out scene; same :class:`Scene` contract as
    :func:`mmattr.datasets.shapes.render_scene` (``background`` is one of
    :data:`HELDOUT_BACKGROUNDS`; ``world`` picks it when ``background`` is None).

    Masks are the visible pixels of each object (later objects occlude earlier ones; a fully
    occluded object is dropped with its label). The camera blur softens the edges in the image,
    not in the masks.
    """
    g = _rng(rng)
    pairs, background = draw_objects(g, n_objects, background, world, HELDOUT_BACKGROUNDS)
    names = list(COLORS)
    img = _heldout_background(g, size, background)
    owner = np.full((size, size), -1, dtype=np.int16)
    scale = size / 128
    rim_px = max(1.0, round(1.2 * scale))
    placed: list[tuple[float, float, float]] = []
    labels: list[str] = []
    for k, p in enumerate(pairs):
        color, shape = names[p // len(SHAPES)], SHAPES[p % len(SHAPES)]
        radius = g.uniform(*_RADIUS) * size / 2
        cx, cy, radius = _place(g, size, radius, placed, True)
        placed.append((cx, cy, radius))
        angle = g.uniform(0, 2 * np.pi) if shape in _ROTATING else 0.0
        # A crop around the object, wide enough for its soft shadow.
        pad = int(radius * 0.35) + 4
        x0, x1 = max(0, int(cx - radius) - pad), min(size, int(np.ceil(cx + radius)) + pad)
        y0, y1 = max(0, int(cy - radius) - pad), min(size, int(np.ceil(cy + radius)) + pad)
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = gx + 0.5 - cx, gy + 0.5 - cy
        m = _shape_mask(shape, dx, dy, radius, angle)
        if g.random() < 0.45:  # soft contact shadow, offset and blurred
            off = radius * g.uniform(0.06, 0.14)
            sh = _shape_mask(shape, dx - off, dy - off * g.uniform(0.5, 1.5), radius, angle)
            sh = cv2.GaussianBlur(sh.astype(np.float32), (0, 0), max(1.0, radius * 0.12))
            img[y0:y1, x0:x1] *= (1.0 - g.uniform(0.25, 0.4) * sh)[..., None]
        rgb = np.array(COLORS[color], np.float32) + g.uniform(-_JITTER, _JITTER, 3)
        col = _pillow(g, rgb, m, dx, dy, radius, rim_px)
        img[y0:y1, x0:x1][m] = col[m]
        owner[y0:y1, x0:x1][m] = k
        labels.append(f"a {color} {shape}")
    # Camera: slight blur, a small colour cast, then sensor noise.
    img = cv2.GaussianBlur(np.clip(img, 0, 255), (0, 0), g.uniform(0.45, 0.9) * scale)
    cast = 1.0 + g.uniform(-_CAST, _CAST, 3).astype(np.float32)
    img = img * cast[None, None, :]
    img += g.normal(0, g.uniform(1.5, 4.0), size=img.shape).astype(np.float32)
    image = np.clip(img, 0, 255).astype(np.uint8)
    return scene_from_owner(image, owner, labels, background)


def export_heldout(folder: str | os.PathLike, n_scenes: int, seed: int = 0, size: int = 128,
                   world: str = "clean") -> Path:
    """Write ``images/NNNNN.png``, ``masks/NNNNN.png`` and ``manifest.jsonl`` of one-object
    scenes of this renderer (`shapes.export_one_object`); returns the manifest path."""
    return export_one_object(folder, n_scenes, render_heldout_scene, seed=seed, size=size, world=world)
