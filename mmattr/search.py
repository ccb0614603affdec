"""Search strategies over sub-regions: each orders regions by asking an Objective for batches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import torch

from .objective import Objective
from .registry import Registry
from .regions import RegionStack

SEARCHES: Registry[type["Search"]] = Registry("search")
ProgressFn = Callable[[int, int], None]


def register_search(name: str):
    return SEARCHES.register(name)


def list_searches() -> list[str]:
    return SEARCHES.names()


@dataclass
class SearchResult:
    """An ordering of regions, most important first, with what each step measured.

    `prefix_in[k]` / `prefix_out[k]` are the embeddings of the masked-in / masked-out images of
    the first k+1 regions of `order`: the insertion and deletion curves come from them.
    """

    order: list[int]
    scores: list[float]
    terms: dict[str, list[float]]
    prefix_in: torch.Tensor
    prefix_out: torch.Tensor
    extra: dict = field(default_factory=dict)


class Search(ABC):
    """Orders the regions of a RegionStack under an Objective."""

    def __init__(self, **options) -> None:
        self.options = options

    @abstractmethod
    def run(self, objective: Objective, stack: RegionStack,
            progress: ProgressFn | None = None) -> SearchResult:
        """Return the full ordering of the stack's regions."""

    def settings(self) -> dict:
        return dict(self.options)


@register_search("exact")
class ExactGreedy(Search):
    """The reference greedy: every step scores every remaining candidate, ≈ N(N+1) passes.

    Ref. Chen et al., ICLR 2024, Algorithm 1 (greedy search for submodular subset selection).
    """

    def run(self, objective: Objective, stack: RegionStack,
            progress: ProgressFn | None = None) -> SearchResult:
        n, dev = stack.n, stack.device
        selected = torch.zeros(n, device=dev)
        rest = torch.arange(n, device=dev)  # remaining region ids; its length is known on the host
        chosen, best_scores, best_in, best_out = [], [], [], []
        term_rows: list[dict[str, torch.Tensor]] = []
        for step in range(n):
            c = n - step
            subsets = selected.expand(c, n).clone()
            subsets[torch.arange(c, device=dev), rest] = 1.0
            emb_in, emb_out = stack.embed(subsets)
            terms = objective.terms(subsets, emb_in, emb_out)
            scores = objective.combine(terms)
            best = torch.argmax(scores)
            region = rest[best]
            selected[region] = 1.0
            chosen.append(region)
            best_scores.append(scores[best])
            best_in.append(emb_in[best])
            best_out.append(emb_out[best])
            term_rows.append({k: v[best] for k, v in terms.items()})
            # Drop the winner without a device-to-host sync: shift the indices past it by one.
            keep = torch.arange(c - 1, device=dev)
            rest = rest[keep + (keep >= best).long()]
            if progress is not None:
                progress(step + 1, n)
        # One transfer at the end instead of one per step.
        order = torch.stack(chosen).tolist()
        terms_out = {k: torch.stack([row[k] for row in term_rows]).tolist() for k in term_rows[0]}
        return SearchResult(order=order, scores=torch.stack(best_scores).tolist(), terms=terms_out,
                            prefix_in=torch.stack(best_in), prefix_out=torch.stack(best_out))


def make_search(name: str, **options) -> Search:
    return SEARCHES.get(name)(**options)
