"""The audio modality: the time segments of a clip as SMDL's elements.

An element is a time segment of the waveform, made by ``-O audio.division=fixed`` (equal
windows, ``audio.segments`` of them) or ``onset`` (cut at the onsets of sound events found by
spectral flux, at most ``audio.segments`` segments). A segment is removed by silencing it
(its samples set to 0); the masked-in clip keeps only the subset's segments, the masked-out
clip silences them. Composition is linear in the subset, as the image regions': a batch of
subsets becomes a batch of waveforms with one matrix product. The model turns waveforms into
its own input (`Adapter.encode_waveforms`: an ImageBind-style model's audio transform).

Ref. Chen et al., "Less is More", ICLR 2024 (subset selection over elements); Bello et al., "A
Tutorial on Onset Detection in Music Signals", IEEE TSAP 2005 (spectral flux onsets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..adapters.base import Adapter
from ..elements import Element, ElementSet, register_modality
from ..errors import InputError, ModelError
from ..options import option
from ..sound import AudioClip, as_clip, read_audio  # noqa: F401  (re-exported)

DIVISIONS = ("fixed", "onset")


def fixed_segments(n_samples: int, segments: int) -> np.ndarray:
    """Boundaries (K + 1,) of `segments` equal windows (fewer when the clip is shorter)."""
    k = max(1, min(int(segments), n_samples))
    return np.unique(np.round(np.linspace(0, n_samples, k + 1)).astype(np.int64))


def onset_segments(wave: np.ndarray, rate: int, segments: int, hop_seconds: float = 0.01,
                   frame_seconds: float = 0.04) -> np.ndarray:
    """Boundaries cut at onsets: half-wave rectified spectral flux of log magnitudes, its local
    peaks above the median plus one standard deviation; the strongest peaks are kept, 50 ms
    apart, at most `segments` - 1 of them (so a weak cut, e.g. the spectral leakage where a
    sound stops, never displaces a strong one where a sound starts)."""
    hop = max(1, int(round(hop_seconds * rate)))
    frame = max(hop * 2, int(round(frame_seconds * rate)))
    n = len(wave)
    if n < frame * 2:
        return fixed_segments(n, 1)
    # every frame at once: a strided view of the clip, no copy per frame
    frames = np.lib.stride_tricks.sliding_window_view(wave, frame)[::hop] * np.hanning(frame)
    starts = np.arange(frames.shape[0]) * hop
    mag = np.log1p(np.abs(np.fft.rfft(frames, axis=1)) * 10.0)
    flux = np.concatenate([[0.0], np.maximum(mag[1:] - mag[:-1], 0.0).sum(axis=1)])
    threshold = np.median(flux) + flux.std()
    inner = flux[1:-1]
    peaks = 1 + np.flatnonzero((inner > threshold) & (inner >= flux[:-2]) & (inner >= flux[2:]))
    gap = max(1, int(round(0.05 / hop_seconds)))
    kept: list[int] = []
    for i in peaks[np.argsort(-flux[peaks], kind="stable")]:  # strongest first
        if len(kept) >= max(1, segments) - 1:
            break
        if all(abs(int(i) - k) >= gap for k in kept):
            kept.append(int(i))
    bounds = sorted({0, n, *[int(starts[i] + frame // 2) for i in kept]})
    return np.asarray([b for b in bounds if 0 <= b <= n], np.int64)


@register_modality("audio")
class AudioElements(ElementSet):
    """The time segments of an audio clip, each kept or silenced, encoded by the model's audio
    tower (an ImageBind-style model).

    Ref. Chen et al., "Less is More", ICLR 2024 (subset selection over elements).
    """

    noun = "segment"

    @dataclass(frozen=True)
    class Options:
        division: str = option("fixed", "fixed: equal windows; onset: cut at sound onsets "
                                        "(spectral flux)", choices=DIVISIONS)
        segments: int = option(10, "segments (fixed), or at most this many (onset)", min=1)

    def __init__(self, clip: AudioClip, adapter: Adapter, division: str = "fixed",
                 segments: int = 10, batch_size: int = 64, processes: int = 1) -> None:
        if not callable(getattr(adapter, "encode_waveforms", None)) or not getattr(
                adapter, "has_waveforms", False):
            raise ModelError(f"model {adapter.spec!r} has no audio tower that takes waveforms, so "
                             "it cannot explain audio (an ImageBind-style model with an "
                             "audio_transform: see `mmattr models`)")
        if division not in DIVISIONS:
            raise InputError(f"unknown audio division {division!r}; use {' or '.join(DIVISIONS)}")
        self.clip = clip
        self.adapter = adapter
        self.division = division
        wave = clip.waveform
        bounds = (fixed_segments(len(wave), segments) if division == "fixed"
                  else onset_segments(wave, clip.sample_rate, segments))
        self.bounds = bounds
        n = len(bounds) - 1
        dev = adapter.device
        labels = np.repeat(np.arange(n), np.diff(bounds))
        self.labels = labels
        onehot = torch.zeros(n, len(wave), device=dev)
        onehot[torch.from_numpy(labels).to(dev), torch.arange(len(wave), device=dev)] = 1.0
        # (N, T): segment i's samples; a subset's waveform is one matrix product away
        self._stack = onehot * torch.from_numpy(wave).to(dev)[None]
        self._full = torch.from_numpy(wave).to(dev)[None]
        self.setup(n, dev, self._encode_inputs, batch_size=batch_size, processes=processes,
                   weights=torch.from_numpy(np.diff(bounds) / len(wave)).float())

    @classmethod
    def from_input(cls, source: Any, adapter: Adapter, config: Any = None,
                   processes: int = 1) -> "AudioElements":
        o = cls.options_of(config)
        return cls(as_clip(source), adapter, division=o.division, segments=o.segments,
                   batch_size=getattr(config, "batch_size", 64), processes=processes)

    def elements(self) -> list[Element]:
        rate = float(self.clip.sample_rate)
        return [Element(f"{a / rate:.2f}-{b / rate:.2f} s", (int(a), int(b)),
                        {"start_s": a / rate, "end_s": b / rate})
                for a, b in zip(self.bounds[:-1], self.bounds[1:])]

    def settings(self) -> dict[str, Any]:
        return {"elements": self.n, "division": self.division, "remove": "silence",
                "sample_rate": self.clip.sample_rate, "seconds": self.clip.seconds}

    def compose(self, subsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N) subsets → (B, T) masked-in waveforms (only their segments sound) and the
        masked-out ones (their segments silenced)."""
        inside = subsets.to(self._stack.dtype) @ self._stack
        return inside, self._full - inside

    def _encode_inputs(self, waves: torch.Tensor) -> torch.Tensor:
        return self.adapter.encode_waveforms(waves, self.clip.sample_rate).float()
