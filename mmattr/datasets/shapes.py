"""Seeded procedural world of coloured shapes on textured backgrounds.

Every scene comes with exact per-object masks and a caption ``a {color} {shape}``, so attribution
maps can be scored against ground truth and the demo model can be trained without any download.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image

from .._io import atomic_write
from ..errors import InputError

__all__ = ["COLORS", "SHAPES", "BACKGROUNDS", "WORLDS", "Scene", "captions", "background_phrase",
           "world_background", "render_scene", "export_dataset", "load_manifest"]

# Saturated and far apart in RGB, so a ±20 jitter never changes the nearest colour name.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (40, 190, 50),
    "blue": (40, 70, 235),
    "yellow": (240, 225, 30),
    "purple": (150, 40, 200),
    "orange": (250, 135, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star", "ring")
#: background kinds, recorded per scene (``Scene.background``, manifest field ``background``)
BACKGROUNDS: tuple[str, ...] = ("noise", "stripes", "gradient", "checker")
#: ``clean``: every background equally likely for every object. ``biased``: the planted flaw of
#: the ``demo-biased`` model: a scene holding a star lies on stripes, and stripes appear nowhere
#: else (a spurious correlation between one shape and one background).
WORLDS: tuple[str, ...] = ("clean", "biased")
_BACKGROUND_WORDS = {"noise": "noisy", "stripes": "striped", "gradient": "gradient",
                     "checker": "checkered"}

_ROTATING = {"square", "triangle", "cross", "star"}
_JITTER = 20
_NOISE_STD = 4.0


def captions() -> list[str]:
    """All 36 captions, colours outer and shapes inner."""
    return [f"a {c} {s}" for c in COLORS for s in SHAPES]


def background_phrase(kind: str) -> str:
    """How captions name a background kind: ``on a striped background``."""
    return f"on a {_BACKGROUND_WORDS[kind]} background"


def world_background(rng: np.random.Generator, shapes: list[str], world: str = "clean",
                     kinds: tuple[str, ...] | list[str] | None = None) -> str:
    """The background kind of a scene holding ``shapes`` in ``world`` (see :data:`WORLDS`),
    drawn from `kinds` (this renderer's :data:`BACKGROUNDS` by default; every renderer has a
    ``stripes`` kind, the biased world's rule)."""
    kinds = list(BACKGROUNDS if kinds is None else kinds)
    if world == "clean":
        return kinds[int(rng.integers(len(kinds)))]
    if world == "biased":
        if "star" in shapes:
            return "stripes"
        others = [b for b in kinds if b != "stripes"]
        return others[int(rng.integers(len(others)))]
    raise ValueError(f"unknown world {world!r}; choose from {', '.join(WORLDS)}")


def draw_objects(g: np.random.Generator, n_objects: int | None, background: str | None,
                 world: str, kinds: tuple[str, ...] | list[str] | None = None
                 ) -> tuple[np.ndarray, str]:
    """A scene's objects (indices into colour × shape, 1-3 unless `n_objects`) and its
    background kind (given, else drawn by `world_background` over `kinds`): the first draws
    of every renderer, in one order, so a seed means the same objects everywhere."""
    kinds = list(BACKGROUNDS if kinds is None else kinds)
    n = int(g.integers(1, 4)) if n_objects is None else int(n_objects)
    if not 1 <= n <= len(COLORS) * len(SHAPES):
        raise ValueError(f"n_objects must be between 1 and 36, got {n}")
    pairs = g.choice(len(COLORS) * len(SHAPES), size=n, replace=False)
    if background is None:
        background = world_background(g, [SHAPES[p % len(SHAPES)] for p in pairs], world, kinds)
    elif background not in kinds:
        raise ValueError(f"unknown background {background!r}; choose from {', '.join(kinds)}")
    return pairs, background


@dataclass
class Scene:
    """One rendered image with the visible mask and caption of each object."""

    image: np.ndarray
    masks: list[np.ndarray] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    #: one of :data:`BACKGROUNDS`
    background: str = "noise"


def _rng(rng: np.random.Generator | int) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _polygon(r: np.ndarray, phi: np.ndarray, radius: float, n: int) -> np.ndarray:
    # Folding the angle into one edge's sector turns a regular polygon into one half-plane test.
    sector = 2 * np.pi / n
    psi = np.mod(phi, sector)
    return r * np.cos(psi - sector / 2) <= radius * np.cos(np.pi / n)


def _star(r: np.ndarray, phi: np.ndarray, radius: float) -> np.ndarray:
    sector = 2 * np.pi / 5
    psi = np.mod(phi, sector)
    psi = np.minimum(psi, sector - psi)  # mirror symmetry: one outer-to-inner edge suffices
    inner = radius * 0.45
    ax, ay = radius, 0.0
    bx, by = inner * np.cos(np.pi / 5), inner * np.sin(np.pi / 5)
    px, py = r * np.cos(psi), r * np.sin(psi)
    # Inside iff on the same side of edge AB as the origin.
    side = (px - ax) * (by - ay) - (py - ay) * (bx - ax)
    origin_side = (0 - ax) * (by - ay) - (0 - ay) * (bx - ax)
    return side * np.sign(origin_side) >= 0


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, radius: float,
                angle: float) -> np.ndarray:
    """Boolean mask of ``shape`` with circumradius ``radius`` on offset grids ``dx, dy``."""
    if shape == "circle":
        return dx * dx + dy * dy <= radius * radius
    if shape == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= radius * radius) & (d2 >= (0.55 * radius) ** 2)
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = ca * dx + sa * dy, -sa * dx + ca * dy
    if shape == "cross":
        arm, half = 0.32 * radius, 0.95 * radius
        au, av = np.abs(u), np.abs(v)
        return ((au <= arm) & (av <= half)) | ((av <= arm) & (au <= half))
    r = np.sqrt(u * u + v * v)
    phi = np.arctan2(v, u)
    if shape == "square":
        return _polygon(r, phi, radius, 4)
    if shape == "triangle":
        return _polygon(r, phi + np.pi / 2, radius, 3)
    if shape == "star":
        return _star(r, phi + np.pi / 2, radius)
    raise ValueError(f"unknown shape {shape!r}")


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    low = rng.random((cells, cells), dtype=np.float32)
    return cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)


