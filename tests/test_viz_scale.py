"""The overlay keeps the photo visible; large images are explained downscaled, maps full size."""

import numpy as np
from PIL import Image

import mmattr
from mmattr.viz import DIM, colorize, highlight, outline_width, save_overlay


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
    want = (matplotlib.colormaps["jet"](a)[..., :3] * 255).round()
    assert got.dtype == np.uint8 and np.abs(got.astype(int) - want).max() <= 3
    assert (colorize(np.zeros((2, 2))) == colorize(np.zeros((2, 2)))[0, 0]).all()  # flat map


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
    # The right panel has a colour bar: jet's deep blue and dark red both appear.
    right = out[:, W // 2:]
    assert ((right[..., 2] > 100) & (right[..., 0] < 30)).any()
    assert ((right[..., 0] > 100) & (right[..., 2] < 30) & (right[..., 1] < 30)).any()


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
