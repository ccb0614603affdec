"""Search strategies over sub-regions: each orders regions by asking an Objective for batches.

Every strategy gets its batches embedded by the RegionStack, which counts forward passes,
bounds memory and shards a batch across processes; the strategies only decide which subsets
to evaluate. All of them return a full ordering with the embeddings of every prefix, so the
insertion and deletion curves are real measurements for every strategy.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch

from .objective import Objective
from .options import NoOptions, as_dict, option, parse_options
from .registry import Registry
from .regions import RegionStack

SEARCHES: Registry[type["Search"]] = Registry("search", components=True)
ProgressFn = Callable[[int, int], None]
#: the strategy `mmattr explain` uses when none is given (see benchmarks/results/search_cpu.md)
DEFAULT_SEARCH = "lazy"


def register_search(name: str):
    return SEARCHES.register(name)


def list_searches() -> list[str]:
    return SEARCHES.names()


@dataclass
class SearchResult:
    """An ordering of regions, most important first, with what each step measured.

    `prefix_in[k]` / `prefix_out[k]` are the embeddings of the masked-in / masked-out images of
    the first k+1 regions of `order`: the insertion and deletion curves come from them.
    `extra` holds the strategy's own counts (evaluations, passes); it lands in explanation.json.
    """

    order: list[int]
    scores: list[float]
    terms: dict[str, list[float]]
    prefix_in: torch.Tensor
    prefix_out: torch.Tensor
    extra: dict = field(default_factory=dict)


def _evaluate(objective: Objective, subsets: torch.Tensor, emb_in: torch.Tensor,
              emb_out: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Scores and per-term values; objectives without terms report their score as one term."""
    if hasattr(objective, "terms") and hasattr(objective, "combine"):
        terms = objective.terms(subsets, emb_in, emb_out)
        return objective.combine(terms), terms
    scores = objective.score(subsets, emb_in, emb_out)
    return scores, {"score": scores}


def _with_each(base: torch.Tensor, candidates: torch.Tensor, remove: bool = False) -> torch.Tensor:
    """(C, N) rows: base with each candidate added (or removed)."""
    rows = base.expand(candidates.shape[0], base.shape[0]).clone()
    rows[torch.arange(candidates.shape[0], device=base.device), candidates] = 0.0 if remove else 1.0
    return rows


class _Evaluator:
    """Embeds and scores batches of subsets of one stack; counts evaluated subsets."""

    def __init__(self, objective: Objective, stack: RegionStack) -> None:
        self.objective = objective
        self.stack = stack
        self.evaluations = 0

    def around(self, base: torch.Tensor, candidates: torch.Tensor, remove: bool = False):
        """Score base ∪ {c} (or base \\ {c}) for each candidate: the stack is indexed, not multiplied."""
        self.evaluations += int(candidates.shape[0])
        emb_in, emb_out = self.stack.embed_add(base, candidates, remove=remove)
        subsets = _with_each(base, candidates, remove)
        scores, terms = _evaluate(self.objective, subsets, emb_in, emb_out)
        return scores, terms, emb_in, emb_out

    def subsets(self, subsets: torch.Tensor):
        self.evaluations += int(subsets.shape[0])
        emb_in, emb_out = self.stack.embed(subsets)
        scores, terms = _evaluate(self.objective, subsets, emb_in, emb_out)
        return scores, terms, emb_in, emb_out


class _Trace:
    """The chosen prefixes, kept on the device and moved to the host once at the end."""

    def __init__(self) -> None:
        self.regions: list[torch.Tensor] = []
        self.scores: list[torch.Tensor] = []
        self.emb_in: list[torch.Tensor] = []
        self.emb_out: list[torch.Tensor] = []
        self.terms: list[dict[str, torch.Tensor]] = []

    def add(self, region: torch.Tensor, i: torch.Tensor | int, scores: torch.Tensor,
            terms: dict[str, torch.Tensor], emb_in: torch.Tensor, emb_out: torch.Tensor) -> None:
        self.regions.append(region.reshape(()))
        self.scores.append(scores[i])
        self.emb_in.append(emb_in[i])
        self.emb_out.append(emb_out[i])
        self.terms.append({k: v[i] for k, v in terms.items()})

    def result(self, extra: dict) -> SearchResult:
        # One transfer at the end instead of one per step.
        terms = {k: torch.stack([row[k] for row in self.terms]).tolist() for k in self.terms[0]}
        return SearchResult(order=torch.stack(self.regions).tolist(),
                            scores=torch.stack(self.scores).tolist(), terms=terms,
                            prefix_in=torch.stack(self.emb_in), prefix_out=torch.stack(self.emb_out),
                            extra=extra)


