"""The element set: what the search and the objective order, for any modality.

SMDL needs three things: a set of N elements that can be kept or removed, an encoder, and a
target embedding. An `ElementSet` holds the first two for one input: image regions
(`mmattr.regions.RegionStack`), the words or tokens of a text (`mmattr.modalities.text`), the
time segments of an audio clip (`mmattr.modalities.audio`). Its one required method is
`compose`: a batch of 0/1 subsets → the model inputs of the masked-in (only the subset's
elements kept) and masked-out (the subset's elements removed) versions of the input. How an
element is removed is the modality's choice (black pixels, a dropped or padded word, a silenced
segment). Everything above it (`embed`, `embed_add`, the counting of forward passes, chunking
to the batch size and sharding a step across processes) is shared, so the searches, the four
scores, the curves and the metrics run unchanged over any of them.

Each modality registers its element set with ``@register_modality(name)``; ``--explain NAME``
(``ExplainConfig.explain``) picks one, and its typed ``Options`` (how the input is divided,
how an element is removed) are set with ``-O NAME.OPTION=VALUE``.

Ref. Chen et al., "Less is More: Fewer Interpretable Region via Submodular Subset Selection",
ICLR 2024 (masked-in / masked-out subsets of sub-regions).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F

from . import distributed
from .options import NoOptions, as_dict, parse_options
from .registry import Registry

#: element sets by modality name; ``image`` lives in mmattr.regions, ``text`` and ``audio`` in
#: mmattr.modalities (above this module: imported by name on the first lookup, as plugins)
MODALITIES: Registry[type["ElementSet"]] = Registry(
    "modality", providers=("mmattr.modalities", "mmattr.regions"), components=True)
#: the modality explained when none is asked for
DEFAULT_MODALITY = "image"


def register_modality(name: str) -> Callable:
    """Class decorator: an `ElementSet` subclass becomes ``--explain NAME``."""

    def decorator(cls: type["ElementSet"]) -> type["ElementSet"]:
        cls.name = name
        return MODALITIES.register(name)(cls)

    return decorator


def list_modalities() -> list[str]:
    return MODALITIES.names()


@dataclass
class Element:
    """One element as people read it: a word (its text and character span), a segment (its
    start and end in seconds), a region (its label). `span` is in the input's own units
    (characters, samples); it is what `regions` maps back to."""

    label: str
    span: tuple[int, int] = (0, 0)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "span": list(self.span), **self.extra}


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


class ElementSet(ABC):
    """N elements of one input and the encoder that scores any subset of them.

    Subclasses implement `compose` and set, in their constructor, `n`, `device`, `encoder`
    ((inputs) → (B, D) embeddings of any norm) and optionally `weights` (each element's share of
    the input, the curves' x axis; equal shares by default), `adjacency` ((N, N) bool: elements
    that touch; the lazy search's guard re-checks a pick's neighbours) and `passes_per_input`
    (encoder passes one composed input costs, e.g. one per prompt template).

    `batch_size` caps the composed inputs per encoder call; results do not depend on it.
    """

    #: the registry name, set by `register_modality`'s subclasses
    name: ClassVar[str] = ""
    #: the modality's declared options (how it divides its input, how it removes an element)
    Options: ClassVar[type] = NoOptions
    #: what an element is called in messages and pictures
    noun: ClassVar[str] = "element"

    n: int
    device: torch.device
    #: encoder passes counted so far, summed over every process of a launch
    forward_passes: int = 0
    #: how many times an out-of-memory error halved the chunk
    oom_halvings: int = 0
    #: processes that share each encoding step (see `mmattr.runs.context.RunContext`)
    processes: int = 1
    #: (N, N) bool: elements that touch (None: no neighbourhood)
    adjacency: torch.Tensor | None = None
    #: encoder passes one composed input costs
    passes_per_input: int = 1

    def setup(self, n: int, device: torch.device, encoder: Callable[[Any], torch.Tensor],
              batch_size: int = 64, processes: int = 1, weights: torch.Tensor | None = None,
              adjacency: torch.Tensor | None = None, passes_per_input: int = 1) -> None:
        """The shared state; a subclass's constructor calls it once."""
        self.n = int(n)
        self.device = device
        self.encoder = encoder
        self.batch_size = max(1, int(batch_size))
        self.chunk = self.batch_size
        self.processes = int(processes)
        self.forward_passes = 0
        self.oom_halvings = 0
        self.passes_per_input = int(passes_per_input)
        self.weights = (weights.float().to(device) if weights is not None
                        else torch.full((self.n,), 1.0 / max(self.n, 1), device=device))
        self.adjacency = adjacency if adjacency is not None else _chain(self.n, device)

    @property
    def area(self) -> torch.Tensor:
        """Each element's share of the input (the curves' x axis); `weights`, under the image
        side's name."""
        return self.weights

    @abstractmethod
    def compose(self, subsets: torch.Tensor) -> tuple[Any, Any]:
        """(B, N) 0/1 subsets → the model inputs of the masked-in and the masked-out inputs."""

    @classmethod
    def options_of(cls, config: Any) -> Any:
        """This modality's typed options from ``config.options[name]``, validated."""
        return parse_options(cls.Options, config.options_for(cls.name) if config is not None
                             else {}, component=cls.name, kind="modality")

    @classmethod
    def resolved_options(cls, config: Any) -> dict[str, dict[str, Any]]:
        return {cls.name: as_dict(cls.options_of(config))}

    def elements(self) -> list[Element]:
        """The elements as people read them (labels and spans)."""
        return [Element(str(i), (i, i + 1)) for i in range(self.n)]

    def settings(self) -> dict[str, Any]:
        """What explanation.json records about the division and the removal."""
        return {"elements": self.n}

    # -- encoding -------------------------------------------------------------------------------
    def _encode(self, inputs: Any) -> torch.Tensor:
        return self.encoder(inputs).float()

    def _halve(self) -> None:
        self.chunk = max(1, self.chunk // 2)
        self.oom_halvings += 1
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @torch.inference_mode()
    def embed(self, subsets: torch.Tensor, masked_out: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Unit-norm embeddings of the masked-in (and masked-out) inputs of each subset: this
        process's share of the rows, `batch_size` at a time, gathered at the end."""
        subsets = subsets.to(self.device)
        count = int(subsets.shape[0])
        start, stop = distributed.step_bounds(count, self.processes)
        outs_in: list[torch.Tensor] = []
        outs_out: list[torch.Tensor] = []
        while start < stop:
            left = stop - start
            end = start + math.ceil(left / math.ceil(left / self.chunk))
            try:
                inside, outside = self.compose(subsets[start:end])
                got_in = self._encode(inside)
                got_out = self._encode(outside) if masked_out else None
            except (RuntimeError, MemoryError) as exc:
                if not _is_oom(exc) or self.chunk == 1:
                    raise
                self._halve()
                continue
            outs_in.append(got_in)
            if got_out is not None:
                outs_out.append(got_out)
            start = end
        self.forward_passes += count * (2 if masked_out else 1) * self.passes_per_input
        emb_in = self._gather(outs_in, count)
        return emb_in, (self._gather(outs_out, count) if masked_out else None)

    def _gather(self, parts: list[torch.Tensor], count: int) -> torch.Tensor:
        local = torch.cat(parts) if parts else torch.zeros(0, self._dim(), device=self.device)
        return F.normalize(distributed.gather_rows(local, count, self.processes), dim=-1)

    def _dim(self) -> int:
        one = torch.ones(1, self.n, device=self.device)
        return int(self._encode(self.compose(one)[0]).shape[-1])

    def embed_add(self, base: torch.Tensor, candidates: torch.Tensor, masked_out: bool = True,
                  remove: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Embeddings of base ∪ {c} (base \\ {c} with `remove`) for each element id c."""
        base = base.to(self.device)
        candidates = candidates.to(self.device)
        rows = base.expand(candidates.shape[0], base.shape[0]).clone()
        rows[torch.arange(candidates.shape[0], device=self.device), candidates] = (
            0.0 if remove else 1.0)
        return self.embed(rows, masked_out=masked_out)

    def embed_regions(self) -> torch.Tensor:
        """(N, D) embeddings of each element shown alone: F(s_i) of the effectiveness score."""
        none = torch.zeros(self.n, device=self.device)
        return self.embed_add(none, torch.arange(self.n, device=self.device), masked_out=False)[0]

    def embed_ends(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of the empty input (every element removed) and of the full input: the
        curves' end points."""
        ends = torch.stack([torch.zeros(self.n, device=self.device),
                            torch.ones(self.n, device=self.device)])
        emb = self.embed(ends, masked_out=False)[0]
        return emb[0], emb[1]


def _chain(n: int, device: torch.device) -> torch.Tensor:
    """(N, N) bool: element i touches i - 1 and i + 1 (words of a text, segments of a clip)."""
    adj = torch.zeros(n, n, dtype=torch.bool, device=device)
    if n > 1:
        i = torch.arange(n - 1, device=device)
        adj[i, i + 1] = True
        adj[i + 1, i] = True
    return adj


def element_curves(elements: ElementSet, order: list[int] | torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The embeddings of every prefix of `order` (masked-in and masked-out) and of the two end
    points: what an insertion / deletion curve over elements reads. The search's own prefixes
    are exactly these, so a baseline's element curve and SMDL's are measured alike.

    Returns (empty, full, prefix_in, prefix_out); prefix k holds the first k + 1 elements."""
    order = torch.as_tensor(list(order), dtype=torch.long, device=elements.device)
    steps = torch.zeros(order.shape[0], elements.n, device=elements.device)
    for k in range(order.shape[0]):
        steps[k:, order[k]] = 1.0
    empty, full = elements.embed_ends()
    if order.shape[0] == 0:
        return empty, full, empty[:0], empty[:0]
    prefix_in, prefix_out = elements.embed(steps)
    assert prefix_out is not None
    return empty, full, prefix_in, prefix_out
