"""Toy models with known answers for the text and audio sides (no weights, no download).

`BagOfWordsAdapter`: a text tower that sums one embedding row per token. The row of "zebra" is
the image's direction; every other word points into filler directions orthogonal to it, the
special tokens share a small bias direction and the pad row is zero. So "zebra" alone decides
the match, a filler word only dilutes it, and every removal (drop the word, pad it, hide it
from the attention mask) gives the very same embedding: the orders and curves must agree.

`build_tone_imagebind` (an ImageBind-style factory, ``imagebind:<this file>:build_tone_imagebind``):
the audio tower embeds a clip by its energy in frequency bands; the band of TONE_HZ is the
image's and the text "a beep"'s direction, so only the segment that holds the tone matches.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmattr.adapters.base import Adapter, TokenizedText
from mmattr.adapters.imagebind import ImageBindAdapter
from mmattr.preprocess import Preprocess

# -- text: a bag of words -------------------------------------------------------------------

DIM = 8
PAD, BOS, EOS, ZEBRA = 0, 1, 2, 3
VOCAB_SIZE = 64
#: a word is split into tokens of at most 4 letters ("grazing" → "graz", "ing"); "zebra" is one
_TOKEN = re.compile(r"zebra|[^\W\d_]{1,4}|\d+|[^\w\s]")


def token_id(piece: str) -> int:
    piece = piece.lower()
    if piece == "zebra":
        return ZEBRA
    return 4 + zlib.crc32(piece.encode()) % (VOCAB_SIZE - 4)


def embedding_table() -> torch.Tensor:
    """Row ZEBRA: e0 (twice a filler's length); rows of other tokens: unit vectors in
    e1..e6, one of them larger; BOS / EOS: 0.5 e7; PAD: zero."""
    g = torch.Generator().manual_seed(0)
    table = torch.zeros(VOCAB_SIZE, DIM)
    filler = torch.rand(VOCAB_SIZE, 6, generator=g) + 0.05
    table[4:, 1:7] = F.normalize(filler[4:], dim=-1)
    table[ZEBRA] = 0.0
    table[ZEBRA, 0] = 2.0
    table[BOS, 7] = table[EOS, 7] = 0.5
    return table


class BagOfWordsAdapter(Adapter):
    """A text tower with token access (`tokenize_text`, `encode_token_ids`, `text_pad_id`,
    `text_embedding_layer`) or, with ``tokens=False``, strings only (``drop`` removal);
    images embed as e0 scaled by their brightness plus a small bias (the same direction for
    every image): the "zebra" image."""

    def __init__(self, tokens: bool = True, templates: tuple[str, ...] = ("{}",)) -> None:
        self.spec = "toy:bagofwords"
        self.preprocess = Preprocess(shortest_edge=None, resize_hw=(16, 16), crop_hw=None,
                                     mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        self.device = torch.device("cpu")
        self.text_templates = tuple(templates)
        self.embedding = nn.Embedding(VOCAB_SIZE, DIM)
        with torch.no_grad():
            self.embedding.weight.copy_(embedding_table())
        self.embedding.requires_grad_(False)
        self.tokens = tokens
        self.text_calls = 0

    # images: the "zebra" direction
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        b = pixels.mean(dim=(1, 2, 3)) + 0.5
        out = torch.zeros(pixels.shape[0], DIM)
        out[:, 0] = b
        out[:, 7] = 0.05 * b
        return out

    # text: strings, and tokens
    def _tokenize(self, text: str) -> TokenizedText:
        ids, offsets, special = [BOS], [(0, 0)], [True]
        for m in _TOKEN.finditer(text):
            ids.append(token_id(m.group(0)))
            offsets.append((m.start(), m.end()))
            special.append(False)
        ids.append(EOS), offsets.append((0, 0)), special.append(True)
        return TokenizedText(tuple(ids), tuple(offsets), tuple(special))

    def tokenize_text(self, text: str) -> TokenizedText | None:
        return self._tokenize(text) if self.tokens else None

    @property
    def text_pad_id(self) -> int | None:  # type: ignore[override]
        return PAD if self.tokens else None

    def encode_token_ids(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # through the layer's call, so a forward hook (gradient methods) sees it
        return (self.embedding(ids) * attention_mask[..., None].to(torch.float32)).sum(1)

    def text_embedding_layer(self) -> nn.Module | None:
        return self.embedding if self.tokens else None

    def encode_texts(self, prompts) -> torch.Tensor:
        self.text_calls += len(prompts)
        toks = [self._tokenize(p).ids for p in prompts]
        length = max(len(t) for t in toks)
        ids = torch.tensor([list(t) + [PAD] * (length - len(t)) for t in toks])
        mask = torch.tensor([[1] * len(t) + [0] * (length - len(t)) for t in toks])
        with torch.no_grad():
            return self.encode_token_ids(ids, mask)


# -- images: a tower that sees where the colours are ------------------------------------------

class PatchColourAdapter(Adapter):
    """An image embeds as its mean colour in each quarter (12 values) plus a bias: hiding any
    region of a 2×2 grid moves the embedding (the element-set contract compares them)."""

    def __init__(self) -> None:
        self.spec = "toy:patchcolour"
        self.preprocess = Preprocess(shortest_edge=None, resize_hw=(16, 16), crop_hw=None,
                                     mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        self.device = torch.device("cpu")

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(pixels.float(), 2).flatten(1)
        return torch.cat([pooled, torch.full_like(pooled[:, :1], 0.5)], 1)


# -- audio: an ImageBind-style model that hears one tone --------------------------------------

RATE = 8000
TONE_HZ = 1000.0
BANDS = 8  # 500 Hz each up to 4 kHz: TONE_HZ falls in band 2
TONE_BAND = int(TONE_HZ // (RATE / 2 / BANDS))
ADIM = BANDS + 1


def band_energies(wave: torch.Tensor, rate: int) -> torch.Tensor:
    """(T,) waveform → (1, BANDS) RMS magnitude per frequency band (the toy's 'mel clips')."""
    spec = torch.fft.rfft(wave.float().reshape(-1)).abs() / max(1, wave.numel()) ** 0.5
    freqs = torch.fft.rfftfreq(wave.numel(), d=1.0 / rate)
    band = (freqs / (rate / 2 / BANDS)).long().clamp(max=BANDS - 1)
    out = torch.zeros(BANDS).index_add_(0, band, spec ** 2).sqrt()
    return out[None]


def tokenize_prompts(prompts: list[str]) -> torch.Tensor:
    """A prompt → (1,) 1.0 when it names a beep (the tone), else 0.0."""
    return torch.tensor([[1.0 if "beep" in p.lower() else 0.0] for p in prompts])


class ToneImageBind(nn.Module):
    """``model({modality: batch}) -> {modality: (B, D)}``: audio (B, BANDS) band energies →
    [bands, 0.02 bias]; vision → the tone band's direction (any image); text → the tone band
    for a beep, band 0 otherwise."""

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for m, x in inputs.items():
            if m == "audio":
                emb = torch.cat([x.float(), torch.full_like(x[:, :1].float(), 0.02)], 1)
            elif m == "vision":
                emb = torch.zeros(x.shape[0], ADIM, device=x.device)
                emb[:, TONE_BAND] = 1.0 + 0.01 * x.float().mean(dim=(1, 2, 3))
                emb[:, -1] = 0.02
            else:  # text
                emb = torch.zeros(x.shape[0], ADIM, device=x.device)
                emb[:, TONE_BAND] = x[:, 0].float()
                emb[:, 0] = 1.0 - x[:, 0].float()
            out[m] = F.normalize(emb, dim=-1)
        return out


#: the factory as a user names it on the command line
TONE_SPEC = f"imagebind:{Path(__file__).resolve()}:build_tone_imagebind"


def build_tone_imagebind():
    return ToneImageBind(), {"tokenize": tokenize_prompts, "audio_transform": band_energies,
                             "size": 16}


def tone_adapter() -> ImageBindAdapter:
    model, opts = build_tone_imagebind()
    pre = Preprocess(16, None, (16, 16), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear")
    return ImageBindAdapter(model, torch.device("cpu"), tokenize=opts["tokenize"],
                            audio_transform=opts["audio_transform"], preprocess=pre)


def tone_clip(seconds: float = 2.0, segments: int = 8, tone_segment: int = 3,
              noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """A clip of `segments` equal windows: low broadband noise everywhere, a TONE_HZ tone in
    window `tone_segment` (amplitude 0.5)."""
    n = int(round(seconds * RATE))
    rng = np.random.default_rng(seed)
    wave = noise * rng.standard_normal(n)
    a, b = n * tone_segment // segments, n * (tone_segment + 1) // segments
    t = np.arange(b - a) / RATE
    wave[a:b] += 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
    return wave.astype(np.float32)


def bursts_clip(onsets_s: tuple[float, ...], tone_index: int, seconds: float = 2.0,
                burst_s: float = 0.2, seed: int = 0) -> np.ndarray:
    """Silence with short sound events starting at `onsets_s`: event `tone_index` is the tone,
    the others are broadband noise bursts (loud, so they carry energy in every band)."""
    n = int(round(seconds * RATE))
    rng = np.random.default_rng(seed)
    wave = 0.002 * rng.standard_normal(n)
    for k, start in enumerate(onsets_s):
        a = int(round(start * RATE))
        b = min(n, a + int(round(burst_s * RATE)))
        if k == tone_index:
            wave[a:b] += 0.5 * np.sin(2 * np.pi * TONE_HZ * np.arange(b - a) / RATE)
        else:
            wave[a:b] += 0.4 * rng.standard_normal(b - a)
    return wave.astype(np.float32)
