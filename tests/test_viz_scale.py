"""The overlay keeps the photo visible; large images are explained downscaled, maps full size."""

import numpy as np
from PIL import Image

import mmattr
from mmattr.viz import (DIM, HEAT_CMAP, colorize, heat_shown, highlight, important_prefix,
                        outline_width, save_overlay)


def test_highlight_keeps_top_regions_and_dims_the_rest():
    img = np.full((4, 4, 3), 200, np.uint8)
    keep = np.zeros((4, 4), bool)
    keep[:2, :2] = True
    out = highlight(img, keep)
    assert (out[:2, :2] == 200).all()
    assert (out[2:, :] == round(200 * DIM)).all() and (out[:, 2:] == round(200 * DIM)).all()


def test_colorize_matches_matplotlib_and_is_uint8():
    import matplotlib

    a = np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)
    got = colorize(a)
    want = (matplotlib.colormaps[HEAT_CMAP](a)[..., :3] * 255).round()
    assert got.dtype == np.uint8 and np.abs(got.astype(int) - want).max() <= 3
    assert (colorize(np.zeros((2, 2))) == colorize(np.zeros((2, 2)))[0, 0]).all()  # flat map
    # A floor leaves out the map's darkest part: the lowest value gets the floor's colour.
    floor = (np.array(matplotlib.colormaps[HEAT_CMAP](0.2)[:3]) * 255).round()
    assert np.abs(colorize(a, floor=0.2)[0, 0].astype(int) - floor).max() <= 3


def test_heat_map_sequential_not_rainbow():
    """Brightness rises with the value (a rainbow map's does not: jet's middle is brighter
    than its top), so the least important region never looks hot."""
    a = np.linspace(0, 1, 11, dtype=np.float32)[None]
    luma = colorize(a, floor=0.2).astype(float) @ np.array([0.299, 0.587, 0.114])
    assert (np.diff(luma[0]) > 0).all()


def test_important_prefix_known_answers():
    # black image 0.1, then the curve reaches 0.1 + 0.9 · 0.8 = 0.82 at the third region
    assert important_prefix([0.1, 0.3, 0.7, 0.85, 0.9, 0.88]) == 3
    assert important_prefix([0.0, 0.95, 0.96, 0.97]) == 1
    assert important_prefix([0.5, 0.4, 0.3]) == 1  # never rises: the first region alone
    assert important_prefix([0.2, 0.2, 0.2, 1.0]) == 3


def test_heat_shown_rank_prefix_and_positive_gains():
    regions = np.arange(4).repeat(2).reshape(2, 4)  # [[0 0 1 1] [2 2 3 3]]
    order = [2, 0, 3, 1]
    curve = [0.0, 0.5, 0.95, 0.96, 1.0]  # 0.9 of the rise (1.0) after the first two regions
    rank = heat_shown(np.zeros((2, 4)), regions, order, curve, "rank")
    assert (rank == np.isin(regions, [2, 0])).all()
    gains = np.array([0.3, -0.1, 0.5, 0.0])[regions]
    assert (heat_shown(gains, regions, order, curve, "gain") == np.isin(regions, [0, 2])).all()
    # A pixel map (no region order, or curves that are not one value per region) has none.
    assert heat_shown(gains, regions, [], curve, "rank") is None
    assert heat_shown(gains, regions, order, [0.0] * 21, "rank") is None


def test_outlines_scale_with_the_image():
    assert outline_width((224, 224)) == 2
    assert outline_width((3000, 4000)) == 20


