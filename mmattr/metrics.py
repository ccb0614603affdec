"""Faithfulness metrics. Insertion / deletion follow METHOD.md section 3.

Ref. Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box Models",
BMVC 2018 (insertion and deletion).
"""

from __future__ import annotations

import numpy as np


def auc(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> float:
    """Area under y(x) by the trapezoid rule, x increasing (a fraction of pixels in [0, 1])."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError("auc needs two 1-D arrays of the same length, at least 2 points")
    if np.any(np.diff(x) < 0):
        raise ValueError("auc needs x in increasing order")
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
