"""Ranking pixels (or cells, or regions) by saliency: the one implementation every curve,
localisation metric and division uses.

Rank 0 is the most salient; ties keep raster order (a stable sort), so every consumer of the
same map agrees on the same order, on any machine.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

A = TypeVar("A")


def pixel_rank(saliency: A) -> A:
    """A map of any shape (numpy array or torch tensor) → the same shape of int64 ranks,
    0 = most salient, ties in raster order; NaNs rank last. Torch tensors stay on their device."""
    if isinstance(saliency, np.ndarray) or not hasattr(saliency, "argsort"):
        s = np.nan_to_num(np.asarray(saliency, np.float64), nan=-np.inf)
        rank = np.empty(s.size, np.int64)
        rank[np.argsort(-s.ravel(), kind="stable")] = np.arange(s.size)
        return rank.reshape(s.shape)  # type: ignore[return-value]
    import torch

    flat = torch.nan_to_num(saliency.reshape(-1).float(), nan=float("-inf"))
    order = torch.argsort(flat, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(flat.numel(), device=flat.device)
    return rank.view(saliency.shape)  # type: ignore[return-value]


def top_fraction(saliency: A, fraction: float) -> A:
    """Boolean mask of the `fraction` most salient entries (round(fraction · size) of them)."""
    rank = pixel_rank(saliency)
    k = int(round(float(fraction) * rank.size if isinstance(rank, np.ndarray) else fraction * rank.numel()))
    return rank < k  # type: ignore[operator,return-value]
