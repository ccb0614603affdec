"""The adapter concept: a model turned into an embedding function for images and targets."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import ModelError
from ..targets import Target
from ..vocabulary import DEFAULT_TEMPLATES
from ._preprocess import Preprocess


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
    templates: tuple[str, ...] = DEFAULT_TEMPLATES

    @abstractmethod
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) normalised model input → (B, D) embeddings (any norm)."""

    def encode_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        """(P,) prompts → (P, D) embeddings; only models with a text tower have it."""
        raise ModelError(f"model {self.spec!r} has no text encoder: it cannot take a text target")

    def encode_target(self, target: Target) -> torch.Tensor:
        """The unit-norm (D,) embedding of a target: templates averaged, then prompts averaged."""
        if target.kind == "text":
            return self.class_embeddings([list(target.texts)])[0]
        raise ModelError(f"model {self.spec!r} cannot encode a target of kind {target.kind!r}")

    @torch.inference_mode()
    def class_embeddings(self, classes: Sequence[str | Sequence[str]],
                         chunk: int = 256) -> torch.Tensor:
        """(K, D) unit-norm class embeddings: each class's prompts × templates averaged."""
        prompts: list[str] = []
        owner: list[int] = []
        for k, cls in enumerate(classes):
            names = [cls] if isinstance(cls, str) else list(cls)
            for name in names:
                for template in self.templates:
                    prompts.append(template.format(name))
                    owner.append(k)
        emb = torch.cat([F.normalize(self.encode_texts(prompts[i:i + chunk]).float(), dim=-1)
                         for i in range(0, len(prompts), chunk)])
        index = torch.tensor(owner, device=emb.device)
        sums = torch.zeros(len(classes), emb.shape[1], device=emb.device).index_add_(0, index, emb)
        return F.normalize(sums, dim=-1)

    def autocast(self):
        """Mixed precision on accelerators, a no-op on the CPU."""
        if self.autocast_dtype is None or self.device.type == "cpu":
            return torch.autocast(device_type="cpu", enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def describe(self) -> dict:
        """Settings that identify the model in an output file."""
        return {"spec": self.spec, "class": type(self).__name__, "device": str(self.device),
                "input_size": list(self.preprocess.output_hw), "templates": list(self.templates),
                "logit_scale": self.logit_scale}
