"""The modalities beyond images: their element sets register with `mmattr.elements`.

``image`` (regions: `mmattr.regions.RegionStack`), ``text`` (words or tokens:
`mmattr.modalities.text`) and ``audio`` (time segments: `mmattr.modalities.audio`); a new one
is one file with an `ElementSet` subclass under ``@register_modality(NAME)`` and one import
line here.
"""

from __future__ import annotations

from . import audio, text  # noqa: F401  (register "audio" and "text")
from .audio import AudioClip, AudioElements, read_audio
from .text import TextElements

__all__ = ["AudioClip", "AudioElements", "TextElements", "read_audio"]
