"""Zero-shot prediction: images (or their embeddings) against class embeddings, batched.

The one implementation every command uses: the metrics' `TargetScore.predict` (and through it
`mmattr evaluate`'s ``predicted`` column), the demo model's accuracy check, and the audit.

    >>> from mmattr import load_adapter, zeroshot
    >>> adapter = load_adapter("demo")
    >>> classes = adapter.class_embeddings(["a red circle", "a blue square"])
    >>> out = zeroshot.predict(adapter, images, classes)   # images: (B, 3, H, W) in [0, 1]
    >>> out.top1, out.probabilities

Ref. Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
ICML 2021 (zero-shot classification: softmax over logit_scale · cosine to class embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

from .errors import InputError

if TYPE_CHECKING:
    from .adapters.base import Adapter


@dataclass(frozen=True)
class Prediction:
    """(B, K) logits and softmax probabilities, and the (B,) top-1 class index."""

    logits: torch.Tensor
    probabilities: torch.Tensor
    top1: torch.Tensor

    def labels(self, names: list[str]) -> list[str]:
        """The top-1 class names."""
        return [names[i] for i in self.top1.tolist()]


def as_pixels(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) or (B, H, W, 3), uint8 or float in [0, 1] → (B, 3, H, W) float in [0, 1]."""
    if images.ndim != 4:
        raise InputError(f"images must be a (B, 3, H, W) or (B, H, W, 3) batch, got {tuple(images.shape)}")
    if images.shape[1] != 3 and images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def embed_images(adapter: "Adapter", images: torch.Tensor, batch_size: int = 64,
                 on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
    """Raw images (any size, pixel space) → (B, D) unit-norm embeddings.

    Preprocessing (resize, crop, normalise) runs on the adapter's device, `batch_size` images
    per forward pass; `on_batch(n)` is told each pass's size (for forward-pass counts).
    """
    pre = adapter.preprocess
    outs = []
    with torch.inference_mode():
        for start in range(0, images.shape[0], max(1, int(batch_size))):
            chunk = as_pixels(images[start:start + batch_size].to(adapter.device))
            if on_batch is not None:
                on_batch(chunk.shape[0])
            with adapter.autocast():
                emb = adapter.encode_images(pre.normalize(pre.geometry(chunk)))
            outs.append(F.normalize(emb.float(), dim=-1))
    return torch.cat(outs)


def predict(adapter: "Adapter | None", images_or_embeddings: torch.Tensor,
            class_embeddings: torch.Tensor, *, batch_size: int = 64,
            logit_scale: float | None = None) -> Prediction:
    """Zero-shot class scores of a batch.

    `images_or_embeddings`: a 4-D image batch (encoded with `adapter`, see `embed_images`) or
    (B, D) image embeddings. `class_embeddings`: (K, D), e.g. `Adapter.class_embeddings`.
    Logits are the adapter's own (`Adapter.logits`: logit_scale · cosine for contrastive
    models, a classifier's head); with no adapter, `logit_scale` (default 100) · cosine.
    """
    x = images_or_embeddings
    if x.ndim == 4:
        if adapter is None:
            raise InputError("zero-shot prediction from images needs an adapter")
        emb = embed_images(adapter, x, batch_size)
    elif x.ndim == 2:
        emb = F.normalize(x.float(), dim=-1)
    else:
        raise InputError(f"expected images (B, 3, H, W) or embeddings (B, D), got {tuple(x.shape)}")
    vocab = class_embeddings.to(emb.device)
    with torch.inference_mode():
        if adapter is not None and logit_scale is None:
            logits = adapter.logits(emb, vocab).float()
        else:
            scale = 100.0 if logit_scale is None else float(logit_scale)
            logits = scale * emb @ F.normalize(vocab.float(), dim=-1).T
    return Prediction(logits, logits.softmax(-1), logits.argmax(-1))
