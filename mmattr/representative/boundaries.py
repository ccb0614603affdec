"""Sampling linear decision boundaries of the head G (eq. 2), and telling a linear head apart.

A boundary is the hyperplane ⟨W, t⟩ + b = 0 with W = ∂ΔG/∂t and b = ΔG(t) - ⟨W, t⟩ at a point
t of the feature space, ΔG = top-1 logit minus top-2 logit. Each batch of points costs one
forward and ONE backward pass (ΔG summed over the batch; the samples do not interact in
an eval-mode network), never one pass per class.

Two samplers:

* ``gradient`` (the paper's text): linearise at ψ(x) of sampled reference images.
* ``walk`` (the authors' code, adapted in public benchmark code): from ψ(x) walk toward ψ(x⁻)
  of a reference image of another predicted class, ``t ← 0.9·t + 0.1·ψ(x⁻)``, until x's class c
  stops being the top logit, then bisect that last step until c and the runner-up tie
  (|ΔG| below a tolerance, c still on top) and linearise there: the hyperplane is then a piece
  of G's actual decision boundary.

Ref. Lam et al., "Finding Representative Interpretations on Convolutional Neural Networks",
ICCV 2021 (eq. 2, section 4.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

HeadFn = Callable[[torch.Tensor], torch.Tensor]
SAMPLERS = ("gradient", "walk")
#: walk step toward the other-class image (the authors' 0.9 / 0.1 update)
WALK_STEP = 0.1
WALK_MAX_STEPS = 80
BISECT_STEPS = 30
#: 1 - cosine between tie normals below which the boundaries count as input-independent
LINEAR_TOLERANCE = 1e-4


@dataclass
class Boundaries:
    """Q hyperplanes ⟨W_q, t⟩ + b_q = 0 in the (flattened) feature space."""

    W: torch.Tensor          # (Q, D) float32
    b: torch.Tensor          # (Q,)
    pairs: torch.Tensor      # (Q, 2) long: top-1 and top-2 class at the linearisation point
    sources: np.ndarray      # (Q,) reference index the boundary was sampled from
    sampler: str

    def __len__(self) -> int:
        return int(self.W.shape[0])

    def side(self, psi_flat: torch.Tensor) -> torch.Tensor:
        """(N, D) → (Q, N) bool: True where ⟨W, t⟩ + b > 0."""
        return (self.W @ psi_flat.T + self.b[:, None]) > 0


def linearise(head: HeadFn, points: torch.Tensor, chunk: int = 64
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 2 at each point: (W (P, D), b (P,), top-2 class pairs (P, 2)); one backward per chunk."""
    Ws, bs, pairs = [], [], []
    for start in range(0, points.shape[0], chunk):
        t = points[start:start + chunk].detach().clone().float().requires_grad_(True)
        with torch.enable_grad():
            top = head(t).topk(2, dim=1)
            delta = top.values[:, 0] - top.values[:, 1]
            (grad,) = torch.autograd.grad(delta.sum(), t)
        W = grad.flatten(1).float()
        Ws.append(W)
        bs.append(delta.detach().float() - (W * t.detach().flatten(1)).sum(1))
        pairs.append(top.indices)
    return torch.cat(Ws), torch.cat(bs), torch.cat(pairs)


def _margin(head: HeadFn, t: torch.Tensor, cls: torch.Tensor, chunk: int) -> torch.Tensor:
    """G_c(t) - max_{k≠c} G_k(t), batched, no graph."""
    out = []
    with torch.inference_mode():
        for start in range(0, t.shape[0], chunk):
            logits = head(t[start:start + chunk]).float()
            c = cls[start:start + chunk]
            own = logits.gather(1, c[:, None])[:, 0]
            others = logits.scatter(1, c[:, None], float("-inf")).max(1).values
            out.append(own - others)
    return torch.cat(out)


