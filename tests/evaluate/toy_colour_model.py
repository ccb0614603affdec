"""A toy colour model registered as ``toycolour`` (no weights, no download), and a CLI entry
with it registered: ``python tests/evaluate/toy_colour_model.py evaluate ...`` runs `mmattr` in a
subprocess the way a user would, for the kill suite."""

from __future__ import annotations

import sys

import torch

from mmattr.adapters import ADAPTERS, register_adapter
from mmattr.adapters._preprocess import Preprocess
from mmattr.adapters.base import Adapter
from mmattr.datasets.shapes import COLORS


class ColourAdapter(Adapter):
    """Embeds an image as its mean saturated colour; a text as its colour word's RGB."""

    def __init__(self) -> None:
        self.spec = "toycolour"
        self.preprocess = Preprocess(shortest_edge=None, resize_hw=(24, 24), crop_hw=None,
                                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        self.device = torch.device("cpu")
        self.default_vocabulary = "shapes"
        self.logit_scale = 10.0

    def encode_images(self, pixels):
        x = pixels * 0.5 + 0.5
        sat = x.max(1).values - x.min(1).values  # saturated (object) pixels weigh most
        colour = (x * sat[:, None]).mean(dim=(2, 3)) / sat.mean(dim=(1, 2)).clamp_min(1e-6)[:, None]
        return torch.cat([colour - 0.5, torch.full_like(colour[:, :1], 0.05)], 1)

    def encode_texts(self, prompts):
        rows = []
        for p in prompts:
            rgb = next((v for k, v in COLORS.items() if k in p), (128, 128, 128))
            rows.append([c / 255 - 0.5 for c in rgb] + [0.05])
        return torch.tensor(rows)


if "toycolour" not in ADAPTERS:
    register_adapter("toycolour", syntax="toycolour", help="test-only colour model")(
        lambda arg, device, dtype="auto": ColourAdapter())


if __name__ == "__main__":
    from mmattr.cli.main import app

    app(sys.argv[1:], prog_name="mmattr")
