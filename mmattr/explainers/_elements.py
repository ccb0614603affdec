"""What every explanation of a text or an audio clip shares: building its element set, the
curves over elements, the score, and the Explanation (per-character or per-sample maps).

SMDL and the baselines of those modalities all measure their insertion and deletion curves the
same way: the elements revealed (removed) in the method's order, each prefix composed by the
same `ElementSet` and scored by the same target match, so their AUCs compare like for like.

Ref. Petsiuk et al., "RISE", BMVC 2018 (insertion and deletion curves); Chen et al., "Less is
More", ICLR 2024 (curves from the search's prefixes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..adapters.base import Adapter
from ..elements import MODALITIES, ElementSet, element_curves
from ..errors import InputError, arg
from ..explanation import Explanation
from ..metrics.base import auc
from ..objective import resolve_score, target_match
from ..targets import Target
from ..vocabulary import Vocabulary, build_vocabulary

#: settings that only mean something for an image (its division, its fill, its resizing):
#: left out of a text's or a clip's explanation.json, where they would describe nothing
IMAGE_ONLY_SETTINGS = ("division", "regions", "max_side", "fill")

#: target kinds each modality can be explained against (a text against itself is no match)
TARGETS = {"text": ("image", "audio", "embedding"),
           "audio": ("image", "text", "class", "embedding")}


def build_elements(config: Any, source: Any, adapter: Adapter, context: Any) -> ElementSet:
    """The element set of `source` (a text, an audio clip) for ``config.explain``."""
    cls = MODALITIES.get(config.explain)
    return cls.from_input(source, adapter, config, processes=context.processes())


def check_target(modality: str, target: Target) -> None:
    allowed = TARGETS.get(modality)
    if allowed is not None and target.kind not in allowed:
        raise InputError(f"explaining {modality} needs a target of another modality "
                         f"({', '.join(allowed)}), not a {target.kind}")


def element_vocabulary(config: Any, target: Target, adapter: Adapter,
                       target_emb: torch.Tensor) -> Vocabulary | None:
    """The vocabulary of a probability score, when the modality has one: texts compete as
    classes of an image or a clip, so explaining text has none (its words would compete with
    the captions they are made of); audio against a text uses it as images do."""
    if config.explain == "text":
        return None
    return build_vocabulary(config.vocabulary, target, adapter, target_emb)


def score_mode(config: Any, vocab: Vocabulary | None, target: Target) -> tuple[str, str]:
    """The objective's score for a modality (`objective.resolve_score`, with the reason)."""
    if config.explain == "text":
        if config.score == "probability":
            raise InputError(f"{arg('score', 'probability')} needs a vocabulary of texts the "
                             "explained text competes with; explaining text uses the cosine "
                             f"({arg('score', 'cosine')} or auto)")
        return "cosine", ("as asked" if config.score == "cosine" else
                          f"auto: explaining text, the cosine to the {target.kind} target")
    return resolve_score(config.score, vocab.source if vocab is not None else None, target.kind)


class CurveScore:
    """The target match the element curves read: the probability over the vocabulary when there
    is one, else the cosine (as the image side's curves)."""

    def __init__(self, target_emb: torch.Tensor, vocab: Vocabulary | None, adapter: Adapter) -> None:
        self.target_emb, self.adapter = target_emb, adapter
        self.vocab_emb = vocab.embeddings if vocab is not None else None
        self.index = vocab.target_index if vocab is not None else None
        self.mode = "probability" if vocab is not None else "cosine"

    def __call__(self, emb: torch.Tensor) -> list[float]:
        return target_match(emb, self.mode, self.target_emb, self.vocab_emb, self.index,
                            self.adapter.logit_scale, self.adapter.logits).tolist()


