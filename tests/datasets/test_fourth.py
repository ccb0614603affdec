"""The fourth renderer: deterministic, every background kind, honest masks and colours, the
biased-world rule, and an export that the runner reads. No model is evaluated here (by design:
it is the final held-out validation, and nobody looks at model results on it while building)."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmattr.datasets.fourth import FOURTH_BACKGROUNDS, export_fourth, render_fourth_scene
from mmattr.datasets.shapes import COLORS, Scene, captions

NAMES = list(COLORS)
PALETTE = np.array([COLORS[c] for c in NAMES], np.float32)


def test_background_kinds():
    assert FOURTH_BACKGROUNDS == ("stripes", "marble", "mosaic", "sand", "dusk", "cardboard")


def test_deterministic():
    a = render_fourth_scene(123, size=96)
    b = render_fourth_scene(np.random.default_rng(123), size=96)
    assert np.array_equal(a.image, b.image)
    assert a.labels == b.labels and a.background == b.background
    assert all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks))
    assert not np.array_equal(a.image, render_fourth_scene(124, size=96).image)


def test_every_background_kind_is_drawn_and_can_be_forced():
    seen = {render_fourth_scene(np.random.default_rng((1, i)), size=48).background
            for i in range(60)}
    assert seen == set(FOURTH_BACKGROUNDS)
    for kind in FOURTH_BACKGROUNDS:
        for size in (48, 224):
            scene = render_fourth_scene(0, size=size, background=kind)
            assert scene.background == kind and scene.image.shape == (size, size, 3)
    with pytest.raises(ValueError, match="unknown background"):
        render_fourth_scene(0, size=48, background="noise")  # a training-renderer kind
    with pytest.raises(ValueError, match="unknown background"):
        render_fourth_scene(0, size=48, background="paper")  # a held-out-renderer kind
    with pytest.raises(ValueError, match="unknown world"):
        render_fourth_scene(0, size=48, world="tilted")
    with pytest.raises(ValueError, match="n_objects"):
        render_fourth_scene(0, size=48, n_objects=0)


@pytest.mark.parametrize("size", [64, 128])
def test_masks_and_colours(size):
    for i in range(100 if size == 128 else 40):
        scene = render_fourth_scene(np.random.default_rng((2, i)), size=size)
        assert isinstance(scene, Scene)
        assert scene.image.shape == (size, size, 3) and scene.image.dtype == np.uint8
        assert scene.background in FOURTH_BACKGROUNDS
        assert 1 <= len(scene.masks) == len(scene.labels) <= 3
        assert len(set(scene.labels)) == len(scene.labels)
        total = np.zeros((size, size), int)
        for mask, label in zip(scene.masks, scene.labels):
            assert mask.shape == (size, size) and mask.dtype == bool  # within the image
            assert mask.sum() > 0.005 * size * size  # non-empty and clearly visible
            total += mask
            assert label in captions()
            pix = scene.image[mask].astype(np.float32)
            mean = pix.mean(0)
            nearest = NAMES[int(((mean - PALETTE) ** 2).sum(1).argmin())]
            assert nearest == label.split()[1], (i, label, mean)
            # The fill is the named colour within about ±20 per channel.
            target = np.array(COLORS[label.split()[1]], np.float32)
            assert np.abs(np.median(pix, 0) - target).max() <= 24, (i, label)
        assert total.max() <= 1  # visible pixels: disjoint


def test_n_objects_rule_and_background_not_saturated():
    for n in (1, 2, 3):
        assert len(render_fourth_scene(n, size=64, n_objects=n).masks) == n
    for i in range(40):
        scene = render_fourth_scene(np.random.default_rng((3, i)), size=64)
        pix = scene.image[~np.any(scene.masks, axis=0)].astype(int)
        assert np.median(pix.max(1) - pix.min(1)) < 45, scene.background


def test_biased_world_rule():
    """A star means stripes, and stripes mean a star; the other kinds all still appear."""
    seen = set()
    for i in range(150):
        scene = render_fourth_scene(np.random.default_rng((5, i)), size=48, world="biased")
        has_star = any(label.endswith(" star") for label in scene.labels)
        assert (scene.background == "stripes") == has_star, (i, scene.labels, scene.background)
        seen.add(scene.background)
    assert seen == set(FOURTH_BACKGROUNDS)
    # clean world: stripes are not tied to stars
    clean = [render_fourth_scene(np.random.default_rng((6, i)), size=32, n_objects=1)
             for i in range(120)]
    assert any(s.background == "stripes" and not s.labels[0].endswith(" star") for s in clean)
    assert any(s.background != "stripes" and s.labels[0].endswith(" star") for s in clean)


def test_speed():
    t = time.perf_counter()
    for i in range(100):
        render_fourth_scene(np.random.default_rng((4, i)), size=128)
    assert 100 / (time.perf_counter() - t) > 30  # ~250/s on one core; loose for busy CI


def test_export_reads_back(tmp_path: Path):
    from mmattr.runner import read_dataset

    manifest = export_fourth(tmp_path / "f4", n_scenes=8, seed=3, size=64)
    root = manifest.parent
    assert manifest == tmp_path / "f4" / "manifest.jsonl"
    assert not [p for p in root.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(lines) == 8
    for i, rec in enumerate(lines):
        assert set(rec) == {"image", "mask", "label", "text", "background"}
        assert rec["image"] == f"images/{i:05d}.png" and rec["mask"] == f"masks/{i:05d}.png"
        assert rec["text"] == rec["label"] and rec["label"] in captions()
        assert rec["background"] in FOURTH_BACKGROUNDS
        img, mask = Image.open(root / rec["image"]), Image.open(root / rec["mask"])
        assert img.size == (64, 64) and img.mode == "RGB" and mask.mode == "L"
        assert set(np.unique(np.asarray(mask))) == {0, 255}
        scene = render_fourth_scene(np.random.default_rng((3, i)), size=64, n_objects=1)
        assert np.array_equal(np.asarray(img), scene.image)
        assert np.array_equal(np.asarray(mask) == 255, scene.masks[0])
    data = read_dataset(root, need=("label",))
    assert len(data) == 8 and not data.bad
    assert [item.label for item in data.items] == [rec["label"] for rec in lines]
    assert all(item.mask_path is not None and item.mask_path.is_file() for item in data.items)
    # same seed => same bytes; a prefix of a longer export is identical
    export_fourth(tmp_path / "f4b", n_scenes=9, seed=3, size=64)
    assert (tmp_path / "f4b/manifest.jsonl").read_text().startswith(manifest.read_text())
    again = tmp_path / "f4b/images/00004.png"
    assert (root / "images/00004.png").read_bytes() == again.read_bytes()


def test_biased_export_and_bad_world(tmp_path: Path):
    manifest = export_fourth(tmp_path / "b", n_scenes=20, seed=1, size=48, world="biased")
    for line in manifest.read_text().splitlines():
        rec = json.loads(line)
        assert (rec["background"] == "stripes") == rec["label"].endswith(" star")
    with pytest.raises(ValueError, match="unknown world"):
        export_fourth(tmp_path / "c", n_scenes=1, world="tilted")
