"""A second, independent renderer of the same 36 colour-shape objects, for held-out checks.

The demo models are trained on :mod:`mmattr.datasets.shapes` only. This generator changes what
a model should not depend on: other backgrounds (polka dots, concentric rings, wood grain,
bricks, flat colour, smooth colour fields), other object sizes (smaller and larger), object
textures (shading, inner stripes of the same hue, dark outlines, drop shadows) and anti-aliased
edges. Object colours stay the named colours (within the same ±20 jitter), so every caption keeps
one right answer. A model that scores well here knows the objects, not one renderer.
"""

from __future__ import annotations

import numpy as np

from .shapes import COLORS, SHAPES, Scene, _rng, _shape_mask, _smooth_field

__all__ = ["ALT_BACKGROUNDS", "render_alt_scene"]

ALT_BACKGROUNDS: tuple[str, ...] = ("dots", "rings", "wood", "bricks", "flat", "field")
_ROTATING = {"square", "triangle", "cross", "star"}
_SS = 2  # supersampling factor for anti-aliased edges


def _alt_background(g: np.random.Generator, size: int, kind: str) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = g.uniform(60, 200)
    # A mild tint, further from the object colours than a named colour is from its neighbours.
    tint = g.uniform(-28, 28, size=3).astype(np.float32)
    if kind == "dots":
        cells = g.uniform(5, 14)
        u, v = (xx * cells) % 1 - 0.5, (yy * cells) % 1 - 0.5
        lum = np.where(u * u + v * v < g.uniform(0.04, 0.12), 1.0, -1.0) * g.uniform(12, 35)
    elif kind == "rings":
        cx, cy = g.uniform(0, 1, 2)
        r = np.hypot(xx - cx, yy - cy)
        lum = np.sign(np.sin(2 * np.pi * r * g.uniform(4, 12))) * g.uniform(10, 30)
    elif kind == "wood":
        warp = _smooth_field(g, size, int(g.integers(3, 7))) * g.uniform(2, 5)
        lum = np.sin(2 * np.pi * (yy * g.uniform(3, 8) + warp)) * g.uniform(15, 35)
    elif kind == "bricks":
        rows = int(g.integers(4, 10))
        row = (yy * rows).astype(int)
        shift = (row % 2) * 0.5
        col = (xx * rows / 2 + shift) % 1
        frac = (yy * rows) % 1
        mortar = (frac < 0.12) | (col < 0.06)
        lum = np.where(mortar, g.uniform(25, 45), -g.uniform(0, 15))
    elif kind == "flat":
        lum = np.zeros((size, size), np.float32)
    elif kind == "field":
        lum = (_smooth_field(g, size, int(g.integers(2, 5))) - 0.5) * g.uniform(40, 100)
        # per-channel smooth colour drift, still low in saturation
        tint = tint[None, None, :] + (np.stack([_smooth_field(g, size, 3) for _ in range(3)], -1)
                                      - 0.5) * 40
        return (base + lum[..., None] + tint).astype(np.float32)
    else:
        raise ValueError(f"unknown background {kind!r}")
    return (base + lum[..., None] + tint[None, None, :]).astype(np.float32)


def _texture(g: np.random.Generator, rgb: np.ndarray, dx: np.ndarray, dy: np.ndarray,
             radius: float) -> np.ndarray:
    """Per-pixel object colour: flat, lit from one side, or with inner stripes of its own hue."""
    kind = int(g.integers(0, 3))
    h, w = dx.shape
    if kind == 0:
        return np.broadcast_to(rgb, (h, w, 3)).copy()
    if kind == 1:  # lighting: brighter on one side, darker on the other
        theta = g.uniform(0, 2 * np.pi)
        t = (dx * np.cos(theta) + dy * np.sin(theta)) / max(radius, 1.0)
        gain = 1.0 + 0.22 * np.clip(t, -1, 1)
        return rgb[None, None, :] * gain[..., None]
    theta = g.uniform(0, np.pi)
    t = dx * np.cos(theta) + dy * np.sin(theta)
    band = np.sin(2 * np.pi * t / max(2.0, radius * g.uniform(0.25, 0.5))) > 0
    gain = np.where(band, 1.0, 0.8)
    return rgb[None, None, :] * gain[..., None]


