"""The region stack composes exactly what resizing each masked image would give."""

import numpy as np
import torch

from mmattr.adapters._preprocess import Preprocess
from mmattr.division import make_divider
from mmattr.regions import RegionStack


class _Identity:
    """An adapter stand-in whose embedding is the flattened model input."""

    def __init__(self, pre: Preprocess) -> None:
        self.preprocess = pre
        self.device = torch.device("cpu")

    def encode_images(self, pixels):
        return pixels.flatten(1)


def test_compose_equals_resizing_each_masked_image():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(40, 52, 3), dtype=np.uint8)
    labels = make_divider("grid", 6).divide(image)
    pre = Preprocess(shortest_edge=20, resize_hw=None, crop_hw=(16, 16),
                     mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25))
    stack = RegionStack(image, labels, _Identity(pre), region_chunk=4)
    subsets = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]],
                           dtype=torch.float32)
    inside, outside = stack.compose(subsets)
    for row, s in enumerate(subsets):
        keep = np.isin(labels, np.flatnonzero(s.numpy()))
        masked_in = torch.from_numpy(image * keep[..., None])[None]
        masked_out = torch.from_numpy(image * ~keep[..., None])[None]
        torch.testing.assert_close(inside[row:row + 1], pre(masked_in), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(outside[row:row + 1], pre(masked_out), atol=1e-4, rtol=1e-4)


def test_area_and_pass_count():
    image = np.zeros((30, 30, 3), np.uint8)
    labels = make_divider("grid", 9).divide(image)
    pre = Preprocess(shortest_edge=None, resize_hw=(30, 30), crop_hw=None,
                     mean=(0, 0, 0), std=(1, 1, 1))
    stack = RegionStack(image, labels, _Identity(pre), batch_size=4)
    assert stack.n == 9
    np.testing.assert_allclose(stack.area.numpy(), np.full(9, 1 / 9), atol=1e-6)
    stack.embed(torch.eye(9))
    assert stack.forward_passes == 18  # masked-in and masked-out of each subset
    stack.embed_regions()
    assert stack.forward_passes == 27
