"""Synthetic worlds shared by the audit's known-answer tests (a unique module name: a second
conftest would clash when test folders are selected together)."""

from __future__ import annotations

import numpy as np


def cue_world(seed: int, per: int = 40, k: int = 6, dim: int = 32, cue_scale: float = 2.0,
              p_cue: float = 0.9, p_rest: float = 0.03):
    """k classes; a quarter of every class carries a cue (one direction, whatever the class)
    on which the model fails with probability `p_cue` (`p_rest` elsewhere). Returns the
    embeddings, labels, predictions (a mistake is the next class), correct mask and cue mask."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (k, dim)) * 4
    labels = np.repeat(np.arange(k), per)
    cue = np.zeros(len(labels), bool)
    for c in range(k):
        cue[np.flatnonzero(labels == c)[: per // 4]] = True
    direction = rng.normal(0, 1, dim)
    direction *= cue_scale * 4 / np.linalg.norm(direction)
    emb = centres[labels] + rng.normal(0, 1, (len(labels), dim)) + cue[:, None] * direction
    correct = rng.random(len(labels)) >= np.where(cue, p_cue, p_rest)
    preds = np.where(correct, labels, (labels + 1) % k)
    return emb, labels, preds, correct, cue
