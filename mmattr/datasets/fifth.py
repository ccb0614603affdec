"""A fifth, independent renderer of the 36 colour-shape objects, kept blind for text explanations.

Nothing is trained, tuned or inspected on this renderer: it is a blind held-out check of which
caption words make a caption match an image (:mod:`mmattr.datasets.two_objects`), next to
:mod:`mmattr.datasets.shapes` (the training world), :mod:`~.altshapes`, :mod:`~.heldout` and
:mod:`~.fourth`. Only the demo model's zero-shot accuracy on its one-object scenes was measured
while building it (so that the model can read it at all); no explanation method was ever run on
it. Its style is a "retro pixel-art" screen unlike all four:

* the whole scene is drawn on a coarse grid and enlarged by pixel repetition: a cell is a
  square of a whole number of pixels, about a 40th to a 56th of the image side (two or three
  pixels at 128 px), so every edge is a staircase of cells, with no anti-aliasing, blur or grain;
* backgrounds: diagonal staircase ``stripes`` of three greys, a smooth ramp in two or three greys
  with Bayer ordered ``dither``, a stepped ``skyline`` of two hill layers under a sky, rectangular
  ``blocks`` from recursive splits (sometimes with dark joints), a basket ``weave`` of short
  strips, and a posterised ``bokeh`` (a blurred photograph-like field of soft light discs reduced
  to a few flat grey levels); all low in saturation;
* objects: flat fill, most with pixel-art two-tone shading (a dithered lighter side towards the
  light, a dithered darker one away from it), and sometimes thin grey occluders in front of them (fence
  posts or a rail, one cell wide, owned by no object);
* camera: a cathode-ray look: a small global gain and, where cells are at least three pixels
  tall, a darker scanline under every second row of cells and sometimes a one-pixel red/blue
  misregistration.

Masks are the visible pixels of each object's fill (its shading cells included; occluders and
other objects cut them). Fill jitter and gain stay within about ±20 per channel; shading,
scanlines and misregistration together touch well under half of an object's pixels, so its
median stays the named colour within that margin and every caption ``a {color} {shape}`` keeps one right answer.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .shapes import (COLORS, SHAPES, Scene, _place, _rng, _shape_mask, _smooth_field,
                     draw_objects, export_one_object, scene_from_owner,
                     world_background)

__all__ = ["FIFTH_BACKGROUNDS", "fifth_world_background", "render_fifth_scene", "export_fifth"]

#: background kinds of this renderer, recorded per scene (``Scene.background``)
FIFTH_BACKGROUNDS: tuple[str, ...] = ("stripes", "dither", "skyline", "blocks", "weave", "bokeh")

_ROTATING = {"square", "triangle", "cross", "star"}  # the shapes the training renderer rotates
_CELLS = (40, 57)        # about this many cells per side (upper bound exclusive)
_RADIUS = (0.24, 0.46)   # object circumradius as a fraction of half the grid side
_JITTER = 8              # per-channel fill jitter (the gain adds at most ~±12 more)
_GAIN = (0.95, 1.05)     # per-scene global gain
_SCAN = (0.06, 0.12)     # scanline darkening
_P_SHADE, _P_OCCLUDER, _P_SCAN, _P_SHIFT = 0.75, 0.35, 0.7, 0.4
_BAYER4 = (np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]],
                    np.float32) + 0.5) / 16


def fifth_world_background(rng: np.random.Generator, shapes: list[str],
                           world: str = "clean") -> str:
    """Background kind of a scene holding ``shapes`` in ``world``: the rule of
    :func:`mmattr.datasets.shapes.world_background` over :data:`FIFTH_BACKGROUNDS`."""
    return world_background(rng, shapes, world, FIFTH_BACKGROUNDS)


# --- backgrounds: each returns an (n, n) float32 luminance offset on the coarse grid ------------

def _cells(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer column and row index of every cell."""
    yy, xx = np.mgrid[0:n, 0:n]
    return xx, yy


