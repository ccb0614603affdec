"""Zero-shot (or classifier-head) predictions from cached image embeddings.

The audit's thin wrapper over the library's one zero-shot function, `zeroshot.predict`, for
embeddings read from the on-disk cache.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..adapters.base import Adapter


def class_logits(adapter: Adapter, emb: np.ndarray | torch.Tensor, classes: Sequence[str],
                 batch_size: int = 4096) -> np.ndarray:
    """(N, K) logits of N image embeddings over `classes`, from the library's one zero-shot
    function (`zeroshot.predict`): a contrastive model's template-averaged class embeddings ×
    logit_scale, or a classifier's own head. Chunked, so memory stays flat in N."""
    from ..zeroshot import predict

    with torch.inference_mode():
        vocab = adapter.class_embeddings(list(classes))
        x = torch.as_tensor(np.asarray(emb), dtype=torch.float32)
        step = max(1, int(batch_size))
        out = [predict(adapter, x[i:i + step].to(vocab.device), vocab).logits.float().cpu()
               for i in range(0, len(x), step)]
    return torch.cat(out).numpy() if out else np.zeros((0, len(classes)), np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def phrase_embeddings(adapter: Adapter, phrases: Sequence[str], chunk: int = 256) -> np.ndarray | None:
    """(P, D) unit-norm embeddings of the phrases as written (no template: an attribute such as
    'on a striped background' is no class name); None for models without a text tower."""
    if adapter.class_names is not None:
        return None
    with torch.inference_mode():
        parts = [torch.nn.functional.normalize(adapter.encode_texts(list(phrases[i:i + chunk])).float(), dim=-1)
                 for i in range(0, len(phrases), chunk)]
    return torch.cat(parts).cpu().numpy()
