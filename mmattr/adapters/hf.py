"""Hugging Face transformers dual encoders (CLIP and any AutoModel with image and text features)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from ..errors import ModelError
from . import register_adapter
from ._preprocess import Preprocess
from .base import Adapter

_DTYPES = {"auto": None, "fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def _features(out) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output is the projected embedding.
    if torch.is_tensor(out):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        raise ModelError("the model's feature method returned no pooled embedding")
    return pooled


def _load(loader, ident: str, what: str):
    local = Path(ident).expanduser()
    try:
        if local.exists():
            return loader.from_pretrained(str(local))
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        return loader.from_pretrained(ident, local_files_only=offline)
    except (OSError, ValueError, KeyError) as exc:
        if not local.exists():
            raise ModelError(
                f"cannot load {what} for {ident!r}: not a local folder and the hub could not be "
                f"reached; download it where there is network (huggingface-cli download {ident} "
                f"--local-dir DIR) and pass --model hf:DIR") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load {what} from {local}: {first}") from None


class HFAdapter(Adapter):
    """A transformers model exposing ``get_image_features`` and ``get_text_features``.

    Preprocessing comes from the checkpoint's own image-processor config, so any input size works.
    """

    def __init__(self, ident: str, device: torch.device, dtype: str = "auto",
                 default_vocabulary: str | None = None) -> None:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        if not ident:
            raise ModelError("the hf model spec needs a hub id or a folder, e.g. hf:openai/clip-vit-base-patch32")
        if dtype not in _DTYPES:
            raise ModelError(f"unknown dtype {dtype!r}; use fp32, fp16 or bf16")
        model = _load(AutoModel, ident, "the model")
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ModelError(f"{ident!r} ({type(model).__name__}) has no image and text features; "
                             "use a CLIP-style checkpoint")
        self.tokenizer = _load(AutoTokenizer, ident, "the tokenizer")
        processor = _load(AutoImageProcessor, ident, "the image processor")
        self.preprocess = Preprocess.from_config(processor.to_dict())
        self.device = device
        self.autocast_dtype = _DTYPES[dtype] if device.type != "cpu" else None
        self.model = model.to(device).eval().requires_grad_(False)
        scale = getattr(model, "logit_scale", None)
        self.logit_scale = float(min(scale.exp().item(), 100.0)) if scale is not None else 100.0
        self.default_vocabulary = default_vocabulary
        self._max_len = int(getattr(model.config, "text_config", model.config).max_position_embeddings)
        self._pad = "max_length" if "siglip" in model.config.model_type else True

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            out = self.model.get_image_features(pixel_values=pixels.to(self.device))
        return _features(out).float()

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward_images(pixels)

    @torch.inference_mode()
    def encode_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        tok = self.tokenizer(list(prompts), padding=self._pad, truncation=True,
                             max_length=self._max_len, return_tensors="pt")
        tok = {k: v.to(self.device) for k, v in tok.items()}
        with self.autocast():
            out = self.model.get_text_features(**tok)
        return _features(out).float()


@register_adapter("hf", syntax="hf:<hub id or folder>", extra=None, requires=("transformers",),
                  help="transformers CLIP-style dual encoder from the hub or a local folder")
def _hf(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    return HFAdapter(arg, device=device, dtype=dtype)
