"""Audio clips in and out: a WAV file or a waveform as a mono float `AudioClip`.

A leaf (numpy, scipy's WAV reader, mmattr.errors), so adapters and modalities both read clips
the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, arg


@dataclass(frozen=True)
class AudioClip:
    """A mono waveform in [-1, 1] and its sample rate; `source` is the file it came from."""

    waveform: np.ndarray
    sample_rate: int
    source: str | None = None

    @property
    def seconds(self) -> float:
        return len(self.waveform) / float(self.sample_rate)


def read_audio(path: str | os.PathLike) -> AudioClip:
    """A WAV file (8/16/24/32-bit PCM or float, any channels: averaged to mono) as an
    `AudioClip`; one-line errors for a missing or unreadable file."""
    from scipy.io import wavfile

    p = Path(path)
    if not p.is_file():
        raise InputError(f"audio file not found: {p}")
    try:
        rate, data = wavfile.read(str(p))
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read audio {p} (a WAV file is needed): {exc}") from None
    wave = np.asarray(data)
    if wave.dtype.kind in "iu":
        info = np.iinfo(wave.dtype)
        wave = (wave.astype(np.float64) - (info.max + 1 + info.min) / 2) / ((info.max - info.min + 1) / 2)
    wave = wave.astype(np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if wave.size == 0:
        raise InputError(f"the audio file {p} holds no samples")
    return AudioClip(np.ascontiguousarray(wave), int(rate), str(p))


def as_clip(source: Any) -> AudioClip:
    """A path, an `AudioClip` or a ``(waveform, sample_rate)`` pair → `AudioClip`."""
    if isinstance(source, AudioClip):
        return source
    if isinstance(source, (str, os.PathLike)):
        return read_audio(source)
    if isinstance(source, tuple) and len(source) == 2:
        wave, rate = source
        if hasattr(wave, "detach"):
            wave = wave.detach().cpu().numpy()
        wave = np.asarray(wave, np.float32)
        if wave.ndim == 2:
            wave = wave.mean(axis=0 if wave.shape[0] < wave.shape[1] else 1)
        if wave.ndim != 1 or wave.size == 0 or int(rate) < 1:
            raise InputError("audio must be a file, an AudioClip or (waveform, sample_rate) with "
                             "a 1-D waveform and a positive rate")
        return AudioClip(np.ascontiguousarray(wave), int(rate))
    raise InputError(f"{arg('audio')} must be a WAV file, an AudioClip or (waveform, "
                     f"sample_rate), not a {type(source).__name__}")


