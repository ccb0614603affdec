"""Search strategies over an element set: each orders the elements by asking an Objective for
batches.

Every strategy gets its batches embedded by the `ElementSet` (image regions, the words of a
text, the segments of an audio clip: `mmattr.elements`), which counts forward passes, bounds
memory and shards a batch across processes; the strategies only decide which subsets to
evaluate, and never look at what an element is. All of them return a full ordering with the
embeddings of every prefix, so the insertion and deletion curves are real measurements for
every strategy.
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
from .elements import ElementSet

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

    def __init__(self, objective: Objective, stack: ElementSet) -> None:
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
    """Orders the elements of an ElementSet (a RegionStack's regions, a text's words, ...)
    under an Objective.

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
    def run(self, objective: Objective, stack: ElementSet,
            progress: ProgressFn | None = None) -> SearchResult:
        """Return the full ordering of the stack's regions."""

    def settings(self) -> dict:
        return {"strategy": self.name, **self.options}

    def _extra(self, stack: ElementSet, start_passes: int, evaluator: _Evaluator,
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

    def run(self, objective: Objective, stack: ElementSet,
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


class _Guard:
    """Where the stale-gain shortcut of lazy and stochastic greedy is unsafe, and what to re-check.

    SMDL's objective is far from submodular where the target's score is flat or saturated: a
    region's gain can jump from negative to the largest of the step once another part of its
    object is in (measured: −0.24 → +0.45 after one pick), so a stale gain is then no bound at
    all. The guard's thresholds are shares of the spread of the first step's gains (every region
    added to the empty set), the objective's own scale:

    - a step's best gain below `flat` of it is *flat*: the ranking of stale gains says nothing
      there, so every candidate is evaluated once (again only after a step that was not flat);
    - a pick whose gain is above `near` of it changes its neighbours' gains most (the other parts
      of an object split across regions): they are re-evaluated at the next step.
    """

    def __init__(self, first_gains: torch.Tensor, adjacency: torch.Tensor | None,
                 flat: float, near: float) -> None:
        spread = float(first_gains.max() - first_gains.min()) if first_gains.numel() > 1 else 0.0
        self.flat_below = flat * spread
        self.near_above = near * spread
        self.adjacency = adjacency
        #: a flat refresh is allowed (re-armed by any step whose gain is not flat)
        self.armed = True
        self.counts = {"flat_refreshes": 0, "neighbour_rechecks": 0}

    def is_flat(self, gain: float) -> bool:
        return gain < self.flat_below

    def after_pick(self, region: torch.Tensor, gain: float, taken: torch.Tensor
                   ) -> torch.Tensor | None:
        """The candidates to re-check after `region` was picked with `gain` (a bool mask), or
        None; re-arms the flat refresh after a step that was not flat."""
        if not self.is_flat(gain):
            self.armed = True
        if self.adjacency is None or gain <= self.near_above:
            return None
        near = self.adjacency[region] & ~taken
        self.counts["neighbour_rechecks"] += int(near.sum())
        return near


@register_search("lazy")
class LazyGreedy(Search):
    """Lazy greedy (CELF) with batched re-evaluation of stale marginal gains, guarded.

    For a submodular f a gain measured at an earlier, smaller prefix bounds the current gain
    from above, so only the candidates whose stale bound tops the best fresh gain need a new
    forward pass; they are re-evaluated `batch` at a time (best bounds first). The SMDL
    objective is only approximately submodular, so with `guard` (the default) the search also
    evaluates where that shortcut is measured to fail (see `_Guard`): every candidate at the
    step after the first pick (gains against the empty set say nothing about what complements
    the first region), every candidate once when the best gain is flat, and the neighbours of
    each pick at the next step. With ``guard=false`` it is plain CELF. The benchmark
    (benchmarks/bench_search.py) measures both against `exact`.

    Ref. Minoux, "Accelerated greedy algorithms for maximizing submodular set functions", 1978;
    Leskovec et al., "Cost-effective outbreak detection in networks" (CELF), KDD 2007.
    """

    name = "lazy"

    @dataclass(frozen=True)
    class Options:
        batch: int = option(2, "stale candidates re-evaluated per round (larger on GPU; also "
                               "search_batch)", min=1)
        guard: bool = option(True, "evaluate where the stale-gain shortcut is unsafe: every "
                                   "candidate after the first pick and on flat gains, a pick's "
                                   "neighbours next step; false: plain CELF")
        flat: float = option(0.01, "guard: a best gain under this share of the first step's gain "
                                   "spread is flat (every candidate evaluated once)", min=0, max=1)
        near: float = option(0.01, "guard: a pick with a gain over this share of the spread has "
                                   "its neighbouring regions re-evaluated", min=0, max=1)

    @property
    def batch(self) -> int:
        return self.opts.batch

    def run(self, objective: Objective, stack: ElementSet,
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
        guard = (_Guard(bound, getattr(stack, "adjacency", None), self.opts.flat, self.opts.near)
                 if self.opts.guard else None)
        cache = (scores.clone(), {k: v.clone() for k, v in terms.items()}, emb_in.clone(),
                 emb_out.clone())
        fresh = torch.ones(n, dtype=torch.bool, device=dev)
        taken = torch.zeros(n, dtype=torch.bool, device=dev)
        trace = _Trace()
        rounds = full_steps = 0
        stale = 0  # stale candidates left this step (known on the host)
        near: torch.Tensor | None = None  # the guard's re-checks for the next step

        def update(cands: torch.Tensor) -> None:
            """Evaluate `cands` at the current prefix: fresh gains, cached embeddings."""
            nonlocal stale
            s, t, ei, eo = ev.around(selected, cands)
            bound[cands] = s - f_prev
            fresh[cands] = True
            cache[0][cands] = s
            for name, v in t.items():
                cache[1][name][cands] = v
            cache[2][cands] = ei
            cache[3][cands] = eo
            stale -= int(cands.shape[0])

        def refresh() -> None:
            """Every stale candidate at once (one host sync for their ids)."""
            update(torch.nonzero(~fresh & ~taken).flatten())

        for step in range(n):
            stale = 0 if step == 0 else n - step
            if guard is not None and step == 1 and stale:
                refresh()
                full_steps += 1
            elif near is not None:
                # The last pick's neighbours, re-checked first, in one batch.
                cands = torch.nonzero(near).flatten()
                if cands.numel():
                    update(cands)
                    rounds += 1
            while True:
                ranked = bound.masked_fill(taken, -math.inf)
                top = torch.argmax(ranked)
                # Stale: an earlier prefix's gain. The one host sync per round decides.
                if bool(fresh[top]):
                    if (guard is not None and stale and guard.armed
                            and guard.is_flat(float(bound[top]))):
                        refresh()
                        guard.armed = False
                        guard.counts["flat_refreshes"] += 1
                        continue
                    break
                k = min(self.batch, stale)
                update(torch.topk(ranked.masked_fill(fresh, -math.inf), k).indices)
                rounds += 1
            trace.add(top, top, cache[0], cache[1], cache[2], cache[3])
            if guard is not None:
                near = guard.after_pick(top, float(bound[top]), taken)
            f_prev = cache[0][top]
            selected[top] = 1.0
            taken[top] = True
            fresh.zero_()
            if progress is not None:
                progress(step + 1, n)
        more = {"full_steps": 1 + full_steps, **guard.counts} if guard is not None else {}
        return trace.result(self._extra(stack, start_passes, ev, reevaluation_rounds=rounds,
                                        empty_set_passes=2, **more))


@register_search("stochastic")
class StochasticGreedy(Search):
    """Stochastic greedy: each step scores a random sample of the remaining candidates.

    Sample size s = ⌈(N/k)·ln(1/ε)⌉ (all of them once fewer remain); with k = N the whole
    ordering costs about 2·N·s passes. Samples come from a CPU generator seeded by `seed` and
    drawn before the loop, so the result is the same on every device and batch size. With
    `guard` the lazy search's guard applies where it can (`_Guard`, scaled by the first
    sample's spread): a pick's neighbours join the next sample, and a flat sample is replaced
    by every candidate once; measured in benchmarks/results/search_cpu.md, off by default.

    Ref. Mirzasoleiman et al., "Lazier than lazy greedy", AAAI 2015.
    """

    name = "stochastic"

    @dataclass(frozen=True)
    class Options:
        epsilon: float = option(0.01, "ε: (N/k)·ln(1/ε) candidates sampled per step (also "
                                      "search_epsilon)", above=0, below=1)
        k: int | None = option(None, "k of the sample size; none: the number of regions", min=1)
        guard: bool = option(False, "add a pick's neighbouring regions to the next sample and "
                                    "score every candidate once when the sample's gains are flat "
                                    "(see lazy; measured: 1.6-1.9x the passes, a 4-6x smaller "
                                    "mean loss, cliffs remain: off by default)")
        flat: float = option(0.01, "guard: a best gain under this share of the first sample's "
                                   "spread is flat", min=0, max=1)
        near: float = option(0.01, "guard: a pick with a gain over this share of the spread adds "
                                   "its neighbours to the next sample", min=0, max=1)

    def __init__(self, seed: int = 0, **options: Any) -> None:
        super().__init__(seed, **options)
        self.epsilon, self.k = self.opts.epsilon, self.opts.k

    def settings(self) -> dict:
        return {**super().settings(), "seed": self.seed}

    def sample_size(self, n: int) -> int:
        k = self.k or n
        return max(1, math.ceil(n / k * math.log(1.0 / self.epsilon)))

    def run(self, objective: Objective, stack: ElementSet,
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
        adjacency = getattr(stack, "adjacency", None)
        guard: _Guard | None = None
        near: torch.Tensor | None = None  # (N,) regions the guard adds to the next sample
        trace = _Trace()
        for step in range(n):
            c = n - step
            s = min(size, c)
            if s < c:
                pick = torch.topk(keys[step, :c], s).indices
                if near is not None:  # guard: the last pick's neighbours join the sample
                    chosen = torch.zeros(c, dtype=torch.bool, device=dev)
                    chosen[pick] = True
                    pick = torch.nonzero(chosen | near[rest]).flatten()
            else:
                pick = torch.arange(c, device=dev)
            scores, terms, emb_in, emb_out = ev.around(selected, rest[pick])
            if self.opts.guard:
                if guard is None:  # the first sample's spread is the objective's scale
                    guard = _Guard(scores, adjacency, self.opts.flat, self.opts.near)
                elif (guard.armed and pick.shape[0] < c
                      and guard.is_flat(float(scores.max() - trace.scores[-1]))):
                    # Flat: a sample says nothing here; every candidate is scored once.
                    guard.armed = False
                    guard.counts["flat_refreshes"] += 1
                    pick = torch.arange(c, device=dev)
                    scores, terms, emb_in, emb_out = ev.around(selected, rest)
            best = torch.argmax(scores)
            at = pick[best]
            region = rest[at]
            if guard is not None:
                gain = float(scores[best] - trace.scores[-1]) if trace.scores else math.inf
                taken = selected.bool().clone()
                taken[region] = True
                near = guard.after_pick(region, gain, taken)
            selected[region] = 1.0
            trace.add(region, best, scores, terms, emb_in, emb_out)
            rest = _drop(rest, at)
            if progress is not None:
                progress(step + 1, n)
        more = guard.counts if guard is not None else {}
        return trace.result(self._extra(stack, start_passes, ev, sample_size=size, **more))


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

    def run(self, objective: Objective, stack: ElementSet,
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


@register_search("beam")
class BeamSearch(Search):
    """Exact greedy with a beam: the `width` best partial orderings are kept at every step.

    Each step scores every remaining candidate after every kept prefix and keeps the `width`
    extensions with the highest running sum of the objective over their prefixes (the area
    under the objective's own curve, which the insertion AUC rewards); a set reached in two
    orders is kept once, in its better order. The exact greedy's own path is carried along
    and returned when no beam ends with a larger area, so the result's area is never below
    the greedy's. A set that a beam and the greedy path share is scored once: at most
    (width + 1) × the exact greedy's passes, `search_passes` says how many. It sees past the
    steps where the greedy commits to one of many near ties (a flat stretch).

    Ref. Chen et al., ICLR 2024 (the objective and its greedy); beam search: Lowerre, "The
    Harpy speech recognition system", 1976.
    """

    name = "beam"

    @dataclass(frozen=True)
    class Options:
        width: int = option(2, "partial orderings kept per step (passes: up to width + 1 times "
                               "exact's)", min=1)

    def run(self, objective: Objective, stack: ElementSet,
            progress: ProgressFn | None = None) -> SearchResult:
        n, dev = stack.n, stack.device
        start_passes = stack.forward_passes
        ev = _Evaluator(objective, stack)
        width = self.opts.width
        # A path: (running sum of f over its prefixes, its set as a 0/1 vector, its trace).
        start = (0.0, torch.zeros(n, device=dev), _Trace())
        beams, greedy = [start], start
        for step in range(n):
            scored: dict[bytes, tuple] = {}  # a set's candidates scored once per step

            def candidates(chosen: torch.Tensor) -> tuple:
                key = chosen.bool().cpu().numpy().tobytes()
                if key not in scored:
                    rest = torch.nonzero(chosen == 0).flatten()
                    scored[key] = (rest, *ev.around(chosen, rest))
                return scored[key]

            options = []  # (running sum, path, position among its candidates)
            for path in beams:
                rest, scores, *_ = candidates(path[1])
                top = torch.topk(scores, min(width, rest.shape[0])).indices
                options += [(path[0] + v, path, i) for i, v in zip(top.tolist(),
                                                                   scores[top].tolist())]
            options.sort(key=lambda o: -o[0])
            beams, seen = [], set()
            for total, path, i in options:
                extended = _extend(path, i, total, candidates(path[1]))
                key = extended[1].bool().cpu().numpy().tobytes()
                if key not in seen:  # else: the same set in a worse order
                    seen.add(key)
                    beams.append(extended)
                if len(beams) == width:
                    break
            scores = candidates(greedy[1])[1]
            best = int(torch.argmax(scores))
            greedy = _extend(greedy, best, greedy[0] + float(scores[best]), candidates(greedy[1]))
            if progress is not None:
                progress(step + 1, n)
        winner = max(beams, key=lambda path: path[0])
        chose_beam = winner[0] > greedy[0]
        return (winner if chose_beam else greedy)[2].result(self._extra(
            stack, start_passes, ev, width=width, beam_won=chose_beam))


def _extend(path: tuple, i: int, total: float, scored: tuple) -> tuple:
    """`path` with its candidate at position i added: (running sum, set, trace)."""
    rest, scores, terms, emb_in, emb_out = scored
    chosen = path[1].clone()
    chosen[rest[i]] = 1.0
    old, trace = path[2], _Trace()
    trace.regions, trace.scores, trace.terms = list(old.regions), list(old.scores), list(old.terms)
    trace.emb_in, trace.emb_out = list(old.emb_in), list(old.emb_out)
    trace.add(rest[i], i, scores, terms, emb_in, emb_out)
    return total, chosen, trace


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
