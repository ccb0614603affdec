"""Tensor preprocessing agrees with the transformers image processor it was read from."""

import numpy as np
import pytest
import torch
from PIL import Image

from mmattr.adapters._preprocess import Preprocess


@pytest.mark.parametrize("hw", [(224, 224), (180, 300), (301, 97)])
def test_matches_clip_image_processor(hw):
    from transformers import CLIPImageProcessor

    proc = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    rng = np.random.default_rng(0)
    # A smooth image: resampling kernels differ slightly between PIL and torch on sharp edges.
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    image = np.stack([127 + 100 * np.sin(xx / 17), 127 + 100 * np.cos(yy / 23),
                      127 + 50 * np.sin((xx + yy) / 31)], -1).astype(np.uint8)
    image = np.clip(image + rng.integers(-3, 4, image.shape), 0, 255).astype(np.uint8)
    ref = proc(images=Image.fromarray(image), return_tensors="pt")["pixel_values"]
    ours = Preprocess.from_config(proc.to_dict())(torch.from_numpy(image)[None])
    assert ours.shape == ref.shape == (1, 3, 64, 64)
    assert (ours - ref).abs().mean().item() < 0.02


def test_geometry_is_linear():
    pre = Preprocess(shortest_edge=33, resize_hw=None, crop_hw=(30, 30), mean=(0, 0, 0),
                     std=(1, 1, 1))
    a, b = torch.rand(1, 3, 70, 90), torch.rand(1, 3, 70, 90)
    torch.testing.assert_close(pre.geometry(a + b), pre.geometry(a) + pre.geometry(b))


def test_fixed_size_config_siglip_style():
    pre = Preprocess.from_config({"do_resize": True, "size": {"height": 48, "width": 40},
                                  "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "resample": 2})
    out = pre(torch.zeros(2, 100, 120, 3, dtype=torch.uint8))
    assert out.shape == (2, 3, 48, 40)
    assert torch.allclose(out, torch.full_like(out, -1.0))
