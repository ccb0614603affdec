"""Toy networks whose decision regions are known by construction (loaded by spec
``torch:tests/representative/toy_models.py:build_diamond`` and by the tests directly).

Diamond: the model input is normalised with mean 0.5 and std 0.25, so a uint8 colour (r, g, ·)
becomes t = 4·(r/255 - 0.5, g/255 - 0.5) ∈ [-2, 2]². ψ (layer ``psi``) is the 2×2 average of
the first two channels, (2, 2, 2); the head takes t = spatial mean of ψ and computes
G_inside = 1 - |t1| - |t2| (with ReLUs: |a| = relu(a) + relu(-a)), G_outside = 0.
The inside class is exactly the diamond |t1| + |t2| < 1, a polytope of 4 facets
s1·t1 + s2·t2 = 1 (s ∈ {±1}²).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmattr.adapters import from_module

CLASSES = ["inside", "outside"]


class Diamond(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.select = nn.Conv2d(3, 2, 1, bias=False)
        self.psi = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.select.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])[:, :, None, None])
            self.fc.weight.copy_(torch.tensor([[-1.0, -1, -1, -1], [0, 0, 0, 0]]))
            self.fc.bias.copy_(torch.tensor([1.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.psi(self.select(x)).mean(dim=(2, 3))
        return self.fc(F.relu(torch.cat([t, -t], dim=1)))


class LinearAfterPsi(nn.Module):
    """ψ then one linear layer on the pooled map: a head linear in ψ."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def build_diamond():
    return from_module(Diamond(), size=16, mean=(0.5,) * 3, std=(0.25,) * 3,
                       class_names=CLASSES, device="cpu")


def build_linear():
    return from_module(LinearAfterPsi(), size=16, mean=(0.5,) * 3, std=(0.25,) * 3,
                       class_names=["a", "b", "c"], device="cpu")




class ResidualAroundPsi(nn.Module):
    """``conv`` sits inside a residual block: the prediction is not a function of its output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.mix = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(x) + x)
        return self.fc(F.relu(self.mix(y)).mean(dim=(2, 3)))


def build_residual():
    return from_module(ResidualAroundPsi(), size=16, class_names=["a", "b"], device="cpu")