def _stripes(g: np.random.Generator, n: int) -> np.ndarray:
    """Diagonal staircase bands, two to three cells wide, cycling through three greys."""
    xx, yy = _cells(n)
    width = int(g.integers(2, 4))
    t = xx + yy if g.random() < 0.5 else xx - yy + n
    tone = (t // width) % 3
    c = g.uniform(10, 20)
    return np.array([-c, 0.2 * c, c], np.float32)[tone]


def _dither(g: np.random.Generator, n: int) -> np.ndarray:
    """A smooth linear or radial ramp quantised to two or three greys by a Bayer 4x4 dither."""
    xx, yy = _cells(n)
    u, v = (xx + 0.5) / n, (yy + 0.5) / n
    if g.random() < 0.5:
        theta = g.uniform(0, 2 * np.pi)
        ramp = (u - 0.5) * np.cos(theta) + (v - 0.5) * np.sin(theta) + 0.5
    else:
        cx, cy = g.uniform(0.2, 0.8, 2)
        ramp = np.hypot(u - cx, v - cy) / 0.8
    levels = int(g.integers(2, 4))
    x = np.clip(ramp, 0, 1) * (levels - 1)
    q = np.floor(x + _BAYER4[yy % 4, xx % 4])  # ordered dither between neighbouring levels
    q = np.clip(q, 0, levels - 1)
    step = g.uniform(18, 30)
    return ((q - (levels - 1) / 2) * step).astype(np.float32)


def _skyline(g: np.random.Generator, n: int) -> np.ndarray:
    """A sky over two stepped hill layers (random-walk heights per run of columns)."""
    _, yy = _cells(n)
    lum = np.full((n, n), g.uniform(8, 18), np.float32)  # sky: light
    for level, tone in ((g.uniform(0.35, 0.5), g.uniform(-4, 4)),
                        (g.uniform(0.6, 0.75), g.uniform(-22, -12))):
        h = np.empty(n, np.float32)
        y, x = level * n, 0
        while x < n:
            run = int(g.integers(2, 6))
            h[x:x + run] = y
            y = float(np.clip(y + g.integers(-3, 4), 0.2 * n, 0.9 * n))
            x += run
        lum[yy >= h[None, :].astype(int)] = tone
    return lum


def _blocks(g: np.random.Generator, n: int) -> np.ndarray:
    """Rectangles of different greys from recursive splits; sometimes with dark joints."""
    lum = np.zeros((n, n), np.float32)
    joints = g.random() < 0.5
    stack = [(0, 0, n, n, 0)]
    while stack:
        x0, y0, x1, y1, depth = stack.pop()
        w, h = x1 - x0, y1 - y0
        if depth < 5 and max(w, h) >= 8 and (depth < 2 or g.random() < 0.7):
            if w >= h:
                s = int(g.integers(x0 + w // 4, x1 - w // 4 + 1))
                stack += [(x0, y0, s, y1, depth + 1), (s, y0, x1, y1, depth + 1)]
            else:
                s = int(g.integers(y0 + h // 4, y1 - h // 4 + 1))
                stack += [(x0, y0, x1, s, depth + 1), (x0, s, x1, y1, depth + 1)]
            continue
        lum[y0:y1, x0:x1] = g.uniform(-20, 20)
        if joints:
            lum[y0, x0:x1] = -38
            lum[y0:y1, x0] = -38
    return lum


def _weave(g: np.random.Generator, n: int) -> np.ndarray:
    """Basket weave: square tiles of two or three short strips, horizontal and vertical in
    turn, each strip lighter at its middle than at its sides (a rounded strand)."""
    xx, yy = _cells(n)
    w = int(g.integers(2, 4))          # strip width (cells)
    b = w * int(g.integers(2, 4))      # tile side: two or three strips
    ox, oy = g.integers(0, b, 2)
    u, v = xx + ox, yy + oy
    vertical = ((u // b) + (v // b)) % 2 == 1
    across = np.where(vertical, u % w, v % w)  # position across a strip
    c = g.uniform(12, 20)
    lum = np.where(across == 0, -c, np.where(across == w - 1, -0.3 * c, 0.6 * c))
    return lum.astype(np.float32)


def _bokeh(g: np.random.Generator, n: int) -> np.ndarray:
    """A blurred photograph-like field (a soft ramp and a few soft light discs) posterised to a
    handful of flat grey levels, so smooth light becomes stepped contour bands."""
    xx, yy = _cells(n)
    u, v = (xx + 0.5) / n, (yy + 0.5) / n
    theta = g.uniform(0, 2 * np.pi)
    f = ((u - 0.5) * np.cos(theta) + (v - 0.5) * np.sin(theta)) * g.uniform(0.6, 1.2)
    for _ in range(int(g.integers(3, 7))):
        cx, cy, r = g.uniform(0, 1), g.uniform(0, 1), g.uniform(0.08, 0.22)
        f = f + g.uniform(0.3, 0.8) * np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * r * r))
    f = f + (_smooth_field(g, n, 4) - 0.5) * 0.3
    f = (f - f.min()) / max(float(f.max() - f.min()), 1e-6)
    levels = int(g.integers(4, 7))
    q = np.minimum(np.floor(f * levels), levels - 1) / (levels - 1) - 0.5
    return (q * g.uniform(40, 60)).astype(np.float32)


_BACKGROUND_FNS = {"stripes": _stripes, "dither": _dither, "skyline": _skyline,
                   "blocks": _blocks, "weave": _weave, "bokeh": _bokeh}


def _fifth_background(g: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """(n, n, 3) float32 on the coarse grid: a grey level, a small tint and the kind's pattern."""
    base = g.uniform(95, 170)
    tint = g.uniform(-7, 7, size=3).astype(np.float32)
    lum = _BACKGROUND_FNS[kind](g, n)
    return (base + lum[..., None] + tint[None, None, :]).astype(np.float32)


# --- objects ------------------------------------------------------------------------------------

def _shade(g: np.random.Generator, crop: np.ndarray, fill: np.ndarray, rgb: np.ndarray,
           dx: np.ndarray, dy: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> None:
    """Pixel-art two tones: a dithered lighter side towards the light and a dithered darker one
    away from it (a checker of cells in the half-tone zone, solid at the extreme). The zones
    are quantiles of the fill's cells, so each tone keeps under a fifth of any shape (a ring
    too) and the plain fill stays the majority."""
    if not fill.any():
        return
    a = g.uniform(1.0, 1.5) * np.pi  # light from the upper left, give or take
    t = dx * np.cos(a) + dy * np.sin(a)  # grows towards the light
    lo2, lo1, hi1, hi2 = np.quantile(t[fill], [0.08, 0.28, 0.72, 0.92])
    checker = (cols + rows) % 2 == 0
    light = fill & (((t > hi1) & checker) | (t > hi2))
    dark = fill & (((t < lo1) & checker) | (t < lo2))
    crop[light] = rgb + (250 - rgb) * np.float32(0.35)
    crop[dark] = rgb * np.float32(0.75)


def _occluders(g: np.random.Generator, img: np.ndarray, owner: np.ndarray) -> None:
    """One to three fence posts, a rail, or both: one cell wide, grey, owned by no object."""
    n = img.shape[0]
    tone = np.float32(g.choice([-1.0, 1.0]) * g.uniform(45, 70)) + float(img.mean())
    rgb = np.clip(tone + g.uniform(-5, 5, 3), 25, 235).astype(np.float32)
    kind = g.random()
    if kind < 0.7:  # posts
        k = int(g.integers(1, 4))
        xs = np.linspace(0, n, k + 2)[1:-1] + g.uniform(-0.12, 0.12, k) * n
        for x in np.clip(xs.astype(int), 1, n - 2):
            img[:, x] = rgb
            owner[:, x] = -1
    if kind > 0.5:  # rail
        y = int(g.uniform(0.25, 0.75) * n)
        img[y] = rgb
        owner[y] = -1


def _camera(g: np.random.Generator, img: np.ndarray, f: int) -> np.ndarray:
    """A small global gain and, when a cell is at least three pixels tall, a darker one-pixel
    scanline under every second row of cells and sometimes a one-pixel red/blue
    misregistration."""
    x = img * np.float32(g.uniform(*_GAIN))
    if f >= 3 and g.random() < _P_SCAN:
        rows = np.arange(x.shape[0]) % (2 * f) == 2 * f - 1  # under every second cell row
        x[rows] *= np.float32(1 - g.uniform(*_SCAN))
    if g.random() < _P_SHIFT and f >= 3:  # one pixel is at most a third of a cell
        s = 1 if g.random() < 0.5 else -1
        x[..., 0] = np.roll(x[..., 0], s, axis=1)
        x[..., 2] = np.roll(x[..., 2], -s, axis=1)
        # the wrapped column takes its neighbour's value instead of the far edge
        edge = 0 if s == 1 else -1
        x[:, edge, 0] = x[:, edge + s, 0]
        x[:, -1 - edge, 2] = x[:, -1 - edge - s, 2]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def render_fifth_scene(rng: np.random.Generator | int, size: int = 224,
                       n_objects: int | None = None, background: str | None = None,
                       world: str = "clean") -> Scene:
    """Render one scene with the fifth renderer; same :class:`Scene` contract as
    :func:`mmattr.datasets.shapes.render_scene` (``background`` is one of
    :data:`FIFTH_BACKGROUNDS`; ``world`` picks it when ``background`` is None).

    Masks are the visible pixels of each object's fill (later objects and occluders cut earlier
    ones; a fully hidden object is dropped with its label). They are exact at image resolution:
    the coarse owner grid is enlarged with the image.
    """
    g = _rng(rng)
    pairs, background = draw_objects(g, n_objects, background, world, FIFTH_BACKGROUNDS)
    names = list(COLORS)
    cells = min(int(g.integers(*_CELLS)), size)
    f = max(1, int(round(size / cells)))  # pixels per cell, a whole number
    low = -(-size // f)                    # cells per side, enough to cover the image
    img = _fifth_background(g, low, background)
    owner = np.full((low, low), -1, dtype=np.int16)
    placed: list[tuple[float, float, float]] = []
    labels: list[str] = []
    for k, p in enumerate(pairs):
        color, shape = names[p // len(SHAPES)], SHAPES[p % len(SHAPES)]
        radius = g.uniform(*_RADIUS) * low / 2
        cx, cy, radius = _place(g, low, radius, placed, True)
        placed.append((cx, cy, radius))
        angle = g.uniform(0, 2 * np.pi) if shape in _ROTATING else 0.0
        x0, x1 = max(0, int(cx - radius) - 1), min(low, int(np.ceil(cx + radius)) + 1)
        y0, y1 = max(0, int(cy - radius) - 1), min(low, int(np.ceil(cy + radius)) + 1)
        rows, cols = np.mgrid[y0:y1, x0:x1]
        dx, dy = cols + 0.5 - cx, rows + 0.5 - cy
        fill = _shape_mask(shape, dx, dy, radius, angle)
        rgb = np.clip(np.array(COLORS[color], np.float32) + g.uniform(-_JITTER, _JITTER, 3),
                      0, 255).astype(np.float32)
        crop = img[y0:y1, x0:x1]
        crop[fill] = rgb
        if g.random() < _P_SHADE:
            _shade(g, crop, fill, rgb, dx, dy, cols, rows)
        owner[y0:y1, x0:x1][fill] = k
        labels.append(f"a {color} {shape}")
    if g.random() < _P_OCCLUDER:
        _occluders(g, img, owner)
    img = np.repeat(np.repeat(img, f, axis=0), f, axis=1)[:size, :size]
    owner = np.repeat(np.repeat(owner, f, axis=0), f, axis=1)[:size, :size]
    image = _camera(g, np.ascontiguousarray(img), f)
    return scene_from_owner(image, owner, labels, background)


def export_fifth(folder: str | os.PathLike, n_scenes: int, seed: int = 0, size: int = 128,
                 world: str = "clean") -> Path:
    """Write ``images/NNNNN.png``, ``masks/NNNNN.png`` and ``manifest.jsonl`` of one-object
    scenes of this renderer (`shapes.export_one_object`); returns the manifest path."""
    return export_one_object(folder, n_scenes, render_fifth_scene, seed=seed, size=size, world=world)