def render_alt_scene(rng: np.random.Generator | int, size: int = 224,
                     n_objects: int | None = None) -> Scene:
    """Render one scene with the second renderer; same :class:`Scene` contract as
    :func:`mmattr.datasets.shapes.render_scene` (``background`` is one of
    :data:`ALT_BACKGROUNDS`)."""
    g = _rng(rng)
    n = int(g.integers(1, 3)) if n_objects is None else int(n_objects)
    kind = ALT_BACKGROUNDS[int(g.integers(len(ALT_BACKGROUNDS)))]
    big = size * _SS
    img = _alt_background(g, size, kind)
    img = np.repeat(np.repeat(img, _SS, 0), _SS, 1)
    owner = np.full((big, big), -1, dtype=np.int16)
    pairs = g.choice(len(COLORS) * len(SHAPES), size=n, replace=False)
    names = list(COLORS)
    placed: list[tuple[float, float, float]] = []
    labels = []
    for k, p in enumerate(pairs):
        color, shape = names[p // len(SHAPES)], SHAPES[p % len(SHAPES)]
        # Other sizes than the training renderer's 0.18-0.40: smaller and larger objects.
        frac = g.uniform(0.12, 0.18) if g.random() < 0.4 else g.uniform(0.30, 0.48)
        radius = frac * big / 2 if n == 1 else min(frac, 0.3) * big / 2
        for _ in range(50):
            cx, cy = g.uniform(radius, big - radius, 2)
            if all(np.hypot(cx - px, cy - py) >= 1.0 * (radius + pr) for px, py, pr in placed):
                break
        placed.append((cx, cy, radius))
        angle = g.uniform(0, 2 * np.pi) if shape in _ROTATING else 0.0
        pad = int(radius * 0.15) + 3
        x0, x1 = max(0, int(cx - radius) - pad), min(big, int(np.ceil(cx + radius)) + pad)
        y0, y1 = max(0, int(cy - radius) - pad), min(big, int(np.ceil(cy + radius)) + pad)
        dy, dx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = dx + 0.5 - cx, dy + 0.5 - cy
        m = _shape_mask(shape, dx, dy, radius, angle)
        if g.random() < 0.35:  # drop shadow, offset down-right
            off = radius * 0.12
            shadow = _shape_mask(shape, dx - off, dy - off, radius, angle) & ~m
            img[y0:y1, x0:x1][shadow] *= 0.6
        rgb = np.clip(np.array(COLORS[color], np.float32) + g.uniform(-20, 20, 3), 0, 255)
        tex = _texture(g, rgb, dx, dy, radius)
        if g.random() < 0.35:  # dark outline, a tenth of the radius wide
            inner = _shape_mask(shape, dx, dy, radius * 0.9, angle)
            tex = np.where((m & ~inner)[..., None], tex * 0.45, tex)
        img[y0:y1, x0:x1][m] = tex[m]
        owner[y0:y1, x0:x1][m] = k
        labels.append(f"a {color} {shape}")
    # Box-filter down-sampling: anti-aliased edges.
    img = img.reshape(size, _SS, size, _SS, 3).mean((1, 3))
    img += g.normal(0, g.uniform(1, 6), size=img.shape).astype(np.float32)
    image = np.clip(img, 0, 255).astype(np.uint8)
    masks, kept = [], []
    for k, label in enumerate(labels):
        m = (owner == k).reshape(size, _SS, size, _SS).mean((1, 3)) >= 0.5
        if m.any():
            masks.append(m)
            kept.append(label)
    return Scene(image=image, masks=masks, labels=kept, background=kind)
