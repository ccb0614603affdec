"""A fourth, independent renderer of the 36 colour-shape objects, kept for a final validation.

Nothing is trained, tuned or inspected on this renderer: it is the last check, run once, of a
result built on :mod:`mmattr.datasets.shapes` (the training world), :mod:`~.altshapes` and
:mod:`~.heldout`. Its style is a flat, "hand-drawn sticker" look unlike all three:

* backgrounds: zig-zag or wavy line ``stripes`` (neither the straight sinusoids of the training
  renderer nor the hard straight bands of the held-out one), veined ``marble``, a Voronoi
  ``mosaic`` of grey cells with thin joints, fine isotropic ``sand`` grain, a two-tone diagonal
  ``dusk`` blend (a cool and a warm grey) and brown-grey ``cardboard`` with short fibres; all low
  in saturation;
* objects: flat fill (no shading, no texture) with a wobbly hand-drawn edge, most with a thick
  near-black ink contour drawn *outside* the fill, some with a small light highlight dot;
* camera: a mild per-scene gamma and contrast change, light noise, and sometimes mild JPEG
  blockiness.

Masks are the visible pixels of each object's coloured fill (highlight dot included). The ink
contour is a band a few pixels wide just outside the fill, owned by no object, so a fill keeps
its named colour: fill jitter, gamma and contrast together stay within about ±20 per channel and
every caption ``a {color} {shape}`` keeps one right answer.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .shapes import (COLORS, SHAPES, Scene, _place, _rng, _shape_mask, _smooth_field,
                     draw_objects, export_one_object, scene_from_owner,
                     world_background)

__all__ = ["FOURTH_BACKGROUNDS", "fourth_world_background", "render_fourth_scene",
           "export_fourth"]

#: background kinds of this renderer, recorded per scene (``Scene.background``)
FOURTH_BACKGROUNDS: tuple[str, ...] = ("stripes", "marble", "mosaic", "sand", "dusk",
                                       "cardboard")

_ROTATING = {"square", "triangle", "cross", "star"}  # the shapes the training renderer rotates
_JITTER = 6              # per-channel fill jitter (gamma and contrast add at most ~±12 more)
_GAMMA = (0.9, 1.1)      # per-scene gamma
_CONTRAST = (0.95, 1.05)  # per-scene contrast about mid-grey
_RADIUS = (0.15, 0.45)   # object circumradius as a fraction of half the image side
_P_INK, _P_DOT, _P_JPEG = 0.75, 0.35, 0.5


def fourth_world_background(rng: np.random.Generator, shapes: list[str],
                            world: str = "clean") -> str:
    """Background kind of a scene holding ``shapes`` in ``world``: the rule of
    :func:`mmattr.datasets.shapes.world_background` over :data:`FOURTH_BACKGROUNDS`."""
    return world_background(rng, shapes, world, FOURTH_BACKGROUNDS)


# --- backgrounds: each returns (size, size, 3) float32 offsets around a grey level ---------------

def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return (xx + 0.5) / size, (yy + 0.5) / size


def _grey(lum: np.ndarray) -> np.ndarray:
    return np.repeat(lum[..., None], 3, axis=2)


def _zigzag(g: np.random.Generator, size: int) -> np.ndarray:
    """Zig-zag (chevron) or wavy lines: a displaced periodic band, thin or half duty cycle."""
    xx, yy = _grid(size)
    theta = g.uniform(0, np.pi)
    u = (xx - 0.5) * np.cos(theta) + (yy - 0.5) * np.sin(theta)   # along the bands
    v = -(xx - 0.5) * np.sin(theta) + (yy - 0.5) * np.cos(theta)  # across the bands
    period = g.uniform(0.05, 0.12)      # band spacing, in image sides
    wave = g.uniform(0.12, 0.3)         # wavelength of the zig-zag along the bands
    amp = g.uniform(0.4, 1.0) * period
    phase = g.uniform(0, 1)
    if g.random() < 0.5:  # chevron: triangle wave
        off = amp * (4 * np.abs((u / wave + phase) % 1 - 0.5) - 1)
    else:                 # wavy bands
        off = amp * np.sin(2 * np.pi * (u / wave + phase))
    s = ((v + off) / period) % 1
    duty = g.uniform(0.2, 0.5)
    # Slightly soft edges (a third of a pixel at 128 px) so bands do not alias into moire.
    soft = 0.6 / (period * size)
    on = np.clip((duty / 2 - np.abs(s - 0.5)) / soft + 0.5, 0, 1)
    contrast = g.uniform(28, 50)
    lum = (0.35 - on) * contrast   # dark lines on a lighter ground
    return _grey(lum.astype(np.float32))


def _marble(g: np.random.Generator, size: int) -> np.ndarray:
    """Thin dark veins: a sine of a turbulent phase, sharpened, on a pale mottled ground."""
    xx, yy = _grid(size)
    turb = np.zeros((size, size), np.float32)
    amp = 1.0
    for cells in (2, 4, 8):
        turb += (_smooth_field(g, size, cells) - 0.5) * amp
        amp *= 0.35
    theta = g.uniform(0, np.pi)
    t = xx * np.cos(theta) + yy * np.sin(theta)
    # A few long flowing veins: the phase is a gentle ramp bent by smooth noise.
    pattern = np.sin(np.pi * (g.uniform(2, 3.5) * t + g.uniform(1.5, 3) * turb))
    vein = (1 - np.abs(pattern)) ** g.uniform(14, 30)
    # Fainter secondary veins at another angle.
    theta2 = theta + g.uniform(0.6, 1.2)
    t2 = xx * np.cos(theta2) + yy * np.sin(theta2)
    pattern2 = np.sin(np.pi * (g.uniform(2, 4) * t2 + g.uniform(2, 4) * turb[::-1]))
    vein2 = (1 - np.abs(pattern2)) ** 30
    lum = (10 - vein * g.uniform(40, 60) - vein2 * g.uniform(12, 22)
           + (_smooth_field(g, size, 5) - 0.5) * 14)
    return _grey(lum.astype(np.float32))


def _mosaic(g: np.random.Generator, size: int) -> np.ndarray:
    """Voronoi cells of different greys with thin light or dark joints."""
    xx, yy = _grid(size)
    n = int(g.integers(12, 40))
    pts = g.random((n, 2), dtype=np.float32)
    d = np.sqrt((xx[None] - pts[:, 0, None, None]) ** 2 + (yy[None] - pts[:, 1, None, None]) ** 2)
    two = np.partition(d, 1, axis=0)[:2]
    nearest = d.argmin(0)
    shade = g.uniform(-26, 26, size=n).astype(np.float32)
    lum = shade[nearest]
    joint = (two[1] - two[0]) < g.uniform(1.2, 2.2) / size * max(1.0, size / 128)
    lum = np.where(joint, g.choice([-1.0, 1.0]) * g.uniform(35, 50), lum)
    lum = lum + g.normal(0, 1.5, size=(size, size)).astype(np.float32)
    return _grey(lum.astype(np.float32))


def _sand(g: np.random.Generator, size: int) -> np.ndarray:
    """Fine isotropic grain at two scales, a few darker grains, a faint beige cast."""
    scale = size / 128
    fine = cv2.GaussianBlur(g.normal(0, 1, (size, size)).astype(np.float32), (0, 0),
                            0.5 * scale)
    coarse = cv2.GaussianBlur(g.normal(0, 1, (size, size)).astype(np.float32), (0, 0),
                              1.3 * scale)
    fine /= max(float(fine.std()), 1e-6)
    coarse /= max(float(coarse.std()), 1e-6)
    lum = fine * g.uniform(7, 12) + coarse * g.uniform(4, 8)
    lum -= (g.random((size, size)) < 0.01) * g.uniform(20, 35)  # sparse dark grains
    cast = np.array([8, 4, -8], np.float32) * g.uniform(0.3, 1.0)
    return _grey(lum.astype(np.float32)) + cast


def _dusk(g: np.random.Generator, size: int) -> np.ndarray:
    """Two low-saturation tones (one cooler, one warmer) blended smoothly along a diagonal."""
    xx, yy = _grid(size)
    theta = g.choice([np.pi / 4, 3 * np.pi / 4, 5 * np.pi / 4, 7 * np.pi / 4]) \
        + g.uniform(-0.25, 0.25)
    t = (xx - 0.5) * np.cos(theta) + (yy - 0.5) * np.sin(theta)
    w = g.uniform(0.12, 0.35)
    a = np.clip((t - g.uniform(-0.15, 0.15)) / w * 0.5 + 0.5, 0, 1)
    a = a * a * (3 - 2 * a)  # smoothstep
    cool = np.array([-10, -2, 12], np.float32) + g.uniform(-25, -10)
    warm = np.array([12, 3, -10], np.float32) + g.uniform(10, 25)
    img = cool * (1 - a[..., None]) + warm * a[..., None]
    return (img + (_smooth_field(g, size, 4) - 0.5)[..., None] * 8).astype(np.float32)


def _cardboard(g: np.random.Generator, size: int) -> np.ndarray:
    """Brown-grey ground with short fibres in every direction and faint blotches."""
    scale = size / 128
    k = max(7, int(round(9 * scale)) | 1)
    noise = g.normal(0, 1, (size, size)).astype(np.float32)
    fib = np.zeros((size, size), np.float32)
    for ang in g.uniform(0, np.pi, 4):
        kernel = np.zeros((k, k), np.float32)
        c = k // 2
        p1 = (int(round(c - c * np.cos(ang))), int(round(c - c * np.sin(ang))))
        p2 = (int(round(c + c * np.cos(ang))), int(round(c + c * np.sin(ang))))
        cv2.line(kernel, p1, p2, 1.0, 1)
        fib += cv2.filter2D(noise, -1, kernel / kernel.sum())
    fib /= max(float(fib.std()), 1e-6)
    lum = fib * g.uniform(6, 10) + (_smooth_field(g, size, 6) - 0.5) * 16
    lum += g.normal(0, 1.5, (size, size)).astype(np.float32)
    brown = np.array([12, 3, -11], np.float32) * g.uniform(0.7, 1.0)
    return _grey(lum.astype(np.float32)) + brown


_BACKGROUND_FNS = {"stripes": _zigzag, "marble": _marble, "mosaic": _mosaic, "sand": _sand,
                   "dusk": _dusk, "cardboard": _cardboard}


def _fourth_background(g: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """(size, size, 3) float32: a grey level, a small tint and the kind's pattern."""
    base = g.uniform(95, 175) if kind != "marble" else g.uniform(140, 190)
    tint = g.uniform(-6, 6, size=3).astype(np.float32)
    return (base + tint[None, None, :] + _BACKGROUND_FNS[kind](g, size)).astype(np.float32)


