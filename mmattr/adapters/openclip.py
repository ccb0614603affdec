"""OpenCLIP models: ``openclip:<architecture>[/<pretrained tag or checkpoint file>]`` and
``openclip:hf-hub:<id>``.

Ref. Cherti et al., "Reproducible scaling laws for contrastive language-image learning"
(OpenCLIP), CVPR 2023.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import torch

from ..errors import ModelError
from .base import register_adapter
from ..preprocess import Preprocess
from .base import Adapter, autocast_dtype
from .hf import _hub_reachable, _offline

_EXTRA = "pip install 'mmattr[openclip]'"


def require_open_clip():
    if importlib.util.find_spec("open_clip") is None:
        raise ModelError(f"the openclip family needs open_clip_torch: {_EXTRA}")
    import open_clip

    return open_clip


def parse_spec(arg: str) -> tuple[str, str | None]:
    """``ViT-B-32/laion2b_s34b_b79k`` → (arch, tag); ``ViT-B-32//abs/ckpt.pt`` → (arch, file);
    ``hf-hub:org/name`` → (``hf-hub:org/name``, None)."""
    if arg.startswith("hf-hub:"):
        return arg, None
    arch, _, rest = arg.partition("/")
    return arch, (rest or None)


def _preprocess(open_clip, model) -> Preprocess:
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    hw = (size, size) if isinstance(size, int) else tuple(size)
    interp = {"bicubic": "bicubic", "bilinear": "bilinear", "nearest": "nearest"}.get(
        cfg.get("interpolation", "bicubic"), "bicubic")
    mode = cfg.get("resize_mode", "shortest")
    if mode == "squash":
        return Preprocess(None, hw, None, tuple(cfg["mean"]), tuple(cfg["std"]), interp)
    if mode != "shortest":
        raise ModelError(f"open_clip resize mode {mode!r} is not supported; "
                         "load it with image_resize_mode='shortest' or 'squash'")
    # open_clip's eval transform: short side to the size, centre crop.
    return Preprocess(min(hw), None, hw, tuple(cfg["mean"]), tuple(cfg["std"]), interp)


class OpenCLIPAdapter(Adapter):
    """An open_clip CLIP / SigLIP / CoCa model with its own tokenizer and eval transform."""

    def __init__(self, arg: str, device: torch.device, dtype: str = "auto") -> None:
        open_clip = require_open_clip()
        if not arg:
            raise ModelError("the openclip spec needs an architecture, e.g. openclip:ViT-B-32/"
                             "laion2b_s34b_b79k or openclip:ViT-B-32//path/to/checkpoint.pt "
                             "(see open_clip.list_models())")
        arch, pretrained = parse_spec(arg)
        remote = arch.startswith("hf-hub:")
        if not remote and arch not in open_clip.list_models():
            import difflib

            close = difflib.get_close_matches(arch, open_clip.list_models(), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ModelError(f"unknown open_clip architecture {arch!r}{hint}; register a config "
                             "with open_clip.add_model_config(PATH) first")
        local_file = pretrained is not None and Path(pretrained).expanduser().is_file()
        if pretrained is not None and not local_file and "/" in pretrained:
            raise ModelError(f"checkpoint file not found: {pretrained}")
        if remote or (pretrained is not None and not local_file):
            # A download would follow; fail at once where there is no network.
            if _offline() or not _hub_reachable():
                self._check_cached(open_clip, arch, pretrained)
        self.autocast_dtype = autocast_dtype(dtype, device)
        try:
            model, _, _ = open_clip.create_model_and_transforms(
                arch, pretrained=str(Path(pretrained).expanduser()) if local_file else pretrained,
                device=device)
            self.tokenizer = open_clip.get_tokenizer(arch)
        except ModelError:
            raise
        except Exception as exc:  # open_clip raises RuntimeError / ValueError / OSError alike
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"cannot load openclip:{arg}: {first}") from None
        self.model = model.eval().requires_grad_(False)
        self.device = device
        self.preprocess = _preprocess(open_clip, model)
        self.logit_scale = float(min(model.logit_scale.exp().item(), 100.0))
        bias = getattr(model, "logit_bias", None)
        self.logit_bias = float(bias.item()) if bias is not None else 0.0
        self.arch = arch

    @staticmethod
    def _check_cached(open_clip, arch: str, pretrained: str | None) -> None:
        """Offline: allow only weights already in the local cache; else one line."""
        if pretrained is not None and not arch.startswith("hf-hub:"):
            cfg = open_clip.get_pretrained_cfg(arch, pretrained)
            if not cfg:
                tags = [t for a, t in open_clip.list_pretrained() if a == arch]
                raise ModelError(f"unknown pretrained tag {pretrained!r} for {arch}; known: "
                                 f"{', '.join(tags) or 'none'}")
            hub = cfg.get("hf_hub")
            if hub:
                from huggingface_hub import try_to_load_from_cache

                name = cfg.get("hf_weights_filename") or "open_clip_pytorch_model.bin"
                for fname in (name, "open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
                    hit = try_to_load_from_cache(hub.rstrip("/"), fname)
                    if isinstance(hit, str):
                        return
        elif arch.startswith("hf-hub:"):
            from huggingface_hub import try_to_load_from_cache

            if isinstance(try_to_load_from_cache(arch[len("hf-hub:"):], "open_clip_config.json"), str):
                return
        what = arch if pretrained is None else f"{arch}/{pretrained}"
        shown = "ARCH" if arch.startswith("hf-hub:") else arch
        raise ModelError(f"cannot load openclip:{what}: its weights are not in the local cache and "
                         "there is no network; download the checkpoint where there is network and "
                         f"pass --model openclip:{shown}//path/to/checkpoint")

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.model.encode_image(pixels.to(self.device)).float()

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward_images(pixels)

    @torch.inference_mode()
    def encode_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(prompts)).to(self.device)
        with self.autocast():
            return self.model.encode_text(tokens).float()

    def word_pieces(self, text: str) -> list[list[str | None]] | None:
        tok = self.tokenizer
        inner = getattr(tok, "tokenizer", None)  # open_clip's HFTokenizer wraps a transformers one
        if inner is not None:
            from .hf import tokenizer_pieces

            return tokenizer_pieces(inner, text)
        if callable(getattr(tok, "encode", None)) and isinstance(getattr(tok, "decoder", None), dict):
            # open_clip's SimpleTokenizer (CLIP's byte-level BPE): every string has pieces
            return [[tok.decoder[i] for i in tok.encode(w)] for w in text.split()]
        return None

    def vision_module(self) -> torch.nn.Module:
        return self.model.visual

    def token_grid(self) -> tuple[int, int, int] | None:
        visual = self.model.visual
        grid = getattr(visual, "grid_size", None)
        if grid is None:  # timm towers, ResNets
            return None
        h, w = self.preprocess.output_hw
        patch = getattr(visual, "patch_size", None)
        if isinstance(patch, (tuple, list)):
            return h // patch[0], w // patch[1], 1
        return int(grid[0]), int(grid[1]), 1

    def describe(self) -> dict:
        return {**super().describe(), "architecture": self.arch, "logit_bias": self.logit_bias}


@register_adapter("openclip", syntax="openclip:<arch>[/<tag or checkpoint file>] | openclip:hf-hub:<id>",
                  extra="openclip", requires=("open_clip",),
                  help="OpenCLIP model by architecture and pretrained tag, local checkpoint or hub id")
def _openclip(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    return OpenCLIPAdapter(arg, device=device, dtype=dtype)