def bisect(f: Callable[[torch.Tensor], torch.Tensor], lo: torch.Tensor, hi: torch.Tensor,
           steps: int = BISECT_STEPS) -> torch.Tensor:
    """Batched bisection on segments with f(lo) ≥ 0 > f(hi); returns points with f ≥ 0 next
    to the sign change (within 2^-steps of the segment)."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        pos = (f(mid) >= 0).view(-1, *[1] * (lo.dim() - 1))
        lo = torch.where(pos, mid, lo)
        hi = torch.where(pos, hi, mid)
    return lo


def walk_to_ties(head: HeadFn, start: torch.Tensor, toward: torch.Tensor, cls: torch.Tensor,
                 chunk: int = 64) -> torch.Tensor:
    """From each start (predicted cls) toward an image of another class: the authors' walk,
    then bisection of the step where cls stops winning, to the tie of cls and the runner-up."""
    lo, hi = start.clone(), toward.clone()
    active = torch.ones(start.shape[0], dtype=torch.bool, device=start.device)
    pt = start.clone()
    for _ in range(WALK_MAX_STEPS):
        if not active.any():
            break
        idx = active.nonzero()[:, 0]
        nxt = (1 - WALK_STEP) * pt[idx] + WALK_STEP * toward[idx]
        crossed = _margin(head, nxt, cls[idx], chunk) < 0
        hi[idx[crossed]] = nxt[crossed]
        lo[idx[crossed]] = pt[idx[crossed]]
        pt[idx] = nxt
        active[idx[crossed]] = False
    return bisect(lambda t: _margin(head, t, cls, chunk), lo, hi)


def sample_boundaries(head: HeadFn, psi: torch.Tensor, preds: torch.Tensor, n: int,
                      sampler: str = "gradient", seed: int = 0, indices: np.ndarray | None = None,
                      negatives: np.ndarray | None = None, chunk: int = 64) -> Boundaries:
    """|Q| = n boundaries from the feature maps `psi` (Q points, or use `indices`).

    `psi` (M, ...) are the feature maps of the sampled references (`indices` into the reference
    set, recorded as the boundaries' sources) and, for the walk sampler, `negatives` are the
    positions in `psi` of each walk's other-class target.
    """
    if sampler not in SAMPLERS:
        from ..errors import InputError

        raise InputError(f"unknown boundary sampler {sampler!r}; use {', '.join(SAMPLERS)}")
    src = np.arange(n) if indices is None else np.asarray(indices)
    starts = psi[:n]
    if sampler == "walk":
        if negatives is None:
            raise ValueError("the walk sampler needs the other-class targets")
        starts = walk_to_ties(head, psi[:n], psi[torch.as_tensor(negatives, device=psi.device)],
                              preds[:n], chunk)
    W, b, pairs = linearise(head, starts, chunk)
    return Boundaries(W, b, pairs, src[:n], sampler)


def _unit_normals(head: HeadFn, points: torch.Tensor, i: int, j: int) -> torch.Tensor:
    t = points.detach().clone().float().requires_grad_(True)
    with torch.enable_grad():
        logits = head(t)
        (grad,) = torch.autograd.grad((logits[:, i] - logits[:, j]).sum(), t)
    return torch.nn.functional.normalize(grad.flatten(1).float(), dim=1)


def _agree(normals: torch.Tensor) -> bool:
    return bool((1 - normals @ normals[0]).abs().max() < LINEAR_TOLERANCE)


def tie_normals_agree(head: HeadFn, psi: torch.Tensor, preds: torch.Tensor, n: int = 6,
                      chunk: int = 64) -> bool | None:
    """Whether G's decision boundaries are the same hyperplanes everywhere: a head linear in
    ψ, or CLIP's cosine head on a pooled embedding (None: fewer than 2 points to compare).

    Two comparisons of boundary normals, either of which finds a linear head: the normals of
    G_i - G_j (i, j the top-2 classes of the first point) at n spread points, identical when G
    is affine; and, between the two most common predicted classes i and j, the normals at the
    ties of G_i - G_j on the segments between n images of i and n images of j, parallel whenever the
    boundary is one hyperplane (a ReLU head has a different piece at each tie).
    """
    if psi.shape[0] < 2:
        return None
    g = torch.Generator().manual_seed(0)  # spread over the data, not the first n images
    pick = torch.randperm(psi.shape[0], generator=g)[:n].to(psi.device)
    with torch.inference_mode():
        top = head(psi[pick[:1]]).topk(2, dim=1).indices[0].tolist()
    if _agree(_unit_normals(head, psi[pick], *top)):
        return True
    classes, counts = torch.unique(preds, return_counts=True)
    if len(classes) < 2:
        return False
    i, j = classes[torch.argsort(counts, descending=True)[:2]].tolist()
    a, b = psi[preds == i], psi[preds == j]
    a = a[torch.randperm(len(a), generator=g)[:n].to(a.device)]
    b = b[torch.randperm(len(b), generator=g)[:n].to(b.device)]
    if len(a) * len(b) < 3:
        return False
    # every pair of the two sets: segments in many directions, even from a single image
    a, b = a.repeat_interleave(len(b), dim=0), b.repeat(len(a), *[1] * (b.dim() - 1))

    def diff(t: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            logits = torch.cat([head(t[s:s + chunk]) for s in range(0, t.shape[0], chunk)])
        return logits[:, i] - logits[:, j]

    ties = bisect(diff, a, b)
    return _agree(_unit_normals(head, ties, i, j))