def _background(rng: np.random.Generator, size: int, kind: int) -> np.ndarray:
    """Low-saturation texture: grey level plus a small random tint, never a saturated colour."""
    base = rng.uniform(70, 190)
    tint = rng.uniform(-18, 18, size=3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == 0:  # blotchy noise
        lum = (_smooth_field(rng, size, int(rng.integers(3, 12))) - 0.5) * rng.uniform(30, 80)
    elif kind == 1:  # stripes
        theta = rng.uniform(0, np.pi)
        freq = rng.uniform(4, 20)
        lum = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)))
        lum = lum * rng.uniform(10, 35)
    elif kind == 2:  # gradient
        theta = rng.uniform(0, 2 * np.pi)
        lum = (xx * np.cos(theta) + yy * np.sin(theta)) * rng.uniform(30, 90)
    else:  # checker
        cells = int(rng.integers(3, 10))
        check = ((xx * cells).astype(int) + (yy * cells).astype(int)) % 2
        lum = (check.astype(np.float32) - 0.5) * rng.uniform(10, 40)
    lum = lum + (_smooth_field(rng, size, 16) - 0.5) * 20
    img = base + lum[..., None] + tint[None, None, :].astype(np.float32)
    return img.astype(np.float32)


def _place(rng: np.random.Generator, size: int, radius: float,
           placed: list[tuple[float, float, float]], avoid_overlap: bool) -> tuple[float, float, float]:
    """Centre fully inside the image; retries, then shrinks, to keep objects apart."""
    r = radius
    for attempt in range(60):
        if attempt and attempt % 20 == 0:
            r *= 0.85
        cx = rng.uniform(r, size - r)
        cy = rng.uniform(r, size - r)
        if not avoid_overlap or all(np.hypot(cx - px, cy - py) >= 0.95 * (r + pr)
                                    for px, py, pr in placed):
            return cx, cy, r
    return cx, cy, r


