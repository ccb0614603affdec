"""Which labels are likely wrong, and which mistakes the model makes with confidence.

Ref. Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 2021 (per-class thresholds, the confident joint, self-confidence ranking).
"""

from __future__ import annotations

import numpy as np


def class_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """t_j = mean p_j over the images labelled j (confident learning's per-class threshold);
    classes without images get 1, so nothing is ever counted confidently in them."""
    k = probs.shape[1]
    count = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros(k)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    return np.where(count > 0, sums / np.maximum(count, 1), 1.0)


def confident_labels(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The class each image confidently belongs to (−1 when none): among the classes whose
    probability reaches their threshold, the most probable. This fills the confident joint."""
    t = class_thresholds(probs, labels)
    above = probs >= t[None, :]
    masked = np.where(above, probs, -np.inf)
    best = masked.argmax(axis=1)
    return np.where(above.any(axis=1), best, -1)


def label_issue_scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per image: ``self_confidence`` p_label (low = suspicious), ``mistakenness`` in [0, 1]
    ((1 + max_{j≠y} p_j − p_y) / 2, the normalised margin against the given label: above 0.5
    the model prefers another class), ``confident_class`` (−1 for none) and ``is_issue``:
    the confident joint puts the image off its label's diagonal cell."""
    n = len(labels)
    p_label = probs[np.arange(n), labels]
    others = probs.copy()
    others[np.arange(n), labels] = -np.inf
    margin = others.max(axis=1) - p_label
    confident = confident_labels(probs, labels)
    return {"self_confidence": p_label, "mistakenness": (1.0 + margin) / 2.0,
            "confident_class": confident, "is_issue": (confident >= 0) & (confident != labels)}


def confident_mistakes(preds: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
                       top: int = 12) -> np.ndarray:
    """Indices of wrong predictions, most confident first."""
    wrong = np.flatnonzero(preds != labels)
    return wrong[np.argsort(-confidence[wrong], kind="stable")][:top]


def likely_label_errors(scores: dict[str, np.ndarray], top: int = 12) -> np.ndarray:
    """Indices the confident joint flags, most mistaken first."""
    flagged = np.flatnonzero(scores["is_issue"])
    return flagged[np.argsort(-scores["mistakenness"][flagged], kind="stable")][:top]