def _drop(rest: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """`rest` without its entry at device index i, with no device-to-host sync."""
    keep = torch.arange(rest.shape[0] - 1, device=rest.device)
    return rest[keep + (keep >= i).long()]


class Search(ABC):
    """Orders the regions of a RegionStack under an Objective.

    A strategy's own settings are its ``Options`` dataclass (mmattr.options): keyword arguments
    are validated against it once, here; `opts` is the typed instance and `options` its dict
    (recorded in explanation.json). `seed` is the run's seed, a cross-cutting setting.
    """

    name: ClassVar[str] = "search"
    #: the strategy's declared options
    Options: ClassVar[type] = NoOptions

    def __init__(self, seed: int = 0, **options: Any) -> None:
        self.seed = int(seed)
        self.opts = parse_options(type(self).Options, options, component=self.name,
                                  kind="search")
        self.options: dict[str, Any] = as_dict(self.opts)

    @abstractmethod
    def run(self, objective: Objective, stack: RegionStack,
            progress: ProgressFn | None = None) -> SearchResult:
        """Return the full ordering of the stack's regions."""

    def settings(self) -> dict:
        return {"strategy": self.name, **self.options}

    def _extra(self, stack: RegionStack, start_passes: int, evaluator: _Evaluator,
               **more: Any) -> dict:
        return {**self.settings(), "search_passes": stack.forward_passes - start_passes,
                "evaluations": evaluator.evaluations, "processes": getattr(stack, "processes", 1),
                "chunk": stack.chunk, "oom_halvings": stack.oom_halvings, **more}


@register_search("exact")
class ExactGreedy(Search):
    """The reference greedy: every step scores every remaining candidate, N(N+1) passes.

    Ref. Chen et al., ICLR 2024, Algorithm 1 (greedy search for submodular subset selection).
    """

    name = "exact"

    def run(self, objective: Objective, stack: RegionStack,
            progress: ProgressFn | None = None) -> SearchResult:
        n, dev = stack.n, stack.device
        start_passes = stack.forward_passes
        ev = _Evaluator(objective, stack)
        selected = torch.zeros(n, device=dev)
        rest = torch.arange(n, device=dev)  # remaining region ids; its length is known on the host
        trace = _Trace()
        for step in range(n):
            scores, terms, emb_in, emb_out = ev.around(selected, rest)
            best = torch.argmax(scores)
            region = rest[best]
            selected[region] = 1.0
            trace.add(region, best, scores, terms, emb_in, emb_out)
            rest = _drop(rest, best)
            if progress is not None:
                progress(step + 1, n)
        return trace.result(self._extra(stack, start_passes, ev))


@register_search("lazy")
class LazyGreedy(Search):
    """Lazy greedy (CELF) with batched re-evaluation of stale marginal gains.

    For a submodular f a gain measured at an earlier, smaller prefix bounds the current gain
    from above, so only the candidates whose stale bound tops the best fresh gain need a new
    forward pass; they are re-evaluated `batch` at a time (best bounds first). The SMDL
    objective is only approximately submodular, so this can differ from `exact`: the benchmark
    measures by how much. One host sync per re-evaluation batch decides whether to stop.

    Ref. Minoux, "Accelerated greedy algorithms for maximizing submodular set functions", 1978;
    Leskovec et al., "Cost-effective outbreak detection in networks" (CELF), KDD 2007.
    """

    name = "lazy"

    @dataclass(frozen=True)
    class Options:
        batch: int = option(2, "stale candidates re-evaluated per batch (larger on GPU; also "
                               "search_batch)", min=1)

    @property
    def batch(self) -> int:
        return self.opts.batch

    def run(self, objective: Objective, stack: RegionStack,
            progress: ProgressFn | None = None) -> SearchResult:
        n, dev = stack.n, stack.device
        start_passes = stack.forward_passes
        ev = _Evaluator(objective, stack)
        selected = torch.zeros(n, device=dev)
        every = torch.arange(n, device=dev)
        # f(∅): stale gains from different prefixes are only comparable as gains, not scores.
        f_prev = ev.subsets(selected[None])[0][0]
        # First step evaluates everyone: the bounds start exact.
        scores, terms, emb_in, emb_out = ev.around(selected, every)
        bound = scores - f_prev
        cache = (scores.clone(), {k: v.clone() for k, v in terms.items()}, emb_in.clone(),
                 emb_out.clone())
        fresh = torch.ones(n, dtype=torch.bool, device=dev)
        taken = torch.zeros(n, dtype=torch.bool, device=dev)
        trace = _Trace()
        rounds = 0
        for step in range(n):
            evaluated = n if step == 0 else 0
            while True:
                ranked = bound.masked_fill(taken, -math.inf)
                top = torch.argmax(ranked)
                # Stale: an earlier prefix's gain. The one host sync per round decides.
                if bool(fresh[top]):
                    break
                stale = int(n - step - evaluated)
                k = min(self.batch, stale)
                cands = torch.topk(ranked.masked_fill(fresh, -math.inf), k).indices
                s, t, ei, eo = ev.around(selected, cands)
                bound[cands] = s - f_prev
                fresh[cands] = True
                cache[0][cands] = s
                for name, v in t.items():
                    cache[1][name][cands] = v
                cache[2][cands] = ei
                cache[3][cands] = eo
                evaluated += k
                rounds += 1
            trace.add(top, top, cache[0], cache[1], cache[2], cache[3])
            f_prev = cache[0][top]
            selected[top] = 1.0
            taken[top] = True
            fresh.zero_()
            if progress is not None:
                progress(step + 1, n)
        return trace.result(self._extra(stack, start_passes, ev, reevaluation_rounds=rounds,
                                        empty_set_passes=2))


@register_search("stochastic")
class StochasticGreedy(Search):
    """Stochastic greedy: each step scores a random sample of the remaining candidates.

    Sample size s = ⌈(N/k)·ln(1/ε)⌉ (all of them once fewer remain); with k = N the whole
    ordering costs about 2·N·s passes. Samples come from a CPU generator seeded by `seed` and
    drawn before the loop, so the result is the same on every device and batch size.

    Ref. Mirzasoleiman et al., "Lazier than lazy greedy", AAAI 2015.
    """

    name = "stochastic"

    @dataclass(frozen=True)
    class Options:
        epsilon: float = option(0.01, "ε: (N/k)·ln(1/ε) candidates sampled per step (also "
                                      "search_epsilon)", above=0, below=1)
        k: int | None = option(None, "k of the sample size; none: the number of regions", min=1)

    def __init__(self, seed: int = 0, **options: Any) -> None:
        super().__init__(seed, **options)
        self.epsilon, self.k = self.opts.epsilon, self.opts.k

    def settings(self) -> dict:
        return {**super().settings(), "seed": self.seed}

    def sample_size(self, n: int) -> int:
        k = self.k or n
        return max(1, math.ceil(n / k * math.log(1.0 / self.epsilon)))

    def run(self, objective: Objective, stack: RegionStack,
            progress: ProgressFn | None = None) -> SearchResult:
        n, dev = stack.n, stack.device
        start_passes = stack.forward_passes
        ev = _Evaluator(objective, stack)
        size = self.sample_size(n)
        gen = torch.Generator().manual_seed(self.seed)
        # Row t ranks the positions of `rest` at step t: drawn once, copied once.
        keys = torch.rand(n, n, generator=gen).to(dev)
        selected = torch.zeros(n, device=dev)
        rest = torch.arange(n, device=dev)
        trace = _Trace()
        for step in range(n):
            c = n - step
            s = min(size, c)
            pick = torch.topk(keys[step, :c], s).indices if s < c else torch.arange(c, device=dev)
            scores, terms, emb_in, emb_out = ev.around(selected, rest[pick])
            best = torch.argmax(scores)
            at = pick[best]
            region = rest[at]
            selected[region] = 1.0
            trace.add(region, best, scores, terms, emb_in, emb_out)
            rest = _drop(rest, at)
            if progress is not None:
                progress(step + 1, n)
        return trace.result(self._extra(stack, start_passes, ev, sample_size=size))


@register_search("bidirectional")
class BidirectionalSearch(Search):
    """LiMA's search from both ends of the ordering.

    Each iteration scores every remaining candidate added to the front list and appends the
    best to it; the `shortlist` lowest of those candidates are then scored exactly from the
    other end (removed from everything not yet in the back list) and the one whose removal
    costs least joins the back list. Once no more than shortlist + 1 candidates remain, plain
    greedy steps finish the front. Order = front + reversed(back). The back list's evaluations
    are themselves prefixes of the final order; only the full set's prefix is left, computed in
    one extra pass (reported in `extra`).

    Ref. Chen et al., "Less is More, but Faster / LiMA" (arXiv 2504.00470), bidirectional search.
    """

    name = "bidirectional"

    @dataclass(frozen=True)
    class Options:
        shortlist: int = option(8, "lowest front candidates re-checked for the back list "
                                   "(also search_shortlist)", min=1)

    @property
    def shortlist(self) -> int:
        return self.opts.shortlist

    def run(self, objective: Objective, stack: RegionStack,
            progress: ProgressFn | None = None) -> SearchResult:
        n, dev = stack.n, stack.device
        start_passes = stack.forward_passes
        ev = _Evaluator(objective, stack)
        front_set = torch.zeros(n, device=dev)
        kept = torch.ones(n, device=dev)  # everything not in the back list
        rest = torch.arange(n, device=dev)
        front, back = _Trace(), _Trace()
        iterations = 0
        while rest.shape[0] > 0:
            c = rest.shape[0]
            scores, terms, emb_in, emb_out = ev.around(front_set, rest)
            best = torch.argmax(scores)
            region = rest[best]
            front.add(region, best, scores, terms, emb_in, emb_out)
            front_set[region] = 1.0
            if c > self.shortlist + 1:
                # The lowest front scores, excluding the winner, are the candidates for the back.
                low = torch.topk(scores.index_fill(0, best.reshape(1), math.inf),
                                 self.shortlist, largest=False).indices
                cand = rest[low]
                b_scores, b_terms, b_in, b_out = ev.around(kept, cand, remove=True)
                worst = torch.argmax(b_scores)  # removing it leaves the highest score
                back.add(cand[worst], worst, b_scores, b_terms, b_in, b_out)
                kept[cand[worst]] = 0.0
                # Drop the front winner and the back pick from `rest` without a host sync.
                keep = torch.ones(c, dtype=torch.bool, device=dev)
                keep[best] = False
                keep[low[worst]] = False
                rest = rest[_keep_index(keep, c - 2)]
            else:
                rest = _drop(rest, best)
            iterations += 1
            if progress is not None:
                progress(len(front.regions) + len(back.regions), n)
        # The back list's entries were measured as prefixes: V \ B_j is the prefix of length
        # n - j. Only the prefix of length n (every region) is missing: one subset, 2 passes.
        trace = _Trace()
        trace.regions = front.regions + back.regions[::-1]
        # Prefix of length len(front) + j (j ≥ 1) is V \ B_{m-j}: the back entries, shifted.
        shifted = [(back.scores[j], back.emb_in[j], back.emb_out[j], back.terms[j])
                   for j in range(len(back.regions) - 2, -1, -1)]
        tail = []
        if back.regions:
            f_scores, f_terms, f_in, f_out = ev.subsets(torch.ones(1, n, device=dev))
            tail = shifted + [(f_scores[0], f_in[0], f_out[0],
                               {k: v[0] for k, v in f_terms.items()})]
        trace.scores = front.scores + [t[0] for t in tail]
        trace.emb_in = front.emb_in + [t[1] for t in tail]
        trace.emb_out = front.emb_out + [t[2] for t in tail]
        trace.terms = front.terms + [t[3] for t in tail]
        return trace.result(self._extra(stack, start_passes, ev, iterations=iterations,
                                        front=len(front.regions), back=len(back.regions),
                                        extra_prefix_passes=2 if back.regions else 0))


def _keep_index(keep: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the True entries of `keep`, whose number `count` is known on the host.

    A stable sort puts them first without the host sync that ``nonzero`` needs.
    """
    order = torch.sort((~keep).to(torch.uint8), stable=True).indices
    return order[:count]


def make_search(name: str, seed: int = 0, **options: Any) -> Search:
    """A search by registry name, its options validated against its declaration."""
    return SEARCHES.get(name)(seed=seed, **options)


def search_from_config(config: Any) -> Search:
    """The Search an ExplainConfig asks for: its options from ``config.options[name]``, the
    seed from the config."""
    return make_search(config.search, seed=config.seed, **config.options_for(config.search))


def config_changes(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``("lazy", {"batch": 8})`` → ``{"search": "lazy", "options": {"lazy": {"batch": 8}}}``:
    the `ExplainConfig.replace` changes that make `search_from_config` build that search;
    the options are checked against the search's declaration (an unknown one is an error)."""
    parse_options(SEARCHES.options(name), options, component=name, kind="search")
    return {"search": name, "options": {name: dict(options)}}
