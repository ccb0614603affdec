"""The SMDL objective: a score for each candidate subset, computed from embeddings alone.

Ref. Chen et al., "Less is More: Fewer Interpretable Region via Submodular Subset Selection",
ICLR 2024, eq. 4-8; the probability variant follows the authors' multimodal reference code.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from .errors import InputError

SCORE_MODES = ("cosine", "probability")
#: what a config may ask for: a mode, or ``auto`` (the default; see `resolve_score`)
SCORE_CHOICES = ("auto", *SCORE_MODES)
#: target kinds that name something a vocabulary can hold (a prompt, a class)
NAMED_TARGETS = ("text", "class")
#: (B, D) embeddings, (K, D) vocabulary → (B, K) logits
LogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
CONFIDENCE_MODES = ("entropy", "evidential")


@dataclass(frozen=True)
class SMDLWeights:
    """λ1..λ4; the default is the reference's CLIP / ImageBind multimodal setting (0, 0.05, 1, 1)."""

    confidence: float = 0.0
    effectiveness: float = 0.05
    consistency: float = 1.0
    collaboration: float = 1.0


def target_match(emb: torch.Tensor, mode: str, target: torch.Tensor,
                 vocabulary: torch.Tensor | None = None, target_index: int | None = None,
                 logit_scale: float = 100.0, logits_fn: LogitsFn | None = None) -> torch.Tensor:
    """(B, D) unit-norm embeddings → (B,) cosine to the target, or the target's softmax
    probability over the vocabulary with logits = logit_scale · cosine, or
    ``logits_fn(emb, vocabulary)`` when given (`Adapter.logits`: a classifier's exact head)."""
    if mode == "cosine":
        return emb @ target.to(emb.dtype)
    assert vocabulary is not None and target_index is not None
    if logits_fn is not None:
        return logits_fn(emb, vocabulary).softmax(-1)[:, target_index]
    return (logit_scale * emb @ vocabulary.T.to(emb.dtype)).softmax(-1)[:, target_index]


def resolve_score(score: str, vocabulary: str | None, target_kind: str) -> tuple[str, str]:
    """The mode the objective uses for `score` and the reason, as explanation.json records it.

    ``auto`` is the probability over the vocabulary when there is one (`vocabulary`: its
    source, e.g. ``shapes``, a file, the classifier's own labels) and the target is named in it
    (a prompt or a class): the target then competes with the other classes, so regions that
    match every object of the image (a shape's outline, a shared colour) stop scoring and the
    explanation becomes specific to the named object. A cosine rises for any object the image
    embedding moves towards. Without a vocabulary, or for a target that is no class (an image,
    an embedding such as the audit's contrast of two classes), it is the cosine. ``cosine``
    and ``probability`` are taken as given.
    """
    if score not in SCORE_CHOICES:
        raise InputError(f"unknown score {score!r}; use {', '.join(SCORE_CHOICES)}")
    if score != "auto":
        return score, "as asked"
    if vocabulary is None:
        return "cosine", "auto: no vocabulary, so the cosine to the target"
    if target_kind not in NAMED_TARGETS:
        return "cosine", (f"auto: a{'n' if target_kind[0] in 'aei' else ''} {target_kind} "
                          "target is no class of the vocabulary, so the cosine to it")
    return "probability", (f"auto: the target's probability over the vocabulary ({vocabulary}), "
                           "specific to the named target")


class Objective(ABC):
    """Scores candidate subsets from the embeddings of their masked images."""

    @abstractmethod
    def score(self, subsets: torch.Tensor, emb_in: torch.Tensor,
              emb_out: torch.Tensor | None) -> torch.Tensor:
        """(C, N) subsets, (C, D) unit-norm embeddings → (C,) objective values."""


