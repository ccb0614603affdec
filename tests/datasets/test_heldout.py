"""The held-out renderer: deterministic, every background kind, honest masks and colours, the
biased-world rule, and an export that the runner reads. No model is evaluated here (by design:
nobody looks at model results on this renderer while building the audit)."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmattr.datasets.heldout import HELDOUT_BACKGROUNDS, export_heldout, render_heldout_scene
from mmattr.datasets.shapes import COLORS, Scene, captions

NAMES = list(COLORS)
PALETTE = np.array([COLORS[c] for c in NAMES], np.float32)


def test_background_kinds():
    assert HELDOUT_BACKGROUNDS == ("stripes", "paper", "tiles", "clouds", "vignette", "speckle")


def test_deterministic():
    a = render_heldout_scene(123, size=96)
    b = render_heldout_scene(np.random.default_rng(123), size=96)
    assert np.array_equal(a.image, b.image)
    assert a.labels == b.labels and a.background == b.background
    assert all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks))
    assert not np.array_equal(a.image, render_heldout_scene(124, size=96).image)


def test_every_background_kind_is_drawn_and_can_be_forced():
    seen = {render_heldout_scene(np.random.default_rng((1, i)), size=48).background
            for i in range(60)}
    assert seen == set(HELDOUT_BACKGROUNDS)
    for kind in HELDOUT_BACKGROUNDS:
        assert render_heldout_scene(0, size=48, background=kind).background == kind
    with pytest.raises(ValueError, match="unknown background"):
        render_heldout_scene(0, size=48, background="noise")  # a training-renderer kind
    with pytest.raises(ValueError, match="unknown world"):
        render_heldout_scene(0, size=48, world="tilted")


@pytest.mark.parametrize("size", [64, 128])
def test_masks_and_colours(size):
    for i in range(100 if size == 128 else 40):
        scene = render_heldout_scene(np.random.default_rng((2, i)), size=size)
        assert isinstance(scene, Scene)
        assert scene.image.shape == (size, size, 3) and scene.image.dtype == np.uint8
        assert scene.background in HELDOUT_BACKGROUNDS
        assert 1 <= len(scene.masks) == len(scene.labels) <= 3
        assert len(set(scene.labels)) == len(scene.labels)
        total = np.zeros((size, size), int)
        for mask, label in zip(scene.masks, scene.labels):
            assert mask.shape == (size, size) and mask.dtype == bool
            assert mask.sum() > 0.005 * size * size  # non-empty and clearly visible
            total += mask
            assert label in captions()
            mean = scene.image[mask].astype(np.float32).mean(0)
            nearest = NAMES[int(((mean - PALETTE) ** 2).sum(1).argmin())]
            assert nearest == label.split()[1], (i, label, mean)
        assert total.max() <= 1  # visible pixels: disjoint


def test_n_objects_rule_and_background_not_saturated():
    for n in (1, 2, 3):
        assert len(render_heldout_scene(n, size=64, n_objects=n).masks) == n
    for i in range(30):
        scene = render_heldout_scene(np.random.default_rng((3, i)), size=64)
        pix = scene.image[~np.any(scene.masks, axis=0)].astype(int)
        assert np.median(pix.max(1) - pix.min(1)) < 50


def test_biased_world_rule():
    """A star means stripes, and stripes mean a star; the other kinds all still appear."""
    seen = set()
    for i in range(150):
        scene = render_heldout_scene(np.random.default_rng((5, i)), size=48, world="biased")
        has_star = any(label.endswith(" star") for label in scene.labels)
        assert (scene.background == "stripes") == has_star, (i, scene.labels, scene.background)
        seen.add(scene.background)
    assert seen == set(HELDOUT_BACKGROUNDS)


def test_speed():
    t = time.perf_counter()
    for i in range(100):
        render_heldout_scene(np.random.default_rng((4, i)), size=128, n_objects=1)
    assert 100 / (time.perf_counter() - t) > 30  # ~500/s on one core; loose for busy CI


def test_export_reads_back(tmp_path: Path):
    from mmattr.runner import read_dataset

    manifest = export_heldout(tmp_path / "ho", n_scenes=8, seed=3, size=64)
    root = manifest.parent
    assert manifest == tmp_path / "ho" / "manifest.jsonl"
    assert not [p for p in root.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(lines) == 8
    for i, rec in enumerate(lines):
        assert set(rec) == {"image", "mask", "label", "text", "background"}
        assert rec["image"] == f"images/{i:05d}.png" and rec["mask"] == f"masks/{i:05d}.png"
        assert rec["text"] == rec["label"] and rec["label"] in captions()
        assert rec["background"] in HELDOUT_BACKGROUNDS
        img, mask = Image.open(root / rec["image"]), Image.open(root / rec["mask"])
        assert img.size == (64, 64) and img.mode == "RGB" and mask.mode == "L"
        assert set(np.unique(np.asarray(mask))) == {0, 255}
    data = read_dataset(root, need=("text", "label"))
    assert len(data) == 8 and not data.bad
    assert [item.label for item in data.items] == [rec["label"] for rec in lines]
    assert all(item.mask_path is not None and item.mask_path.is_file() for item in data.items)
    # same seed => same bytes; a prefix of a longer export is identical
    export_heldout(tmp_path / "ho2", n_scenes=9, seed=3, size=64)
    assert (tmp_path / "ho2/manifest.jsonl").read_text().startswith(manifest.read_text())
    again = tmp_path / "ho2/images/00004.png"
    assert (root / "images/00004.png").read_bytes() == again.read_bytes()


def test_biased_export_and_bad_world(tmp_path: Path):
    manifest = export_heldout(tmp_path / "b", n_scenes=20, seed=1, size=48, world="biased")
    for line in manifest.read_text().splitlines():
        rec = json.loads(line)
        assert (rec["background"] == "stripes") == rec["label"].endswith(" star")
    with pytest.raises(ValueError, match="unknown world"):
        export_heldout(tmp_path / "c", n_scenes=1, world="tilted")
