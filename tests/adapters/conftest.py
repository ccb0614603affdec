"""Tiny random-weight models of every family, saved as users have them, built once per session.

Each is the real class (transformers CLIPModel, SiglipModel, Siglip2Model,
ViTForImageClassification, ResNetForImageClassification; an open_clip CLIP from a locally
registered config) with small dimensions, written with save_pretrained / a checkpoint file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

# No test may reach the network: a hub id must fail at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = Path(__file__).parent / "tiny_models.py"
_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
             max_position_embeddings=16)
_VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
               patch_size=8)
IMAGENET_LIKE = ["tench, Tinca tinca", "goldfish, Carassius auratus", "great white shark",
                 "tiger shark, Galeocerdo cuvieri", "hammerhead, hammerhead shark"]


def _tokenizer(folder: Path):
    """A CLIP BPE tokenizer over single characters, saved with the model (its own files)."""
    from transformers import CLIPTokenizer

    chars = "abcdefghijklmnopqrstuvwxyz.,'-"
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    raw = folder / "_raw_tok"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "vocab.json").write_text(json.dumps(vocab))
    (raw / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"))
    tok.save_pretrained(str(folder))
    return len(vocab)


def _save_clip(folder: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    n = _tokenizer(folder)
    torch.manual_seed(0)
    cfg = CLIPConfig(text_config=dict(_TEXT, vocab_size=n, bos_token_id=n - 2, eos_token_id=n - 1,
                                      pad_token_id=n - 1),
                     vision_config=dict(_VISION, image_size=32), projection_dim=16)
    CLIPModel(cfg).eval().save_pretrained(str(folder))
    # Not the model's 32 px: a non-square 40×48 input, position embeddings interpolated.
    CLIPImageProcessor(size={"shortest_edge": 44}, crop_size={"height": 40, "width": 48},
                       ).save_pretrained(str(folder))


def _save_siglip(folder: Path) -> None:
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    n = _tokenizer(folder)
    torch.manual_seed(0)
    cfg = SiglipConfig(text_config=dict(_TEXT, vocab_size=n, pad_token_id=n - 1, eos_token_id=n - 1,
                                        bos_token_id=n - 2, projection_size=32),
                       vision_config=dict(_VISION, image_size=24))
    SiglipModel(cfg).eval().save_pretrained(str(folder))
    SiglipImageProcessor(size={"height": 24, "width": 24}).save_pretrained(str(folder))


def _save_siglip2(folder: Path) -> None:
    from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model

    n = _tokenizer(folder)
    torch.manual_seed(0)
    cfg = Siglip2Config(text_config=dict(_TEXT, vocab_size=n, pad_token_id=n - 1, eos_token_id=n - 1,
                                         bos_token_id=n - 2, projection_size=32),
                        vision_config=dict(_VISION, num_patches=16))
    Siglip2Model(cfg).eval().save_pretrained(str(folder))
    Siglip2ImageProcessor(patch_size=8, max_num_patches=16).save_pretrained(str(folder))


def _save_vit(folder: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    cfg = ViTConfig(**_VISION, image_size=32, num_labels=len(IMAGENET_LIKE),
                    id2label=dict(enumerate(IMAGENET_LIKE)),
                    label2id={n: i for i, n in enumerate(IMAGENET_LIKE)})
    ViTForImageClassification(cfg).eval().save_pretrained(str(folder))
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))


def _save_resnet(folder: Path) -> None:
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    labels = ["cat", "dog", "bird", "fish"]
    cfg = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=4,
                       id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    ResNetForImageClassification(cfg).eval().save_pretrained(str(folder))
    # microsoft/resnet-* ship this processor: short side 32/0.875, centre crop 32.
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875).save_pretrained(str(folder))


OPENCLIP_ARCH = "mmattr-tiny-ViT"


def _save_openclip(folder: Path) -> Path:
    import open_clip

    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = folder / f"{OPENCLIP_ARCH}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    torch.manual_seed(0)
    model = open_clip.create_model(OPENCLIP_ARCH, pretrained=None)
    ckpt = folder / "tiny_openclip.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    return ckpt


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    """Family name → a spec that loads a tiny instance of it (the contract test's table)."""
    root = tmp_path_factory.mktemp("tiny_models")
    specs: dict[str, str] = {}
    for name, save in (("clip", _save_clip), ("siglip", _save_siglip), ("siglip2", _save_siglip2),
                       ("vit", _save_vit), ("resnet", _save_resnet)):
        folder = root / name
        folder.mkdir()
        save(folder)
        specs[name] = str(folder)
    ckpt = _save_openclip(root)
    return {
        "hf": f"hf:{specs['clip']}",
        "hf-siglip": f"hf:{specs['siglip']}",
        "hf-siglip2": f"hf:{specs['siglip2']}",
        "hf-classifier": f"hf-classifier:{specs['vit']}",
        "hf-classifier-resnet": f"hf-classifier:{specs['resnet']}",
        "openclip": f"openclip:{OPENCLIP_ARCH}/{ckpt}",
        "torch": f"torch:{TINY}:build_classifier",
        "torch-encoder": f"torch:{TINY}:build_encoder",
        "imagebind": f"imagebind:{TINY}:build_imagebind",
        "demo": "demo",
        "demo-biased": "demo-biased",
        "demo-classifier": "demo-classifier",
    }


@pytest.fixture(scope="session")
def scene(tmp_path_factory) -> Path:
    """A small RGB test image file."""
    from PIL import Image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(48, 56, 3), dtype=np.uint8)
    img[10:30, 12:34] = (220, 30, 30)
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    Image.fromarray(img).save(path)
    return path
