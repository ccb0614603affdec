"""The audit's significance tests: one-sided binomial tests of an error count, two-proportion
tests between groups, and Benjamini-Hochberg false-discovery control over every test an audit
runs. Pure numpy / scipy, no model.

Ref. Benjamini and Hochberg, "Controlling the False Discovery Rate: A Practical and Powerful
Approach to Multiple Testing", JRSS B 1995; Chung et al., "Slice Finder: Automated Data Slicing
for Model Validation", ICDE 2019 (slices as hypotheses tested with false-discovery control).
"""

from __future__ import annotations

import numpy as np


def excess_errors_p(errors: int, n: int, rate: float) -> float:
    """P(at least `errors` mistakes among `n` images) when each is wrong with probability
    `rate` independently: the one-sided binomial test that a group fails more often than
    `rate`. 1.0 for an empty group; 0.0 only when the rate is 0 and a mistake was seen."""
    from scipy.stats import binom

    if n <= 0 or errors <= 0:
        return 1.0
    rate = float(np.clip(rate, 0.0, 1.0))
    return float(binom.sf(errors - 1, n, rate))


def group_vs_rest_p(errors: int, n: int, errors_all: int, n_all: int) -> float:
    """One-sided test that a group of `n` images with `errors` mistakes fails more often than
    the other `n_all - n` images: Fisher's exact test (hypergeometric), which, unlike a
    binomial test against the rest's observed rate, knows that rate is itself an estimate (one
    mistake in a class of 8 is not significant when the other 292 images have none)."""
    from scipy.stats import fisher_exact

    rest_n, rest_e = n_all - n, errors_all - errors
    if n <= 0 or errors <= 0 or rest_n <= 0:
        return 1.0
    return float(fisher_exact([[errors, n - errors], [rest_e, rest_n - rest_e]],
                              alternative="greater")[1])


def same_rate_p(e1: int, n1: int, e2: int, n2: int) -> float:
    """Two-sided Fisher exact test that two groups have the same error rate (1.0 when either
    group is empty)."""
    from scipy.stats import fisher_exact

    if n1 <= 0 or n2 <= 0:
        return 1.0
    return float(fisher_exact([[e1, n1 - e1], [e2, n2 - e2]])[1])


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values): a hypothesis is a discovery at false
    discovery rate α when its q ≤ α. Same order as the input; NaN stays NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if not m:
        return q
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q[order] = np.minimum(ranked, 1.0)
    return q


def format_p(p: float | None) -> str:
    """A p- or q-value as a person reads it: 'q < 1e-6', '0.003', '0.41'."""
    if p is None or not np.isfinite(p):
        return "n/a"
    if p < 1e-6:
        return "< 1e-6"
    if p < 0.001:
        return f"{p:.0e}"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"