# --- objects ------------------------------------------------------------------------------------

def _wobbly_mask(g: np.random.Generator, shape: str, dx: np.ndarray, dy: np.ndarray,
                 radius: float, angle: float) -> np.ndarray:
    """The shape with a hand-drawn edge: its radius modulated by a few low harmonics of the
    polar angle (about ±4 %), so the outline wobbles but the shape stays recognisable."""
    phi = np.arctan2(dy, dx)
    wob = np.zeros_like(dx)
    for k in g.choice(np.arange(3, 12), size=3, replace=False):
        wob += g.uniform(0.008, 0.016) * np.sin(k * phi + g.uniform(0, 2 * np.pi))
    s = 1.0 + wob
    return _shape_mask(shape, dx / s, dy / s, radius, angle)


def _highlight(g: np.random.Generator, fill: np.ndarray, dx: np.ndarray, dy: np.ndarray,
               radius: float) -> np.ndarray | None:
    """A small round dot inside the fill, towards its upper left; None when it does not fit."""
    rd = max(1.0, 0.1 * radius)
    dist = cv2.distanceTransform(np.pad(fill, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    ok = dist >= rd + 1.5
    if not ok.any():
        return None
    a = g.uniform(1.0, 1.6) * np.pi  # up-left quadrant, give or take
    tx, ty = 0.45 * radius * np.cos(a), 0.45 * radius * np.sin(a)
    score = np.where(ok, (dx - tx) ** 2 + (dy - ty) ** 2, np.inf)
    i, j = np.unravel_index(int(score.argmin()), score.shape)
    return ((dx - dx[i, j]) ** 2 + (dy - dy[i, j]) ** 2 <= rd * rd) & fill


def _camera(g: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Mild gamma and contrast, light noise, and sometimes mild JPEG blockiness."""
    x = np.clip(img, 0, 255) / 255.0
    x = x ** g.uniform(*_GAMMA)
    x = (x - 0.5) * g.uniform(*_CONTRAST) + 0.5
    x = x * 255 + g.normal(0, g.uniform(0.5, 2.0), size=x.shape)
    out = np.clip(x, 0, 255).astype(np.uint8)
    if g.random() < _P_JPEG:
        quality = int(g.integers(70, 91))
        # 4:4:4 keeps full-resolution chroma: blocky, but small objects keep their colour.
        ok, buf = cv2.imencode(".jpg", out[..., ::-1],
                               [cv2.IMWRITE_JPEG_QUALITY, quality,
                                cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out


def render_fourth_scene(rng: np.random.Generator | int, size: int = 224,
                        n_objects: int | None = None, background: str | None = None,
                        world: str = "clean") -> Scene:
    """Render one scene with the fourth renderer; same :class:`Scene` contract as
    :func:`mmattr.datasets.shapes.render_scene` (``background`` is one of
    :data:`FOURTH_BACKGROUNDS`; ``world`` picks it when ``background`` is None).

    Masks are the visible pixels of each object's coloured fill (later objects, and their ink
    contours, occlude earlier ones; a fully occluded object is dropped with its label).
    """
    g = _rng(rng)
    pairs, background = draw_objects(g, n_objects, background, world, FOURTH_BACKGROUNDS)
    names = list(COLORS)
    img = _fourth_background(g, size, background)
    owner = np.full((size, size), -1, dtype=np.int16)
    scale = size / 128
    ink_rgb = np.float32(g.uniform(22, 42)) + g.uniform(-4, 4, 3).astype(np.float32)
    placed: list[tuple[float, float, float]] = []
    labels: list[str] = []
    for k, p in enumerate(pairs):
        color, shape = names[p // len(SHAPES)], SHAPES[p % len(SHAPES)]
        radius = g.uniform(*_RADIUS) * size / 2
        cx, cy, radius = _place(g, size, radius, placed, True)
        placed.append((cx, cy, radius))
        angle = g.uniform(0, 2 * np.pi) if shape in _ROTATING else 0.0
        ink_px = int(round(g.uniform(1.2, 2.4) * scale)) if g.random() < _P_INK else 0
        pad = int(radius * 0.06) + ink_px + 2
        x0, x1 = max(0, int(cx - radius) - pad), min(size, int(np.ceil(cx + radius)) + pad)
        y0, y1 = max(0, int(cy - radius) - pad), min(size, int(np.ceil(cy + radius)) + pad)
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = gx + 0.5 - cx, gy + 0.5 - cy
        fill = _wobbly_mask(g, shape, dx, dy, radius, angle)
        rgb = np.clip(np.array(COLORS[color], np.float32) + g.uniform(-_JITTER, _JITTER, 3),
                      0, 255)
        crop, own = img[y0:y1, x0:x1], owner[y0:y1, x0:x1]
        if ink_px:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ink_px + 1,) * 2)
            ink = cv2.dilate(fill.astype(np.uint8), kernel).astype(bool) & ~fill
            crop[ink] = ink_rgb
            own[ink] = -1  # the contour belongs to no object
        crop[fill] = rgb
        if g.random() < _P_DOT:
            dot = _highlight(g, fill, dx, dy, radius)
            if dot is not None:
                crop[dot] = rgb + (250 - rgb) * np.float32(0.6)
        own[fill] = k
        labels.append(f"a {color} {shape}")
    image = _camera(g, img)
    return scene_from_owner(image, owner, labels, background)


def export_fourth(folder: str | os.PathLike, n_scenes: int, seed: int = 0, size: int = 128,
                  world: str = "clean") -> Path:
    """Write ``images/NNNNN.png``, ``masks/NNNNN.png`` and ``manifest.jsonl`` of one-object
    scenes of this renderer (`shapes.export_one_object`); returns the manifest path."""
    return export_one_object(folder, n_scenes, render_fourth_scene, seed=seed, size=size, world=world)
