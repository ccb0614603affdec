"""Zero-shot accuracy of a CLIP checkpoint on held-out synthetic single-object scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmattr.preprocess import Preprocess
from mmattr.datasets.shapes import captions, render_scene
from mmattr.vocabulary import DEFAULT_TEMPLATES
from mmattr.zeroshot import predict

__all__ = ["zero_shot_accuracy"]


def _features(out) -> torch.Tensor:
    # transformers may return a tensor or a model output, depending on version.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@torch.no_grad()
def zero_shot_accuracy(model_dir: str | Path, n: int = 360, seed: int = 10_000,
                       size: int = 128) -> float:
    """Top-1 accuracy over the 36 captions with template-averaged text embeddings.

    Scene ``i`` is rendered from ``SeedSequence((seed, i))`` with a single object.
    """
    from transformers import AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return accuracy(model, tokenizer, Preprocess.from_folder(model_dir), n=n, seed=seed, size=size)


@torch.no_grad()
def accuracy(model, tokenizer, preprocess: Preprocess, n: int = 360, seed: int = 10_000,
             size: int = 128) -> float:
    """Same as :func:`zero_shot_accuracy` for an in-memory model (used to monitor training)."""
    was_training = model.training
    model.eval()
    classes = captions()
    class_emb = 0
    for template in DEFAULT_TEMPLATES:
        enc = tokenizer([template.format(c) for c in classes], padding=True, return_tensors="pt")
        class_emb = class_emb + F.normalize(_features(model.get_text_features(**enc)), dim=-1)
    class_emb = F.normalize(class_emb, dim=-1)

    index = {c: i for i, c in enumerate(classes)}
    correct = 0
    for start in range(0, n, 64):
        scenes = [render_scene(np.random.default_rng((seed, i)), size=size, n_objects=1)
                  for i in range(start, min(n, start + 64))]
        pixels = preprocess(torch.from_numpy(np.stack([s.image for s in scenes])))
        img = _features(model.get_image_features(pixel_values=pixels))
        pred = predict(None, img, class_emb).top1
        labels = torch.tensor([index[s.labels[0]] for s in scenes])
        correct += int((pred == labels).sum())
    model.train(was_training)
    return correct / n