def render_scene(rng: np.random.Generator | int, size: int = 224, n_objects: int | None = None,
                 avoid_overlap: bool = True, background: str | None = None,
                 world: str = "clean", radius_range: tuple[float, float] = (0.18, 0.40)) -> Scene:
    """Render one scene.

    Parameters
    ----------
    rng : numpy Generator or int seed.
    size : image side in pixels.
    n_objects : number of objects (1 to 3 when None).
    avoid_overlap : retry placements so objects do not overlap.
    background : one of :data:`BACKGROUNDS`; None draws it as ``world`` says.
    world : ``clean`` or ``biased`` (see :data:`WORLDS`); used only when ``background`` is None.
    radius_range : object circumradius as a fraction of half the image side.

    Returns
    -------
    Scene with a (size, size, 3) uint8 image and the visible mask of each object.
    """
    g = _rng(rng)
    pairs, background = draw_objects(g, n_objects, background, world)
    names = list(COLORS)
    img = _background(g, size, BACKGROUNDS.index(background))
    owner = np.full((size, size), -1, dtype=np.int16)
    placed: list[tuple[float, float, float]] = []
    labels: list[str] = []
    for k, p in enumerate(pairs):
        color, shape = names[p // len(SHAPES)], SHAPES[p % len(SHAPES)]
        radius = g.uniform(*radius_range) * size / 2
        cx, cy, radius = _place(g, size, radius, placed, avoid_overlap)
        placed.append((cx, cy, radius))
        angle = g.uniform(0, 2 * np.pi) if shape in _ROTATING else 0.0
        # Only the bounding box is evaluated, which keeps large images cheap.
        x0, x1 = max(0, int(cx - radius) - 1), min(size, int(np.ceil(cx + radius)) + 1)
        y0, y1 = max(0, int(cy - radius) - 1), min(size, int(np.ceil(cy + radius)) + 1)
        dy, dx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        m = _shape_mask(shape, dx + 0.5 - cx, dy + 0.5 - cy, radius, angle)
        rgb = np.clip(np.array(COLORS[color], np.float32) + g.uniform(-_JITTER, _JITTER, 3), 0, 255)
        img[y0:y1, x0:x1][m] = rgb
        owner[y0:y1, x0:x1][m] = k  # later objects occlude earlier ones
        labels.append(f"a {color} {shape}")
    img += g.normal(0, _NOISE_STD, size=img.shape).astype(np.float32)
    image = np.clip(img, 0, 255).astype(np.uint8)
    masks, kept = [], []
    for k, label in enumerate(labels):
        m = owner == k
        if m.any():  # a fully occluded object has no visible evidence, so it is not labelled
            masks.append(m)
            kept.append(label)
    return Scene(image=image, masks=masks, labels=kept, background=background)


def scene_from_owner(image: np.ndarray, owner: np.ndarray, labels: list[str],
                     background: str) -> Scene:
    """The `Scene` of a rendered image: object k's mask is where `owner` is k; an object
    hidden entirely (by later objects or occluders) is left out with its label."""
    masks, kept = [], []
    for k, label in enumerate(labels):
        m = owner == k
        if m.any():
            masks.append(m)
            kept.append(label)
    return Scene(image=image, masks=masks, labels=kept, background=background)


def export_one_object(folder: str | os.PathLike, n_scenes: int, render: Callable[..., Scene],
                      seed: int = 0, size: int = 128, world: str = "clean") -> Path:
    """Write ``images/NNNNN.png``, ``masks/NNNNN.png`` (one object per scene, 0/255 grayscale)
    and ``manifest.jsonl`` of `render`'s one-object scenes; returns the manifest path.

    Scene ``i`` is seeded by ``(seed, i)``, so a prefix of a larger export is identical. Each
    manifest line holds ``image``, ``mask``, ``label``, ``text`` and ``background``. The
    held-out renderers' exports (heldout, fourth, fifth) are this with their renderer.
    """
    if world not in WORLDS:
        raise InputError(f"unknown world {world!r}; choose from {', '.join(WORLDS)}")
    root = Path(folder)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n_scenes):
        scene = render(np.random.default_rng((seed, i)), size=size, n_objects=1, world=world)
        img_rel, mask_rel = f"images/{i:05d}.png", f"masks/{i:05d}.png"
        Image.fromarray(scene.image).save(root / img_rel)
        Image.fromarray(scene.masks[0].astype(np.uint8) * 255, mode="L").save(root / mask_rel)
        label = scene.labels[0]
        lines.append(json.dumps({"image": img_rel, "mask": mask_rel, "label": label,
                                 "text": label, "background": scene.background}))
    manifest = root / "manifest.jsonl"
    atomic_write(manifest, "".join(line + "\n" for line in lines))
    return manifest


def export_dataset(folder: str | os.PathLike, n_scenes: int, seed: int = 0, size: int = 224,
                   n_objects: tuple[int, int] = (1, 3), world: str = "clean") -> Path:
    """Write images, masks and a one-line-per-object ``manifest.jsonl``; returns the manifest path.

    Scene ``i`` is seeded by ``(seed, i)`` so a prefix of a larger export is identical. Each
    manifest line records the scene's ``background`` kind (and ``world``), so an audit can
    check a slice against it.
    """
    if world not in WORLDS:
        raise InputError(f"unknown world {world!r}; choose from {', '.join(WORLDS)}")
    root = Path(folder)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    lo, hi = n_objects
    lines = []
    for i in range(n_scenes):
        g = np.random.default_rng((seed, i))
        scene = render_scene(g, size=size, n_objects=int(g.integers(lo, hi + 1)), world=world)
        img_rel = f"images/{i:05d}.png"
        Image.fromarray(scene.image).save(root / img_rel)
        for k, (mask, label) in enumerate(zip(scene.masks, scene.labels)):
            mask_rel = f"masks/{i:05d}_{k}.png"
            Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(root / mask_rel)
            lines.append(json.dumps({"image": img_rel, "text": label, "mask": mask_rel,
                                     "label": label, "background": scene.background,
                                     "world": world}))
    manifest = root / "manifest.jsonl"
    atomic_write(manifest, "".join(line + "\n" for line in lines))
    return manifest


def manifest_records(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a manifest file; one-line errors."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("image"), str):
            raise InputError(f"{path}:{n}: expected an object with an 'image' path")
        records.append((n, rec))
    return records


def load_manifest(folder: str | os.PathLike) -> list[dict]:
    """Read ``manifest.jsonl`` from ``folder`` (or the file itself); paths stay as written."""
    path = Path(folder)
    if path.is_dir():
        path = path / "manifest.jsonl"
    return [rec for _, rec in manifest_records(path)]
