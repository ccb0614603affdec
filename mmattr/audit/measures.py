"""Dataset-level measures of a classifier's predictions: accuracy with intervals, confusion,
calibration. Pure numpy over (N,) labels and (N, K) probabilities; no model, no files.

Ref. Wilson, "Probable Inference, the Law of Succession, and Statistical Inference", JASA 1927
(score interval); Guo et al., "On Calibration of Modern Neural Networks", ICML 2017 (ECE,
reliability diagram).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def wilson_interval(successes: int | np.ndarray, n: int | np.ndarray, z: float = 1.96
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion (95 % for z = 1.96); (0, 1) when n = 0.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n successes,
    which small classes and slices often are.
    """
    k = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    safe = np.maximum(m, 1.0)
    p = k / safe
    denom = 1.0 + z * z / safe
    centre = (p + z * z / (2 * safe)) / denom
    half = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe)) / denom
    lo = np.where(m > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    hi = np.where(m > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return lo, hi


@dataclass(frozen=True)
class ClassAccuracy:
    name: str
    support: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float


def per_class_accuracy(labels: np.ndarray, preds: np.ndarray, names: list[str]
                       ) -> list[ClassAccuracy]:
    """Accuracy and Wilson interval of every class that has at least one image."""
    k = len(names)
    support = np.bincount(labels, minlength=k)
    correct = np.bincount(labels[preds == labels], minlength=k)
    lo, hi = wilson_interval(correct, support)
    return [ClassAccuracy(names[c], int(support[c]), int(correct[c]),
                          float(correct[c] / support[c]), float(lo[c]), float(hi[c]))
            for c in range(k) if support[c] > 0]


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """(K, K) counts, rows the true class, columns the predicted one."""
    return np.bincount(labels * k + preds, minlength=k * k).reshape(k, k)


def most_confused_pairs(confusion: np.ndarray, names: list[str], top: int = 10) -> list[dict]:
    """Off-diagonal cells by count (true → predicted), largest first, with the share of the
    true class's images they hold."""
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:top]
    rows = confusion.sum(axis=1)
    pairs = []
    for idx in flat:
        t, p = divmod(int(idx), confusion.shape[1])
        if off[t, p] == 0:
            break
        pairs.append({"true": names[t], "predicted": names[p], "count": int(off[t, p]),
                      "share_of_true": float(off[t, p] / rows[t])})
    return pairs


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error over equal-width confidence bins, and the diagram's data."""

    ece: float
    mce: float
    n_bins: int
    bin_edges: list[float]
    bin_count: list[int]
    bin_confidence: list[float]
    bin_accuracy: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def calibration(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> Calibration:
    """ECE = Σ_b (n_b / N)·|acc_b − conf_b| over `n_bins` equal-width bins of the top-1
    confidence (Guo et al. 2017; bins are (lo, hi], the first [0, hi]). MCE is the largest gap."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins: a confidence of exactly 1.0 falls in the last bin, 0.0 in the first
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(which, weights=ok, minlength=n_bins)
    safe = np.maximum(count, 1)
    mean_conf = conf_sum / safe
    mean_acc = acc_sum / safe
    gap = np.abs(mean_acc - mean_conf)
    n = max(len(conf), 1)
    ece = float((count / n * gap).sum())
    mce = float(gap[count > 0].max()) if count.any() else 0.0
    return Calibration(ece, mce, n_bins, edges.tolist(), count.tolist(),
                       [float(c) if m else float("nan") for c, m in zip(mean_conf, count)],
                       [float(a) if m else float("nan") for a, m in zip(mean_acc, count)])
