"""The adapter concept: a model turned into an embedding function for images and targets."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError, ModelError, arg
from ..registry import Registry
from ..targets import Target
from ..vocabulary import DEFAULT_TEMPLATES
from ..preprocess import Preprocess


@dataclass(frozen=True)
class TokenizedText:
    """One text as the text tower's tokenizer reads it: token ids with the special tokens, each
    token's (start, end) character span in the text ((0, 0) for special tokens) and which are
    special. What the text modality needs to remove a word at the token level."""

    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]
    special: tuple[bool, ...]


class Adapter(ABC):
    """Encodes preprocessed image batches and targets into one embedding space.

    Subclasses implement `encode_images`; text models also implement `encode_texts`.
    `preprocess` turns uint8 images into model input and is linear in its geometric part.
    """

    #: the spec it was loaded from, e.g. ``demo`` or ``hf:/path/to/folder``
    spec: str = ""
    preprocess: Preprocess
    device: torch.device = torch.device("cpu")
    #: autocast dtype on accelerators; None keeps float32
    autocast_dtype: torch.dtype | None = None
    #: the vocabulary used for probability scores when the user gives none
    default_vocabulary: str | None = None
    #: multiplies cosine similarities into logits for the probability scores
    logit_scale: float = 100.0
    #: templates a class name is put into (vocabularies, class targets); averaged
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    #: templates for a free-text target: none (the prompt as it is) unless the model was
    #: trained with some (a checkpoint's training.json "templates"); ``templates`` overrides both
    text_templates: tuple[str, ...] = ("{}",)
    #: a classifier's own class names (index → name); None for open-vocabulary models
    class_names: list[str] | None = None

    @abstractmethod
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) normalised model input → (B, D) embeddings (any norm)."""

    def encode_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        """(P,) prompts → (P, D) embeddings; only models with a text tower have it."""
        raise ModelError(f"model {self.spec!r} has no text encoder: it cannot take a text target")

    def word_pieces(self, text: str) -> list[list[str]] | None:
        """The text tokenizer's pieces of each whitespace-separated word of `text` (no special
        tokens), with its unknown token as ``None``; None when the model has no tokenizer this
        can read. The audit uses it to keep names made of words the model cannot read out."""
        return None

    def tokenize_text(self, text: str) -> TokenizedText | None:
        """Token access for the text modality: `text` as the text tower's tokenizer reads it
        (special tokens added, cut to the model's limit); None when the model gives none (the
        text modality then removes words by dropping them from the string)."""
        return None

    #: the tokenizer's pad token id, for removing a token by padding it (token access only)
    text_pad_id: int | None = None

    def encode_token_ids(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids and attention mask → (B, D) text embeddings (token access only)."""
        raise ModelError(f"model {self.spec!r} gives no token access to its text tower")

    def pad_token_rows(self, ids: torch.Tensor, attention_mask: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) token rows padded as the model pads a typed prompt (length, pad token, which
        pads are masked), so `encode_token_ids` embeds a composed text as the same text typed;
        idempotent. The rows as given by default; `encode_token_ids` applies it."""
        return ids, attention_mask

    def text_embedding_layer(self) -> torch.nn.Module | None:
        """The text tower's token embedding table (an ``nn.Embedding``), for gradients on token
        embeddings; None when hidden."""
        return None

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Differentiable (B, D) embeddings, for gradient-based methods; same values as
        `encode_images`. Adapters whose `encode_images` runs under inference mode override it."""
        return self.encode_images(pixels)

    @torch.inference_mode()
    def encode_target(self, target: Target) -> torch.Tensor:
        """The unit-norm (D,) embedding of a target.

        Text: templates averaged, then prompts averaged. Class: its name as a text prompt
        (classifier adapters override this). Image: the reference image's embedding.
        Embedding: the vector itself, checked against the model's dimension.
        """
        if target.kind == "text":
            return self.class_embeddings([list(target.texts)], templates=self.text_templates)[0]
        if target.kind == "class":
            if not isinstance(target.class_name, str):
                raise ModelError(f"model {self.spec!r} has no class list: give the class by name")
            return self.class_embeddings([target.class_name])[0]
        if target.kind == "image":
            from ..image import load_image

            image = target.pixels if target.pixels is not None else load_image(target.image)
            pixels = torch.from_numpy(np.array(image, copy=True))[None].to(self.device)
            return F.normalize(self.encode_images(self.preprocess(pixels)).float(), dim=-1)[0]
        if target.kind == "embedding":
            vec = torch.as_tensor(target.embedding, dtype=torch.float32, device=self.device)
            if vec.shape[0] != self.embed_dim:
                raise ModelError(f"the target embedding has {vec.shape[0]} dimensions, model "
                                 f"{self.spec!r} embeds into {self.embed_dim}")
            return F.normalize(vec, dim=0)
        raise ModelError(f"model {self.spec!r} cannot encode a target of kind {target.kind!r}")

    @property
    def embed_dim(self) -> int:
        """The embedding dimension D, measured once on a black image."""
        if getattr(self, "_embed_dim", None) is None:
            h, w = self.preprocess.output_hw
            with torch.inference_mode():
                probe = self.encode_images(torch.zeros(1, 3, h, w, device=self.device))
            self._embed_dim = int(probe.shape[-1])
        return self._embed_dim

    @torch.inference_mode()
    def class_embeddings(self, classes: Sequence[str | Sequence[str]],
                         chunk: int = 256, templates: Sequence[str] | None = None) -> torch.Tensor:
        """(K, D) unit-norm class embeddings: each class's prompts × templates (default
        `self.templates`) averaged."""
        prompts: list[str] = []
        owner: list[int] = []
        for k, cls in enumerate(classes):
            names = [cls] if isinstance(cls, str) else list(cls)
            for name in names:
                for template in (self.templates if templates is None else templates):
                    prompts.append(template.format(name))
                    owner.append(k)
        emb = torch.cat([F.normalize(self.encode_texts(prompts[i:i + chunk]).float(), dim=-1)
                         for i in range(0, len(prompts), chunk)])
        index = torch.tensor(owner, device=emb.device)
        sums = torch.zeros(len(classes), emb.shape[1], device=emb.device).index_add_(0, index, emb)
        return F.normalize(sums, dim=-1)

    def logits(self, emb: torch.Tensor, vocabulary: torch.Tensor) -> torch.Tensor:
        """(B, D) image embeddings, (K, D) `class_embeddings` → (B, K) logits for a softmax over
        the vocabulary. Contrastive models: logit_scale · cosine (the reference's zero-shot
        scores; a constant bias such as SigLIP's cancels in the softmax). Classifiers override it
        with their head's exact logits."""
        return self.logit_scale * F.normalize(emb.float(), dim=-1) @ vocabulary.T.to(torch.float32)

    def vocabulary_label(self, target: Target) -> str:
        """The name under which the target appears in a vocabulary (a classifier maps an index
        to its class name, so the target is not appended to its own class list twice)."""
        return target.label

    def vision_module(self) -> torch.nn.Module | None:
        """The image tower as a torch module (for CAM hooks and gradients); None when hidden."""
        return None

    def token_grid(self) -> tuple[int, int, int] | None:
        """For ViT towers: (rows, cols, prefix tokens) of the patch-token sequence at the
        model's input size, read from its config (CAM methods drop the prefix, reshape the
        rest); None for CNNs or when unknown."""
        return None

    def autocast(self):
        """Mixed precision on accelerators, a no-op on the CPU."""
        if self.autocast_dtype is None or self.device.type == "cpu":
            return torch.autocast(device_type="cpu", enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def describe(self) -> dict:
        """Settings that identify the model in an output file."""
        return {"spec": self.spec, "class": type(self).__name__, "device": str(self.device),
                "input_size": list(self.preprocess.output_hw), "templates": list(self.templates),
                "text_templates": list(self.text_templates),
                "logit_scale": self.logit_scale,
                "dtype": str(self.autocast_dtype).replace("torch.", "") if self.autocast_dtype else "fp32"}


_DTYPES = {"auto": None, "fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def autocast_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``--dtype`` on a device: None (float32) on the CPU and for
    fp32; ``auto`` keeps float32 too, so results match across machines unless asked."""
    if dtype not in _DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; use fp32, fp16 or bf16")
    return _DTYPES[dtype] if device.type != "cpu" else None


# -- the registry of model families ----------------------------------------------------------

@dataclass(frozen=True)
class AdapterFamily:
    """A registered model family: how to build an adapter from the part of the spec after ':'."""

    name: str
    factory: Callable[..., Adapter]
    syntax: str
    extra: str | None
    requires: tuple[str, ...]
    help: str
    #: the command that installs what `requires` names, when it is not a pip extra of mmattr
    install: str | None = None


ADAPTERS: Registry[AdapterFamily] = Registry("model family")


def register_adapter(name: str, *, syntax: str, help: str, extra: str | None = None,
                     requires: tuple[str, ...] = (), install: str | None = None) -> Callable:
    """Register a factory ``f(arg: str, device: torch.device, dtype: str) -> Adapter``."""

    def decorator(factory: Callable[..., Adapter]) -> Callable[..., Adapter]:
        ADAPTERS.register(name, help=help)(AdapterFamily(name, factory, syntax, extra, requires,
                                                         help, install))
        return factory

    return decorator


def list_adapters() -> list[str]:
    return ADAPTERS.names()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"{arg('device', device)} was asked for but no CUDA device is available")
    if device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise InputError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def split_spec(spec: str) -> tuple[str, str]:
    """``hf:/a/b`` → (``hf``, ``/a/b``); ``demo`` → (``demo``, ``'')."""
    if not spec or not spec.strip():
        raise InputError(f"the model spec is empty; try {arg('model', 'demo')}")
    name, _, rest = spec.partition(":")
    return name.strip(), rest.strip()
