"""The harness API: `mmattr.explain_batch` on arrays, and Quantus running two of its metrics
(a faithfulness one and a localisation one) on mmattr's SMDL maps and a baseline's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmattr
from mmattr.preprocess import Preprocess


class _BoxOrNot(mmattr.Adapter):
    """Sees one box: embedding [mean brightness in the box, 0.1]; class "box" = [1, 0],
    class "other" = [0, 1]. The box is the right region, by construction."""

    def __init__(self, box=(8, 16, 16, 24), size: int = 32) -> None:
        self.box, self.spec, self.device = box, "toy:box-or-not", torch.device("cpu")
        self.templates = self.text_templates = ("{}",)
        self.preprocess = Preprocess(None, (size, size), None, (0, 0, 0), (1, 1, 1))

    def encode_images(self, pixels):
        y0, y1, x0, x1 = self.box
        hot = pixels[:, :, y0:y1, x0:x1].mean(dim=(1, 2, 3))
        return torch.stack([hot, torch.full_like(hot, 0.1)], dim=1)

    def encode_texts(self, prompts):
        return torch.tensor([[1.0, 0.0] if p == "box" else [0.0, 1.0] for p in prompts])


def _batch(n: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (150 + rng.integers(-20, 20, size=(n, 32, 32, 3))).astype(np.uint8)


def _box_mask() -> np.ndarray:
    m = np.zeros((32, 32), bool)
    m[8:16, 16:24] = True
    return m


def test_explain_batch_returns_arrays_in_any_layout():
    toy = _BoxOrNot()
    x = _batch()
    maps = mmattr.explain_batch(x, "box", model=toy, division="grid", regions=16)
    assert maps.shape == (2, 32, 32) and maps.dtype == np.float32
    for m in maps:  # the box's cell is the top region
        assert m[_box_mask()].min() == m.max()
    chw = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0
    again = mmattr.explain_batch(chw, ["box", "box"], model=toy, division="grid", regions=16)
    np.testing.assert_allclose(again, maps)
    with pytest.raises(mmattr.InputError, match="targets"):
        mmattr.explain_batch(x, ["box"], model=toy)


@pytest.mark.parametrize("method", ["smdl", "saliency"])
def test_quantus_pointing_game_and_pixel_flipping(method):
    quantus = pytest.importorskip("quantus")
    from mmattr.integrations.quantus import ZeroShotClassifier, explain_func

    model = ZeroShotClassifier(_BoxOrNot(), ["box", "other"])
    x = (_batch().astype(np.float32) / 255.0).transpose(0, 3, 1, 2)
    y = np.zeros(2, int)
    s = np.repeat(_box_mask()[None, None], 2, axis=0).astype(np.float32)
    kwargs = {"method": method, "division": "grid", "regions": 16}

    hits = quantus.PointingGame(disable_warnings=True)(
        model=model, x_batch=x, y_batch=y, a_batch=None, s_batch=s, device="cpu",
        explain_func=explain_func, explain_func_kwargs=kwargs)
    assert list(hits) == [True, True]  # the map's peak is inside the box

    # a fixed 0.0 (black for pixels in [0, 1]); the "black" preset did not darken the box here
    flip = quantus.PixelFlipping(features_in_step=64, perturb_baseline=0.0,
                                 disable_warnings=True)
    ours = np.asarray(flip(model=model, x_batch=x, y_batch=y, a_batch=None, device="cpu",
                           explain_func=explain_func, explain_func_kwargs=kwargs))
    maps = explain_func(model, x, y, **kwargs)
    worst = np.asarray(flip(model=model, x_batch=x, y_batch=y, a_batch=maps.max() - maps,
                            device="cpu"))  # the reversed ranking
    # flipping the box first drops the "box" score at once; the reversed map drops it last
    assert ours.shape == worst.shape and ours.shape[0] == 2  # 3·32·32 / 64 = 48 steps
    assert np.all(ours.mean(1) < worst.mean(1))