def curves(elements: ElementSet, order: list[int], score: CurveScore,
           prefixes: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
           ) -> tuple[list[float], list[float], list[float]]:
    """x (the share of the input revealed), insertion and deletion curves of `order`; the
    prefix embeddings are measured unless given (the search's own)."""
    empty, full, p_in, p_out = prefixes if prefixes is not None else element_curves(elements, order)
    ins = score(torch.cat([empty[None], p_in]))
    dele = score(torch.cat([full[None], p_out]))
    w = elements.weights.detach().cpu().numpy().astype(np.float64)
    x = np.concatenate([[0.0], np.cumsum(w[list(order)])])
    x[-1] = 1.0
    return x.tolist(), ins, dele


def element_maps(elements: ElementSet, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-element values → the explanation's maps at the input's own resolution: per
    character of a text (-1 between words), per sample of a clip."""
    items = elements.elements()
    length = (len(getattr(elements, "text", "")) if elements.name == "text"
              else int(items[-1].span[1]) if items else 0)
    labels = np.full(length, -1, np.int32)
    for i, e in enumerate(items):
        labels[e.span[0]:e.span[1]] = i
    att = np.where(labels >= 0, np.asarray(values, np.float32)[np.maximum(labels, 0)], 0.0)
    return att.astype(np.float32), labels


def element_rows(elements: ElementSet, order: list[int], values: np.ndarray
                 ) -> list[dict[str, Any]]:
    """explanation.json's ``explained.elements``: each element, its value and rank."""
    rank = {int(e): r + 1 for r, e in enumerate(order)}
    return [{**e.to_dict(), "value": float(values[i]), "rank": rank.get(i)}
            for i, e in enumerate(elements.elements())]


def target_image(target: Target) -> np.ndarray:
    """The target's image for the pictures (an empty array when the target is no image)."""
    if target.kind == "image":
        from ..image import load_image

        return target.pixels if target.pixels is not None else load_image(target.image)
    return np.zeros((0, 0, 3), np.uint8)


def element_explanation(*, method: str, elements: ElementSet, target: Target, adapter: Adapter,
                        order: list[int], scores: list[float], terms: dict[str, list[float]],
                        values: np.ndarray, x: list[float], ins: list[float],
                        dele: list[float], curve_score: str, forward_passes: int,
                        seconds: float, settings: dict[str, Any],
                        timings: dict[str, float]) -> Explanation:
    """The Explanation of a text or an audio clip (see `Explanation.modality`)."""
    values = np.asarray(values, np.float32)
    attribution, labels = element_maps(elements, values)
    clip = getattr(elements, "clip", None)
    return Explanation(
        image=target_image(target), attribution=attribution, regions=labels, order=list(order),
        scores=list(scores), terms=terms, curve_x=x, insertion_curve=ins, deletion_curve=dele,
        insertion_auc=auc(x, ins), deletion_auc=auc(x, dele), curve_score=curve_score,
        forward_passes=int(forward_passes), seconds=seconds, method=method,
        model=adapter.describe(), target={**target.to_dict(), "label": target.label},
        settings={**{k: v for k, v in settings.items() if k not in IMAGE_ONLY_SETTINGS},
                  "element_settings": elements.settings()}, version=__version__,
        timings=timings, modality=elements.name,
        elements=element_rows(elements, list(order), values),
        text=getattr(elements, "text", None) if elements.name == "text" else None,
        waveform=clip.waveform if clip is not None else None,
        sample_rate=clip.sample_rate if clip is not None else None,
        source=getattr(clip, "source", None))


def rank_values(n: int, order: list[int], scores: list[float] | None, mode: str) -> np.ndarray:
    """SMDL's value per element: (N − rank) / N, or its marginal gain (``--attribution``)."""
    values = np.zeros(n, np.float32)
    if mode == "rank" or scores is None:
        values[order] = (n - np.arange(n, dtype=np.float32)) / n
    else:
        gains = np.diff(np.concatenate([[0.0], np.asarray(scores, np.float64)]))
        values[order] = gains.astype(np.float32)
    return values
