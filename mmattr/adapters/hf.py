"""Hugging Face transformers dual encoders: CLIP, SigLIP, SigLIP 2, ALIGN and any AutoModel with
``get_image_features`` and ``get_text_features``.

Ref. Radford et al., "Learning Transferable Visual Models From Natural Language Supervision"
(CLIP), ICML 2021; Zhai et al., "Sigmoid Loss for Language Image Pre-Training" (SigLIP), ICCV
2023; Tschannen et al., "SigLIP 2", arXiv 2502.14786; Jia et al., "Scaling Up Visual and
Vision-Language Representation Learning With Noisy Text Supervision" (ALIGN), ICML 2021.
"""

from __future__ import annotations

import inspect
import os
import socket
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import torch
import torch.nn.functional as F

from ..errors import ModelError, arg
from .base import register_adapter
from ..preprocess import Preprocess
from .base import Adapter, autocast_dtype

#: seconds to wait for the hub before calling a hub id unreachable (transformers itself
#: retries for about half a minute)
_HUB_TIMEOUT = 3.0


def _features(out) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output is the projected embedding.
    if torch.is_tensor(out):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        raise ModelError("the model's feature method returned no pooled embedding")
    return pooled


def _offline() -> bool:
    return any(os.environ.get(v, "0").lower() not in ("0", "", "false", "no")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable() -> bool:
    """A quick TCP probe of the hub endpoint, so that no network fails in seconds."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host or "huggingface.co", 443), timeout=_HUB_TIMEOUT).close()
        return True
    except OSError:
        return False


def hub_error(ident: str, family: str) -> ModelError:
    if _looks_like_path(ident):  # a folder that is not there: no download would help
        return ModelError(f"cannot load {ident}: no such folder (a {family}: spec is a local "
                          "folder or a hub id such as openai/clip-vit-base-patch32)")
    return ModelError(
        f"cannot load {ident!r}: not a local folder, not in the local Hugging Face cache, and "
        f"the hub cannot be reached; download it where there is network (huggingface-cli "
        f"download {ident} --local-dir DIR) and pass {arg('model', family + ':DIR')}")


def _looks_like_path(ident: str) -> bool:
    """A folder path rather than a hub id (``org/name``): absolute, relative to here or home,
    more than one slash, or a Windows drive."""
    return (ident.startswith(("/", "./", "../", "~", "\\")) or ident.count("/") > 1
            or "\\" in ident or (len(ident) > 1 and ident[1] == ":"))


def load_pretrained(loader, ident: str, what: str, family: str = "hf"):
    """``loader.from_pretrained`` for a local folder or a hub id; every failure is one line.

    A hub id is tried from the local cache first; the network is only tried when the hub
    answers a quick probe, so an offline machine fails at once instead of after retries.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bar is the one users should see
    local = Path(ident).expanduser()
    # Loading warnings (e.g. "pad_token_id must be within the vocabulary") would come before
    # mmattr's own one-line error about the same checkpoint; errors still show.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return _load_pretrained(loader, ident, what, family, local)
    finally:
        hf_logging.set_verbosity(verbosity)


def _load_pretrained(loader, ident: str, what: str, family: str, local: Path):
    try:
        if local.exists():
            return loader.from_pretrained(str(local))
        try:
            return loader.from_pretrained(ident, local_files_only=True)
        except (OSError, ValueError, KeyError):
            if _offline() or not _hub_reachable():
                raise hub_error(ident, family) from None
        return loader.from_pretrained(ident)
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if not local.exists():
            raise hub_error(ident, family) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load {what} from {local}: {first}") from None


def _embedding_rows(model, text_cfg) -> int | None:
    """Rows of the text tower's token embedding table (None when it cannot be found)."""
    text = getattr(model, "text_model", None)
    emb = getattr(getattr(text, "embeddings", None), "token_embedding", None)
    if emb is None:
        try:
            emb = model.get_input_embeddings()
        except (AttributeError, NotImplementedError):
            emb = None
    rows = getattr(emb, "num_embeddings", None)
    if rows is None:
        rows = getattr(text_cfg, "vocab_size", None)
    return int(rows) if rows else None


def warn_long_prompts(tokenizer, prompts: Sequence[str], limit: int) -> None:
    """One warning for prompts the text tower will see cut to its `limit` tokens."""
    import warnings

    from ..errors import MmattrWarning

    lengths = [len(ids) for ids in tokenizer(list(prompts), truncation=False, verbose=False)["input_ids"]]
    if lengths and max(lengths) > limit:
        warnings.warn(f"the prompt is {max(lengths)} tokens long, over the model's limit of "
                      f"{limit} tokens; only its first {limit} tokens are used",
                      MmattrWarning, stacklevel=3)


def tokenizer_pieces(tokenizer, text: str) -> list[list[str | None]] | None:
    """Each word's tokenizer pieces, the unknown token as None, for a transformers tokenizer
    (fast or slow) or the plain `tokenizers` one the native path builds; None for anything else."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    unk = {getattr(tokenizer, "unk_token", None)}
    if backend is not None:
        unk.add(getattr(getattr(backend, "model", None), "unk_token", None))

        def pieces(word: str) -> list[str]:
            return list(backend.encode(word, add_special_tokens=False).tokens)
    elif callable(getattr(tokenizer, "tokenize", None)):
        def pieces(word: str) -> list[str]:
            return list(tokenizer.tokenize(word))
    else:
        return None
    unk.discard(None)
    return [[None if p in unk else p for p in pieces(w)] for w in text.split()]


def check_token_ids(ids: torch.Tensor, rows: int | None) -> None:
    """A tokenizer that yields ids beyond the embedding table is a broken checkpoint: say so in
    one line instead of an IndexError deep in the model."""
    if rows is not None and ids.numel() and int(ids.max()) >= rows:
        raise ModelError(f"the tokenizer yields token id {int(ids.max())} but the text model's "
                         f"embedding table has {rows} rows: the checkpoint's tokenizer and "
                         "model do not match; use the tokenizer saved with the model")


# Kept under its old name for callers of the first version.
_load = load_pretrained

#: the image-processor settings `Preprocess.from_config` reads; a folder's JSON holding all of
#: them is read as it is, so loading needs no transformers image processor (which imports
#: torchvision: seconds of startup for a few numbers)
_GEOMETRY_KEYS = ("do_resize", "size", "do_center_crop", "do_normalize", "image_mean",
                  "image_std", "resample")


#: image processors with no centre crop at all: their settings hold no ``do_center_crop``
_UNCROPPED = {"ViTImageProcessor", "ViTImageProcessorFast"}


def _uncropped(cfg: dict) -> bool:
    return cfg.get("image_processor_type") in _UNCROPPED and "crop_size" not in cfg


def trained_templates(ident: str) -> tuple[str, ...] | None:
    """The prompt templates a checkpoint was trained with: the ``templates`` list of its
    folder's training.json (mmattr's demo models write one); None when it does not say."""
    import json

    path = Path(ident).expanduser() / "training.json"
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8")).get("templates")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(found, list) and found and all(isinstance(t, str) and "{}" in t for t in found):
        return tuple(found)
    return None


def image_processor_config(ident: str, family: str = "hf") -> dict:
    """The checkpoint's image-processor settings as a dict.

    A local folder's ``preprocessor_config.json`` (or the ``image_processor`` entry of its
    ``processor_config.json``) is read directly when it states every setting in
    `_GEOMETRY_KEYS`; otherwise (a hub id, or a file relying on the processor class's defaults)
    transformers' AutoImageProcessor fills them in.
    """
    import json

    folder = Path(ident).expanduser()
    for name, key in (("preprocessor_config.json", None), ("processor_config.json", "image_processor")):
        path = folder / name
        if not path.is_file():
            continue
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            break  # let transformers report the broken file
        cfg = cfg.get(key, {}) if key else cfg
        if isinstance(cfg, dict) and all(k in cfg for k in _GEOMETRY_KEYS
                                         if not (k == "do_center_crop" and _uncropped(cfg))):
            return cfg
    from transformers import AutoImageProcessor

    return load_pretrained(AutoImageProcessor, ident, "the image processor", family).to_dict()


def _siglip2_patches(pixels: torch.Tensor, patch: int) -> dict[str, torch.Tensor]:
    """(B, 3, h, w) → SigLIP 2's NaFlex input: patches in the image processor's order
    (rows, cols, patch row, patch col, channel), an all-ones mask and the grid shape."""
    b, c, h, w = pixels.shape
    gh, gw = h // patch, w // patch
    x = pixels[..., :gh * patch, :gw * patch].reshape(b, c, gh, patch, gw, patch)
    x = x.permute(0, 2, 4, 3, 5, 1).reshape(b, gh * gw, patch * patch * c)
    mask = torch.ones(b, gh * gw, dtype=torch.int32, device=pixels.device)
    shapes = torch.tensor([[gh, gw]] * b, dtype=torch.long, device=pixels.device)
    return {"pixel_values": x, "pixel_attention_mask": mask, "spatial_shapes": shapes}


class HFAdapter(Adapter):
    """A transformers model exposing ``get_image_features`` and ``get_text_features``.

    Preprocessing comes from the checkpoint's own image-processor config, so any input size
    works; a ViT tower whose input size differs from its config interpolates its position
    embeddings (transformers' ``interpolate_pos_encoding``).
    """

    def __init__(self, ident: str, device: torch.device, dtype: str = "auto",
                 default_vocabulary: str | None = None) -> None:
        from . import _native

        if not ident:
            raise ModelError("the hf model spec needs a hub id or a folder, e.g. hf:openai/clip-vit-base-patch32")
        self.autocast_dtype = autocast_dtype(dtype, device)
        # A folder of a family mmattr builds in plain torch (ALIGN: the demo models) skips
        # importing transformers' model code; anything else takes transformers' generic path.
        native = _native.load(ident)
        #: True when the model and tokenizer were built by `mmattr.adapters._native`
        self.native = native.loaded
        #: why not, when not (a hub id, another family, MMATTR_NATIVE=0, ...)
        self.native_reason = native.reason
        if native.loaded:
            model, self.tokenizer = native.model, native.tokenizer
        else:
            from transformers import AutoModel, AutoTokenizer

            model = load_pretrained(AutoModel, ident, "the model")
            if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
                raise ModelError(f"{ident!r} ({type(model).__name__}) has no image and text features; "
                                 "use a CLIP-style checkpoint, or hf-classifier: for a classifier")
            self.tokenizer = load_pretrained(AutoTokenizer, ident, "the tokenizer")
        self.model_type = str(model.config.model_type)
        cfg = image_processor_config(ident)
        self._patch = None
        if self.model_type == "siglip2":
            self._patch = int(cfg.get("patch_size", 16))
            self.preprocess = Preprocess.from_config(cfg, patch_size=self._patch,
                                                     max_num_patches=int(cfg.get("max_num_patches", 256)))
        else:
            self.preprocess = Preprocess.from_config(cfg)
        self.device = device
        self.model = model.to(device).eval().requires_grad_(False)
        scale = getattr(model, "logit_scale", None)
        temperature = getattr(model, "temperature", None)  # ALIGN: logits = cosine / temperature
        if scale is not None:
            self.logit_scale = float(min(scale.exp().item(), 100.0))
        elif isinstance(temperature, torch.Tensor):
            self.logit_scale = float(min(1.0 / max(temperature.item(), 1e-6), 100.0))
        else:
            self.logit_scale = 100.0
        bias = getattr(model, "logit_bias", None)
        self.logit_bias = float(bias.item()) if bias is not None else 0.0
        self.default_vocabulary = default_vocabulary
        trained = trained_templates(ident)
        if trained:  # a model keeps the templates it was trained with, for text and classes
            self.templates = self.text_templates = trained
        text_cfg = getattr(model.config, "text_config", model.config)
        self._max_len = int(getattr(text_cfg, "max_position_embeddings", 77))
        self._vocab_size = _embedding_rows(model, text_cfg)
        # SigLIP was trained on max-length padded text; its embeddings change with the padding.
        self._pad = "max_length" if "siglip" in self.model_type else True
        vis = getattr(model.config, "vision_config", None)
        native = getattr(vis, "image_size", None)
        self._image_kwargs: dict = {}
        params = inspect.signature(model.get_image_features).parameters
        if (self._patch is None and native is not None and "interpolate_pos_encoding" in params
                and tuple(self.preprocess.output_hw) != (native, native)):
            self._image_kwargs["interpolate_pos_encoding"] = True

    def _image_inputs(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        pixels = pixels.to(self.device)
        if self._patch is not None:
            return _siglip2_patches(pixels, self._patch)
        return {"pixel_values": pixels, **self._image_kwargs}

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            out = self.model.get_image_features(**self._image_inputs(pixels))
        return _features(out).float()

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward_images(pixels)

    @torch.inference_mode()
    def encode_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        warn_long_prompts(self.tokenizer, prompts, self._max_len)
        tok = self.tokenizer(list(prompts), padding=self._pad, truncation=True,
                             max_length=self._max_len, return_tensors="pt")
        check_token_ids(tok["input_ids"], self._vocab_size)
        # Only what the text tower takes (some tokenizers add token_type_ids).
        params = inspect.signature(self.model.get_text_features).parameters
        tok = {k: v.to(self.device) for k, v in tok.items() if k in params}
        with self.autocast():
            out = self.model.get_text_features(**tok)
        return _features(out).float()

    def word_pieces(self, text: str) -> list[list[str]] | None:
        return tokenizer_pieces(self.tokenizer, text)

    def tokenize_text(self, text: str):
        """The fast tokenizer's ids, character offsets and special-token flags of `text`, cut to
        the model's limit as `encode_texts` cuts it; None for a tokenizer without offsets."""
        from .base import TokenizedText

        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return None
        # The backend's padding and truncation are state the tokenizer's own call sets each
        # time; a single text is encoded here with neither, then cut as encode_texts cuts it.
        backend.no_padding()
        backend.enable_truncation(self._max_len)
        try:
            enc = backend.encode(text, add_special_tokens=True)
        finally:
            backend.no_truncation()
        return TokenizedText(tuple(enc.ids), tuple((int(a), int(b)) for a, b in enc.offsets),
                             tuple(bool(m) for m in enc.special_tokens_mask))

    @property
    def text_pad_id(self) -> int | None:  # type: ignore[override]
        """The tokenizer's pad token, unless the text tower would read it as the end of the
        text: CLIP-style towers (a module with an ``eos_token_id``: clip, clipseg, groupvit,
        metaclip_2, aimv2) pool at the first end-of-text token (at the largest id in configs
        older than transformers PR #24773, eos_token_id 2), and CLIP's tokenizer pads with that
        very token, so a word "padded" mid-text would cut the text there. None then: the text
        modality hides such tokens instead. ALIGN (the demo) pools at its first token, so its
        end-of-text pad is harmless."""
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is None:
            return None
        eos = next((m.eos_token_id for m in self.model.modules()
                    if isinstance(getattr(m, "eos_token_id", None), int)), None)
        if eos is not None:
            if eos == 2:  # legacy pooling: argmax of the ids, i.e. the first largest id
                probe = self.tokenize_text("")
                last = max(probe.ids) if probe is not None and probe.ids else None
                if last is None or int(pad) >= last:
                    return None
            elif int(pad) == eos:
                return None
        return int(pad)

    def encode_token_ids(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids, attention_mask = self.pad_token_rows(ids.to(self.device),
                                                    attention_mask.to(self.device))
        check_token_ids(ids, self._vocab_size)
        params = inspect.signature(self.model.get_text_features).parameters
        inputs = {"input_ids": ids}
        if "attention_mask" in params:
            inputs["attention_mask"] = attention_mask.to(self.device)
        with self.autocast():
            out = self.model.get_text_features(**inputs)
        return _features(out).float()

    def pad_token_rows(self, ids: torch.Tensor, mask: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token rows padded exactly as `encode_texts` pads a prompt, so that a composed text
        embeds as the same text typed: the positions after a row's last attended token are
        padding (the pad token); a tower trained on max-length padding (SigLIP: it pools the
        last position) gets every row padded to its limit; and padding is masked only where the
        tokenizer itself returns an attention mask (SigLIP's does not: its tower reads the pad
        tokens, as it was trained). Tokens hidden mid-row (``hide``) keep their mask 0."""
        mask = mask.long()
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if self._pad == "max_length" and ids.shape[1] < self._max_len:
            extra = self._max_len - ids.shape[1]
            ids = F.pad(ids, (0, extra), value=int(pad) if pad is not None else 0)
            mask = F.pad(mask, (0, extra), value=0)
        positions = torch.arange(ids.shape[1], device=ids.device)
        last = torch.where(mask > 0, positions, torch.full_like(positions, -1)).amax(1)
        trailing = positions[None] > last[:, None]
        if pad is not None:
            ids = torch.where(trailing, torch.full_like(ids, int(pad)), ids)
        if "attention_mask" not in getattr(self.tokenizer, "model_input_names", ["attention_mask"]):
            mask = torch.where(trailing, torch.ones_like(mask), mask)
        return ids, mask

    def text_embedding_layer(self) -> torch.nn.Module | None:
        try:
            layer = self.model.get_input_embeddings()
        except (AttributeError, NotImplementedError):
            layer = None
        if layer is None:
            text = getattr(self.model, "text_model", None)
            emb = getattr(text, "embeddings", None)
            layer = getattr(emb, "word_embeddings", None) or getattr(emb, "token_embedding", None)
        return layer if isinstance(layer, torch.nn.Embedding) else None

    def vision_module(self) -> torch.nn.Module | None:
        return getattr(self.model, "vision_model", None)

    def token_grid(self) -> tuple[int, int, int] | None:
        vis = getattr(self.model.config, "vision_config", None)
        patch = self._patch or getattr(vis, "patch_size", None)
        if not patch:
            return None
        h, w = self.preprocess.output_hw
        # CLIP prepends a class token; SigLIP / SigLIP 2 pool with an attention head instead.
        prefix = 0 if "siglip" in self.model_type else 1
        return h // patch, w // patch, prefix

    def describe(self) -> dict:
        return {**super().describe(), "model_type": self.model_type, "logit_bias": self.logit_bias}


@register_adapter("hf", syntax="hf:<hub id or folder>", extra=None, requires=("transformers",),
                  help="transformers CLIP, SigLIP, SigLIP 2 or any AutoModel with image and text "
                       "features, from the hub or a local folder")
def _hf(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    return HFAdapter(arg, device=device, dtype=dtype)