class SMDLObjective(Objective):
    """f(S) = λ1·conf + λ2·eff + λ3·cons + λ4·colla.

    `mode` picks how an image embedding is compared with the target: ``cosine`` (the paper,
    eq. 7-8) or ``probability``: softmax over the vocabulary of `logit_scale`·cosine, read at
    the target's entry (the reference code). Confidence is ``entropy`` (1 - H(p)/log K, the
    reference) or ``evidential`` (1 - K/Σ(e+1), e = exp(clamp(z, -10, 10)), the paper's eq. 4)
    and needs a vocabulary.
    """

    def __init__(self, target: torch.Tensor, region_emb: torch.Tensor,
                 weights: SMDLWeights = SMDLWeights(), mode: str = "cosine",
                 vocabulary: torch.Tensor | None = None, target_index: int | None = None,
                 logit_scale: float = 100.0, confidence: str = "entropy",
                 logits_fn: LogitsFn | None = None) -> None:
        if mode not in SCORE_MODES:
            raise InputError(f"unknown score {mode!r}; use {' or '.join(SCORE_MODES)}")
        if confidence not in CONFIDENCE_MODES:
            raise InputError(f"unknown confidence {confidence!r}; use {' or '.join(CONFIDENCE_MODES)}")
        needs_vocab = mode == "probability" or weights.confidence != 0
        if needs_vocab and (vocabulary is None or vocabulary.shape[0] < 2):
            raise InputError("the probability score and the confidence term need a vocabulary of "
                             "at least two classes (--vocabulary FILE, or several --text prompts)")
        if mode == "probability" and target_index is None:
            raise InputError("the probability score needs the target's index in the vocabulary")
        self.target = target.float()
        self.weights = weights
        self.mode = mode
        self.vocabulary = vocabulary.float() if vocabulary is not None else None
        self.target_index = target_index
        self.logit_scale = float(logit_scale)
        self.confidence_mode = confidence
        self.logits_fn = logits_fn
        cos = (region_emb @ region_emb.T).clamp(-1.0, 1.0)
        # dist = arccos(cos)/π as the reference; a region is never its own nearest neighbour.
        self._dist = torch.arccos(cos) / math.pi
        self._dist.fill_diagonal_(float("inf"))

    # -- the four terms ---------------------------------------------------------------------
    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        assert self.vocabulary is not None
        if self.logits_fn is not None:
            return self.logits_fn(emb, self.vocabulary)
        return self.logit_scale * emb @ self.vocabulary.T

    def match(self, emb: torch.Tensor) -> torch.Tensor:
        """How well embeddings match the target: cosine, or probability over the vocabulary."""
        return target_match(emb, self.mode, self.target, self.vocabulary, self.target_index,
                            self.logit_scale, self.logits_fn)

    def confidence(self, emb_in: torch.Tensor) -> torch.Tensor:
        z = self.logits(emb_in)
        k = z.shape[-1]
        if self.confidence_mode == "evidential":
            evidence = torch.exp(z.clamp(-10.0, 10.0))
            return 1.0 - k / (evidence + 1.0).sum(-1)
        p = z.softmax(-1)
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)
        return 1.0 - entropy / math.log(k)

    def effectiveness(self, subsets: torch.Tensor) -> torch.Tensor:
        """Σ_{i∈S} min_{j∈S, j≠i} dist(F(s_i), F(s_j)); 0 for |S| ≤ 1."""
        member = subsets.bool()
        dist = self._dist.to(subsets.device)
        n = dist.shape[0]
        chunk = max(1, (1 << 22) // (n * n))  # bounds the (chunk, N, N) temporary
        parts = []
        for start in range(0, member.shape[0], chunk):
            m = member[start:start + chunk]
            # Distances to members only; non-members are +inf so they are never a minimum.
            masked = dist.unsqueeze(0).masked_fill(~m.unsqueeze(1), float("inf"))
            nearest = masked.min(-1).values
            ok = m & torch.isfinite(nearest)
            parts.append(torch.where(ok, nearest, torch.zeros_like(nearest)).sum(-1))
        return torch.cat(parts) if parts else torch.zeros(0, device=subsets.device)

    def terms(self, subsets: torch.Tensor, emb_in: torch.Tensor,
              emb_out: torch.Tensor | None) -> dict[str, torch.Tensor]:
        w = self.weights
        zeros = torch.zeros(emb_in.shape[0], device=emb_in.device)
        out = {
            "confidence": self.confidence(emb_in) if w.confidence else zeros,
            "effectiveness": self.effectiveness(subsets) if w.effectiveness else zeros,
            "consistency": self.match(emb_in),
            "collaboration": 1.0 - self.match(emb_out) if emb_out is not None else zeros,
        }
        return out

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        w = self.weights
        return (w.confidence * terms["confidence"] + w.effectiveness * terms["effectiveness"]
                + w.consistency * terms["consistency"] + w.collaboration * terms["collaboration"])

    def score(self, subsets: torch.Tensor, emb_in: torch.Tensor,
              emb_out: torch.Tensor | None) -> torch.Tensor:
        return self.combine(self.terms(subsets, emb_in, emb_out))

    def settings(self) -> dict:
        return {"weights": asdict(self.weights), "score": self.mode,
                "confidence": self.confidence_mode, "logit_scale": self.logit_scale}
