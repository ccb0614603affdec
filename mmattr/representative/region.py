"""The decision region P(x): greedy for the submodular-cost submodular-cover problem (eq. 3-4).

Given which side of every sampled boundary each reference image lies on, P(x) ⊆ Q is grown one
boundary at a time; the reference images covered by P(x) are those on x's side of every
boundary in it. Each step adds the boundary minimising eq. 4, (covered images it cuts off) /
(covered other-class images it cuts off); the paper's numerator counts every reference image
cut off, which is the same-class count plus the denominator, so the ratio is the same-class
ratio plus one: the same choice. Among boundaries cutting off no same-class image the one
cutting off most other-class images wins (the paper's tie rule); remaining ties go to the lowest
index. The loop stops when at most δ other-class images remain covered; δ defaults to τ(x), the
count left when P(x) = Q, so the problem is always feasible. Boundaries whose removal would not
change the covered set are dropped afterwards (as the authors' code does).

Ref. Lam et al., "Finding Representative Interpretations on Convolutional Neural Networks",
ICCV 2021 (eq. 3-4, Algorithm 1); Iyer and Bilmes, "Submodular Optimization with Submodular
Cover and Submodular Knapsack Constraints", NeurIPS 2013.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Region:
    """P(x): chosen boundaries (indices into Q, greedy order), x's side of each, covered set."""

    boundaries: list[int]
    sides: np.ndarray        # (P,) bool: x on the positive side of each chosen boundary
    covered: np.ndarray      # (N,) bool over the reference images
    delta: int               # δ used (≥ τ)
    tau: int                 # τ(x): other-class images covered by P(x) = Q
    other_covered: int       # other-class images covered by P(x) (≤ δ)


def greedy_region(same_side: np.ndarray, other: np.ndarray, x_side: np.ndarray,
                  delta: int | None = None, prune: bool = True) -> Region:
    """Eq. 4's greedy.

    same_side: (Q, N) bool, reference n on x's side of boundary q. other: (N,) bool, reference
    predicted another class than x (the set D(x)). x_side: (Q,) bool, x's side. delta: δ (None:
    τ(x); a smaller δ is raised to τ(x), since nothing smaller is feasible).
    """
    same_side = np.asarray(same_side, dtype=bool)
    other = np.asarray(other, dtype=bool)
    q_count, n = same_side.shape
    tau = int((same_side.all(axis=0) & other).sum()) if q_count else int(other.sum())
    delta_used = tau if delta is None else max(int(delta), tau)
    covered = np.ones(n, dtype=bool)
    chosen: list[int] = []
    free = np.ones(q_count, dtype=bool)
    while int((covered & other).sum()) > delta_used:
        cut = covered[None, :] & ~same_side                    # (Q, N): cut off if added
        den = (cut & other[None, :]).sum(axis=1)
        num = (cut & ~other[None, :]).sum(axis=1)
        den[~free] = 0
        if den.max() == 0:  # cannot happen with δ ≥ τ; kept as a guard against a bad input
            break
        ratio = np.where(den > 0, num / np.maximum(den, 1), np.inf)
        best = ratio.min()
        ties = np.flatnonzero(ratio == best)
        q = int(ties[np.argmax(den[ties])])                     # largest denominator, lowest index
        chosen.append(q)
        free[q] = False
        covered &= same_side[q]
    if prune:
        for q in list(reversed(chosen)):
            rest = [p for p in chosen if p != q]
            without = same_side[rest].all(axis=0) if rest else np.ones(n, dtype=bool)
            if np.array_equal(without, covered):
                chosen = rest
    return Region(boundaries=chosen, sides=np.asarray(x_side, bool)[chosen], covered=covered,
                  delta=delta_used, tau=tau, other_covered=int((covered & other).sum()))
