"""Score functions for the metrics: a batch of images → the model's score for one target.

The three scores of METHOD.md section 3: ``probability`` (softmax over a vocabulary of class
embeddings, read at the target), ``cosine`` (to the target embedding) and ``logit``
(logit_scale · cosine, CLIP's logit for the target before the softmax).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..adapters.base import Adapter
from ..errors import InputError, arg
from ..objective import target_match
from ..targets import Target
from ..vocabulary import build_vocabulary
from ..zeroshot import embed_images, predict

SCORES = ("probability", "cosine", "logit")


class TargetScore:
    """(B, 3, H, W) images in [0, 1] pixel space → (B,) scores, chunked by `batch_size`.

    `score`: one of `SCORES`, or ``auto``: probability when a vocabulary exists, else cosine.

    Preprocessing (resize, crop, normalise) runs on the device, so callers hand over raw
    perturbed images at the image's own resolution. Counts the images it encodes.
    """

    def __init__(self, adapter: Adapter, target: Target | torch.Tensor, score: str = "probability",
                 vocabulary: str | None = None, batch_size: int = 64) -> None:
        if score not in SCORES and score != "auto":
            raise InputError(f"unknown score {score!r}; use {', '.join(SCORES)}")
        self.adapter = adapter
        self.score = score
        self.batch_size = max(1, int(batch_size))
        self.forward_passes = 0
        self.names: list[str] | None = None
        self.target_index: int | None = None
        self.vocab_emb: torch.Tensor | None = None
        self.vocabulary_source = "none"
        with torch.inference_mode():
            if isinstance(target, torch.Tensor):
                self.target_emb = F.normalize(target.float().to(adapter.device), dim=0)
            else:
                self.target_emb = adapter.encode_target(target).float().to(adapter.device)
                self._vocabulary(target, vocabulary)
        if score == "auto":  # as the explanations' curves: probability when there are classes
            self.score = "probability" if self.vocab_emb is not None else "cosine"
        if score == "probability" and self.vocab_emb is None:
            raise InputError(f"the probability score needs a vocabulary "
                             f"({arg('vocabulary', 'FILE')}, or a model with a default one); "
                             f"use {arg('score', 'cosine')} otherwise")

    def _vocabulary(self, target: Target, spec: str | None) -> None:
        # The explainers build theirs the same way, so their curves and these metrics agree.
        vocab = build_vocabulary(spec, target, self.adapter, self.target_emb)
        if vocab is not None:
            self.names, self.target_index, self.vocab_emb = (vocab.names, vocab.target_index,
                                                             vocab.embeddings)
            self.vocabulary_source = vocab.source

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixel-space images → (B, D) unit-norm embeddings, counted."""
        def count(n: int) -> None:
            self.forward_passes += n
        return embed_images(self.adapter, images, self.batch_size, on_batch=count)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        emb = self.embed(images)
        if self.score == "logit":
            return self.adapter.logit_scale * (emb @ self.target_emb)
        return target_match(emb, self.score, self.target_emb, self.vocab_emb, self.target_index,
                            self.adapter.logit_scale, self.adapter.logits)

    def predict(self, images: torch.Tensor) -> list[str] | None:
        """Top-1 vocabulary entry of each image (`mmattr.zeroshot.predict`); None without a
        vocabulary."""
        if self.vocab_emb is None or self.names is None:
            return None
        return predict(self.adapter, self.embed(images), self.vocab_emb).labels(self.names)


def image_tensor(image: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 or (3, H, W) float in [0, 1] → (3, H, W) float32 in [0, 1] on `device`."""
    if isinstance(image, torch.Tensor):
        t = image.to(device)
        if t.ndim == 3 and t.shape[0] != 3 and t.shape[-1] == 3:
            t = t.permute(2, 0, 1)
        return t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    arr = np.asarray(image)
    if arr.ndim != 3:
        raise InputError(f"an image must be (H, W, 3) or (3, H, W), got {arr.shape}")
    t = torch.from_numpy(np.array(arr, copy=True)).to(device)  # load_image arrays may be read-only
    if t.shape[-1] == 3 and t.shape[0] != 3:
        t = t.permute(2, 0, 1)
    return t.float() / 255.0 if arr.dtype == np.uint8 else t.float()
