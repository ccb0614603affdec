"""The fifth renderer and caption styles: the renderer is deterministic, draws every background
kind, has honest masks and colours, the biased-world rule and an export that the runner reads;
the default caption style is byte-for-byte what it was before styles existed, and ``mixed``
keeps the keywords. No model and no explanation method is run here (by design: the fifth
renderer is a blind held-out check, and nobody looks at explanation results on it)."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmattr.datasets.two_objects import (RENDERERS, STYLES, caption_lines, export_captions,
                                         two_object_caption)
from mmattr.datasets.fifth import FIFTH_BACKGROUNDS, export_fifth, render_fifth_scene
from mmattr.datasets.shapes import COLORS, SHAPES, Scene, captions
from mmattr.errors import InputError


NAMES = list(COLORS)
PALETTE = np.array([COLORS[c] for c in NAMES], np.float32)


def test_background_kinds():
    assert FIFTH_BACKGROUNDS == ("stripes", "dither", "skyline", "blocks", "weave", "bokeh")


def test_deterministic():
    a = render_fifth_scene(123, size=96)
    b = render_fifth_scene(np.random.default_rng(123), size=96)
    assert np.array_equal(a.image, b.image)
    assert a.labels == b.labels and a.background == b.background
    assert all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks))
    assert not np.array_equal(a.image, render_fifth_scene(124, size=96).image)


def test_every_background_kind_is_drawn_and_can_be_forced():
    seen = {render_fifth_scene(np.random.default_rng((1, i)), size=48).background
            for i in range(60)}
    assert seen == set(FIFTH_BACKGROUNDS)
    for kind in FIFTH_BACKGROUNDS:
        for size in (48, 224):
            scene = render_fifth_scene(0, size=size, background=kind)
            assert scene.background == kind and scene.image.shape == (size, size, 3)
    for other in ("noise", "paper", "marble", "wood"):  # the other renderers' kinds
        with pytest.raises(ValueError, match="unknown background"):
            render_fifth_scene(0, size=48, background=other)
    with pytest.raises(ValueError, match="unknown world"):
        render_fifth_scene(0, size=48, world="tilted")
    with pytest.raises(ValueError, match="n_objects"):
        render_fifth_scene(0, size=48, n_objects=0)


@pytest.mark.parametrize("size", [64, 128, 224])
def test_masks_and_colours(size):
    for i in range({64: 40, 128: 100, 224: 20}[size]):
        scene = render_fifth_scene(np.random.default_rng((2, i)), size=size)
        assert isinstance(scene, Scene)
        assert scene.image.shape == (size, size, 3) and scene.image.dtype == np.uint8
        assert scene.background in FIFTH_BACKGROUNDS
        assert 1 <= len(scene.masks) == len(scene.labels) <= 3
        assert len(set(scene.labels)) == len(scene.labels)
        total = np.zeros((size, size), int)
        for mask, label in zip(scene.masks, scene.labels):
            assert mask.shape == (size, size) and mask.dtype == bool
            assert mask.sum() > 0.005 * size * size  # non-empty and clearly visible
            total += mask
            assert label in captions()
            pix = scene.image[mask].astype(np.float32)
            colour = label.split()[1]
            for stat in (np.median(pix, 0), pix.mean(0)):
                nearest = NAMES[int(((stat - PALETTE) ** 2).sum(1).argmin())]
                assert nearest == colour, (i, label, stat)
            # The median fill is the named colour within jitter and gain (about ±20).
            assert np.abs(np.median(pix, 0) - np.array(COLORS[colour])).max() <= 22, (i, label)
        assert total.max() <= 1  # visible pixels: disjoint


def test_one_object_scenes_at_128():
    shapes_seen = set()
    for i in range(60):
        scene = render_fifth_scene(np.random.default_rng((7, i)), size=128, n_objects=1)
        assert len(scene.masks) == len(scene.labels) == 1
        assert scene.masks[0].sum() > 0.01 * 128 * 128  # clearly visible
        shapes_seen.add(scene.labels[0].split()[2])
    assert shapes_seen == set(SHAPES)


def test_n_objects_rule_and_background_not_saturated():
    for n in (1, 2, 3):
        assert len(render_fifth_scene(n, size=64, n_objects=n).masks) == n
    for i in range(40):
        scene = render_fifth_scene(np.random.default_rng((3, i)), size=64)
        pix = scene.image[~np.any(scene.masks, axis=0)].astype(int)
        assert np.median(pix.max(1) - pix.min(1)) < 45, scene.background


def test_pixel_art_cells():
    """Masks are unions of square cells of a whole number of pixels, more than one at 128 px."""
    for i in range(20):
        scene = render_fifth_scene(np.random.default_rng((8, i)), size=128)
        assert any(all(np.array_equal(m, np.repeat(np.repeat(m[::f, ::f], f, 0), f, 1)[:128, :128])
                       for m in scene.masks) for f in (2, 3, 4)), i


def test_biased_world_rule():
    """A star means stripes, and stripes mean a star; the other kinds all still appear."""
    seen = set()
    for i in range(150):
        scene = render_fifth_scene(np.random.default_rng((5, i)), size=48, world="biased")
        has_star = any(label.endswith(" star") for label in scene.labels)
        assert (scene.background == "stripes") == has_star, (i, scene.labels, scene.background)
        seen.add(scene.background)
    assert seen == set(FIFTH_BACKGROUNDS)


def test_speed():
    t = time.perf_counter()
    for i in range(100):
        render_fifth_scene(np.random.default_rng((4, i)), size=128)
    assert 100 / (time.perf_counter() - t) > 30  # several hundred a second on one core


def test_export_reads_back(tmp_path: Path):
    from mmattr.runner import read_dataset

    manifest = export_fifth(tmp_path / "f5", n_scenes=8, seed=3, size=64)
    root = manifest.parent
    assert manifest == tmp_path / "f5" / "manifest.jsonl"
    assert not [p for p in root.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(lines) == 8
    for i, rec in enumerate(lines):
        assert set(rec) == {"image", "mask", "label", "text", "background"}
        assert rec["image"] == f"images/{i:05d}.png" and rec["mask"] == f"masks/{i:05d}.png"
        assert rec["text"] == rec["label"] and rec["label"] in captions()
        assert rec["background"] in FIFTH_BACKGROUNDS
        img, mask = Image.open(root / rec["image"]), Image.open(root / rec["mask"])
        assert img.size == (64, 64) and img.mode == "RGB" and mask.mode == "L"
        assert set(np.unique(np.asarray(mask))) == {0, 255}
        scene = render_fifth_scene(np.random.default_rng((3, i)), size=64, n_objects=1)
        assert np.array_equal(np.asarray(img), scene.image)
        assert np.array_equal(np.asarray(mask) == 255, scene.masks[0])
    data = read_dataset(root, need=("label",))
    assert len(data) == 8 and not data.bad
    assert [item.label for item in data.items] == [rec["label"] for rec in lines]
    # same seed => same bytes; a prefix of a longer export is identical
    export_fifth(tmp_path / "f5b", n_scenes=9, seed=3, size=64)
    assert (tmp_path / "f5b/manifest.jsonl").read_text().startswith(manifest.read_text())
    assert (root / "images/00004.png").read_bytes() == \
        (tmp_path / "f5b/images/00004.png").read_bytes()
    with pytest.raises(ValueError, match="unknown world"):
        export_fifth(tmp_path / "c", n_scenes=1, world="tilted")


# --- captions ------------------------------------------------------------------------------------

def test_fifth_is_a_caption_renderer():
    assert "fifth" in RENDERERS and STYLES == ("and", "mixed")
    assert set(RENDERERS) >= {"heldout", "fourth", "altshapes", "shapes"}
    lines = caption_lines(3, seed=7, renderer="fifth", size=64)
    assert [f["renderer"] for _, f in lines] == ["fifth"] * 3
    assert all(f["background"] in FIFTH_BACKGROUNDS for _, f in lines)


def test_default_style_unchanged():
    """Literal outputs computed before caption styles existed."""
    want = ["a red circle and a orange star", "a yellow cross and a red circle",
            "a red circle and a orange triangle", "a red circle and a orange square"]
    for s, text in enumerate(want):
        assert two_object_caption("a red circle", np.random.default_rng(s)) == \
            (text, ["red", "circle"])
        assert two_object_caption("a red circle", np.random.default_rng(s), style="and") == \
            (text, ["red", "circle"])
    got = [(f["text"], f["keywords"], f["label"], f["background"])
           for _, f in caption_lines(4, seed=7, renderer="heldout", size=64)]
    assert got == [
        ("a orange star and a yellow ring", ["orange", "star"], "a orange star", "clouds"),
        ("a red star and a orange square", ["orange", "square"], "a orange square", "vignette"),
        ("a green star and a blue triangle", ["green", "star"], "a green star", "paper"),
        ("a purple triangle and a yellow cross", ["purple", "triangle"], "a purple triangle",
         "speckle")]
    sums = [int(img.sum()) for img, _ in caption_lines(4, seed=7, renderer="shapes", size=64)]
    assert sums == [2135736, 914344, 1548346, 2098215]


def test_mixed_style_keeps_keywords():
    texts = set()
    for i in range(200):
        present = f"a {NAMES[i % 6]} {SHAPES[(i // 6) % 6]}"
        base, kw = two_object_caption(present, np.random.default_rng((9, i)))
        text, kw_mixed = two_object_caption(present, np.random.default_rng((9, i)), "mixed")
        assert kw_mixed == kw == present.split()[1:]
        words = text.split()
        for k in kw:  # each keyword once, as a whole word; no filler word is a colour or shape
            assert words.count(k) == 1, text
        assert sum(w in COLORS for w in words) == 2 and sum(w in SHAPES for w in words) == 2
        # same objects in the same order as the "and" caption: only the filler differs
        objects = [" ".join(words[j - 1:j + 2]) for j, w in enumerate(words) if w in COLORS]
        assert " and ".join(objects) == base and present in objects
        texts.add(text.replace(objects[0], "X").replace(objects[1], "Y"))
    assert len(texts) >= 6  # several phrasings in use
    with pytest.raises(InputError, match="caption style"):
        two_object_caption("a red circle", np.random.default_rng(0), style="fancy")
    with pytest.raises(InputError, match="caption style"):
        caption_lines(1, style="fancy")


def test_export_captions_styles(tmp_path: Path):
    default = export_captions(tmp_path / "a", 3, seed=2, renderers=("fifth", "heldout"))
    explicit = export_captions(tmp_path / "b", 3, seed=2, renderers=("fifth", "heldout"),
                               style="and")
    assert default.read_text() == explicit.read_text()
    mixed = export_captions(tmp_path / "c", 3, seed=2, renderers=("fifth", "heldout"),
                            style="mixed")
    a = [json.loads(x) for x in default.read_text().splitlines()]
    m = [json.loads(x) for x in mixed.read_text().splitlines()]
    assert len(a) == len(m) == 6
    assert [r["image"] for r in a][:3] == [f"images/fifth-{i:05d}.png" for i in range(3)]
    for ra, rm in zip(a, m):
        assert {k: v for k, v in ra.items() if k != "text"} == \
            {k: v for k, v in rm.items() if k != "text"}
        assert all(k in rm["text"].split() for k in rm["keywords"])
        assert (tmp_path / "c" / rm["image"]).is_file()
