"""Fixtures of the text and audio sides: the toy models of `modality_toys`, the demo model,
a tiny random-weight CLIP folder (the real transformers class), a tone clip as a WAV file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

import modality_toys as toys

HERE = Path(__file__).resolve().parent


@pytest.fixture
def bright() -> np.ndarray:
    """Any image: the toys' image towers point the same way for every image."""
    return np.full((16, 16, 3), 200, np.uint8)


@pytest.fixture
def bag() -> toys.BagOfWordsAdapter:
    return toys.BagOfWordsAdapter(tokens=True, templates=("{}", "a photo of {}."))


@pytest.fixture
def tone() -> "toys.ImageBindAdapter":
    return toys.tone_adapter()


@pytest.fixture(scope="session")
def tone_wav(tmp_path_factory) -> Path:
    """The tone clip (tone in window 3 of 8) as a 16-bit PCM WAV file."""
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    wave = toys.tone_clip()
    wavfile.write(str(path), toys.RATE, np.round(wave * 32767).astype(np.int16))
    return path


@pytest.fixture(scope="session")
def demo():
    from mmattr.adapters import load_adapter

    return load_adapter("demo", device="cpu")


def _adapter_builders():
    """tests/adapters' builders of tiny random-weight models (the contract tests' models)."""
    spec = importlib.util.spec_from_file_location(
        "_adapters_conftest_for_modalities", HERE.parent / "adapters" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A tiny random-weight transformers CLIPModel folder with its own character-level BPE
    tokenizer: tests/adapters' builder (the contract tests' model), written once here."""
    folder = tmp_path_factory.mktemp("tiny_clip") / "clip"
    folder.mkdir()
    _adapter_builders()._save_clip(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_text_towers(tmp_path_factory, tiny_clip_dir) -> dict[str, str]:
    """Specs of tiny random-weight models of every family with a text tower, saved as users
    have them: transformers CLIP, SigLIP and SigLIP 2, an open_clip checkpoint, an
    ImageBind-style factory."""
    builders = _adapter_builders()
    root = tmp_path_factory.mktemp("tiny_text_towers")
    specs = {"clip": f"hf:{tiny_clip_dir}"}
    for name, save in (("siglip", builders._save_siglip), ("siglip2", builders._save_siglip2)):
        (root / name).mkdir()
        save(root / name)
        specs[name] = f"hf:{root / name}"
    specs["openclip"] = f"openclip:{builders.OPENCLIP_ARCH}/{builders._save_openclip(root)}"
    specs["imagebind"] = f"imagebind:{builders.TINY}:build_imagebind"
    return specs
