"""Tiny random-weight torch and ImageBind-style models, loaded by the tests through specs such as
``torch:tests/adapters/tiny_models.py:build_classifier`` (user code, as users would write it)."""

from __future__ import annotations

import wave

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmattr.adapters import from_module

CLASSES = ["red circle", "blue square", "green triangle"]


class SmallCNN(nn.Module):
    """conv → pool → linear head: a classifier of the usual torchvision shape."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(12, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class SmallEncoder(nn.Module):
    def __init__(self, dim: int = 10) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, dim, 5, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


def build_classifier():
    """An Adapter built with the Python-API hook, non-square input."""
    return from_module(SmallCNN(), size=(28, 36), class_names=CLASSES, device="cpu")


def build_bare_module():
    """A bare module: taken as a classifier with ImageNet preprocessing."""
    return SmallCNN()


def build_encoder():
    """An image encoder with a (hash-based) text tower in the same space."""
    def texts(prompts: list[str]) -> torch.Tensor:
        gen = [torch.Generator().manual_seed(sum(map(ord, p))) for p in prompts]
        return torch.stack([torch.randn(10, generator=g) for g in gen])

    return from_module(SmallEncoder(), kind="encoder", size=32, encode_texts=texts, device="cpu")


# -- an ImageBind-style model: the published call, tiny random towers -------------------------
VOCAB = {c: i + 1 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz .,")}


class TinyImageBind(nn.Module):
    """``model({modality: batch}) -> {modality: (B, D)}`` like imagebind_model.ImageBindModel:
    vision (B, 3, H, W), text (B, L) token ids, audio (B, 1, mel, frames); unit-norm outputs."""

    def __init__(self, dim: int = 12) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.modality_trunks = nn.ModuleDict({
            "vision": nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), nn.GELU(), nn.Flatten(),
                                    nn.LazyLinear(dim)),
            "text": nn.EmbeddingBag(len(VOCAB) + 1, dim, mode="mean"),
            "audio": nn.Sequential(nn.Conv2d(1, 8, 4, stride=4), nn.GELU(),
                                   nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, dim)),
        })
        self.modality_trunks["vision"](torch.zeros(1, 3, 32, 32))  # materialise the lazy layer

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: F.normalize(self.modality_trunks[m](x), dim=-1) for m, x in inputs.items()}


def tokenize(prompts: list[str]) -> torch.Tensor:
    ids = [[VOCAB.get(c, 0) for c in p.lower()][:24] for p in prompts]
    return torch.tensor([row + [0] * (24 - len(row)) for row in ids])


def load_audio(path: str) -> torch.Tensor:
    """A .wav file → a (1, 1, 16, 32) log-spectrogram, like ImageBind's mel clips."""
    with wave.open(path, "rb") as f:
        x = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    frames = torch.from_numpy(x[: 31 * 32 + 32].copy()).unfold(0, 32, 32)[:32]
    spec = torch.fft.rfft(frames, dim=-1).abs()[:, :16].T
    return torch.log1p(spec)[None, None]


def build_imagebind():
    return TinyImageBind(), {"tokenize": tokenize, "load_audio": load_audio, "size": 32}