def test_overlay_two_panels_photo_visible(tmp_path):
    h, w = 60, 90
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 180  # a red photo
    regions = (np.arange(w)[None, :] // 30).repeat(h, 0).astype(np.int32)  # 3 vertical strips
    attribution = regions.astype(np.float32)
    save_overlay(tmp_path / "o.png", img, attribution, regions, [2, 1], title="a test")
    out = np.asarray(Image.open(tmp_path / "o.png").convert("RGB")).astype(int)
    H, W = out.shape[:2]
    assert W > 1.8 * H  # two panels side by side
    left = out[:, : W // 2]
    # The photo's red at full brightness (top regions) and dimmed (the rest) are both present.
    reds = left[(left[..., 0] > 40) & (left[..., 1] < 30) & (left[..., 2] < 30)][:, 0]
    assert (np.abs(reds - 180) <= 3).sum() > 200
    assert (np.abs(reds - round(180 * DIM)) <= 3).sum() > 100
    # The right panel has a colour bar on the sequential map: its dark and bright ends appear.
    right = out[:, W // 2:]
    assert ((right.sum(-1) < 200) & (right[..., 2] > right[..., 1] + 20)).any()  # dark purple
    assert ((right[..., 0] > 220) & (right[..., 1] > 200) & (right[..., 2] < 180)).any()  # yellow


def test_overlay_colours_only_the_shown_pixels(tmp_path):
    """With `shown`, the heat map's faded tail is the gray photo: no colour there."""
    h, w = 60, 90
    img = np.full((h, w, 3), 120, np.uint8)
    regions = (np.arange(w)[None, :] // 30).repeat(h, 0).astype(np.int32)
    attribution = (3 - regions).astype(np.float32) / 3
    shown = regions == 0
    save_overlay(tmp_path / "o.png", img, attribution, regions, [0], shown=shown)
    out = np.asarray(Image.open(tmp_path / "o.png").convert("RGB")).astype(int)
    right = out[:, out.shape[1] // 2:]
    spread = right.max(-1) - right.min(-1)  # 0 on gray, large on colour
    grayish = (spread <= 3) & (right.mean(-1) > 60) & (right.mean(-1) < 110)  # 0.8 · 120 = 96
    coloured = spread > 60
    # Two thirds of the photo faded, one third coloured (plus the colour bar's own colours).
    assert grayish.sum() > 1.5 * (coloured.sum() - 0.1 * coloured.size)
    assert coloured.any()


def test_large_image_explained_downscaled_map_full_size(hotbox):
    # The hot box is model-input cell (row 1, col 2) of a 4×4 grid; the image is 4× larger.
    rng = np.random.default_rng(0)
    img = (150 + rng.integers(-20, 20, size=(128, 128, 3))).astype(np.uint8)
    e = mmattr.explain(img, text="x", model=hotbox, division="grid", regions=16,
                       search="exact", max_side=32)
    assert e.attribution.shape == e.regions.shape == (128, 128)
    assert e.image.shape == (128, 128, 3) and e.settings["explained_size"] == [32, 32]
    top = e.order[0]
    ys, xs = np.nonzero(e.regions == top)
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (32, 64, 64, 96)
    # Every region keeps one value at full size.
    for r in range(16):
        assert np.unique(e.attribution[e.regions == r]).size == 1
    full = mmattr.explain(img, text="x", model=hotbox, division="grid", regions=16,
                          search="exact", max_side=4096)
    assert full.order[0] == top and "explained_size" not in full.settings


def test_smdl_heat_map_colours_the_important_prefix_only(hotbox, gray_image, tmp_path):
    """The hot box's cell lifts the insertion curve to > 0.95 on its own: the heat map colours
    that one cell (1/16 of the image) and shows the rest as the faded photo."""
    e = mmattr.explain(gray_image, text="x", model=hotbox, division="grid", regions=16,
                       search="exact")
    assert important_prefix(e.insertion_curve) == 1 and e.order[0] == 6
    e.save(tmp_path / "out")
    out = np.asarray(Image.open(tmp_path / "out" / "overlay.png").convert("RGB")).astype(int)
    right = out[:, out.shape[1] // 2:]
    photo = right[(right.min(-1) < 250)]  # the panel's pixels that are not white margin
    coloured = (photo.max(-1) - photo.min(-1)) > 40
    # the cell (1/16 of the photo) plus the colour bar; never half the photo as with jet
    assert 0.02 < coloured.mean() < 0.2
