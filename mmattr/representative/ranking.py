"""Ranking the images a region covers by their semantic distance to x (eq. 6).

Dist(x, x') = Σ_{h ∈ P(x)} |⟨W_h, ψ(x)⟩ - ⟨W_h, ψ(x')⟩|: the L1 distance between the
projections of the feature maps onto the normals of the region's boundaries.

Ref. Lam et al., "Finding Representative Interpretations on Convolutional Neural Networks",
ICCV 2021 (eq. 6).
"""

from __future__ import annotations

import numpy as np


def semantic_distance(proj_x: np.ndarray, proj_refs: np.ndarray) -> np.ndarray:
    """proj_x: (P,) ⟨W_h, ψ(x)⟩; proj_refs: (P, M) the same for M images → (M,) distances."""
    return np.abs(np.asarray(proj_refs, np.float64)
                  - np.asarray(proj_x, np.float64)[:, None]).sum(axis=0)


def rank_covered(proj_x: np.ndarray, proj_refs: np.ndarray, covered: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the covered images, nearest first; their distances); ties keep index order."""
    idx = np.flatnonzero(covered)
    dist = semantic_distance(proj_x, np.asarray(proj_refs)[:, idx])
    order = np.argsort(dist, kind="stable")
    return idx[order], dist[order]
