"""SMDL: attribution as submodular subset selection over sub-regions, or over the words of a
text or the segments of an audio clip (any `mmattr.elements.ElementSet`).

Ref. Chen et al., "Less is More: Fewer Interpretable Region via Submodular Subset Selection",
ICLR 2024.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .._version import __version__
from ..adapters.base import Adapter
from ..division import DivisionContext, divider_from_config
from ..explanation import Explanation
from ..metrics import auc
from ..objective import SMDLObjective, resolve_score, target_match
from ..regions import RegionStack
from ..search import search_from_config
from ..targets import Target
from ..vocabulary import build_vocabulary, resolve_vocabulary  # noqa: F401  (old path)
from .base import Explainer, ProgressFn, register_explainer


@register_explainer("smdl")
class SMDLExplainer(Explainer):
    """Divide, then order the sub-regions (words, segments) greedily by the SMDL objective."""

    name = "smdl"
    uses_division = True
    uses_search = True
    modalities = ("image", "text", "audio")

    def explain(self, image: np.ndarray, target: Target, adapter: Adapter,
                progress: ProgressFn | None = None) -> Explanation:
        cfg = self.config
        if cfg.explain != "image":
            return self._explain_elements(image, target, adapter, progress)
        t0 = time.perf_counter()
        divider = divider_from_config(cfg)
        labels = divider.divide(image, DivisionContext(adapter, target, cfg, self.context))
        prior_passes = int(getattr(divider, "forward_passes", 0))
        t_divide = time.perf_counter()

        with torch.inference_mode():
            target_emb = adapter.encode_target(target).to(adapter.device)
            vocab = build_vocabulary(cfg.vocabulary, target, adapter, target_emb)
            vocab_emb = vocab.embeddings if vocab is not None else None
            target_index = vocab.target_index if vocab is not None else None

            stack = RegionStack(image, labels, adapter, batch_size=cfg.batch_size,
                                context=self.context,
                                fill=self.fill_for(image, adapter.device))
            # F(s_i) costs N passes; only the effectiveness term needs it.
            region_emb = (stack.embed_regions() if cfg.weights.effectiveness != 0
                          else torch.eye(stack.n, device=adapter.device))
            mode, why = resolve_score(cfg.score, vocab.source if vocab is not None else None,
                                      target.kind)
            objective = SMDLObjective(target_emb, region_emb, cfg.weights, mode=mode,
                                      vocabulary=vocab_emb, target_index=target_index,
                                      logit_scale=adapter.logit_scale, confidence=cfg.confidence,
                                      logits_fn=adapter.logits)
            empty_emb, full_emb = stack.embed_ends()
            t_prep = time.perf_counter()
            search = search_from_config(cfg)
            result = search.run(objective, stack, progress=progress)
            t_search = time.perf_counter()

            # Curves from the search's own embeddings: probability when a vocabulary exists.
            curve_score = "probability" if vocab_emb is not None else "cosine"
            def curve(first: torch.Tensor, rest: torch.Tensor) -> list[float]:
                return target_match(torch.cat([first[None], rest]), curve_score, target_emb,
                                    vocab_emb, target_index, adapter.logit_scale,
                                    adapter.logits).tolist()
            ins = curve(empty_emb, result.prefix_in)
            dele = curve(full_emb, result.prefix_out)
        area = stack.area.cpu().numpy()
        x = np.concatenate([[0.0], np.cumsum(area[result.order])])
        x[-1] = 1.0
        attribution = self._attribution(labels, result.order, result.scores)
        seconds = time.perf_counter() - t0
        return Explanation(
            image=image, attribution=attribution, regions=labels, order=result.order,
            scores=result.scores, terms=result.terms, curve_x=x.tolist(),
            insertion_curve=ins, deletion_curve=dele,
            insertion_auc=auc(x, ins), deletion_auc=auc(x, dele),
            curve_score=curve_score, forward_passes=stack.forward_passes + prior_passes,
            seconds=seconds,
            method="smdl", model=adapter.describe(), target={**target.to_dict(), "label": target.label},
            settings={**cfg.to_dict(), "model": adapter.spec,
                      # resolved options of the components this run used (defaults filled in)
                      "options": {**self.resolved_options(), **divider.resolved_options(),
                                  search.name: dict(search.options)},
                      "vocabulary_source": vocab.source if vocab else "none",
                      "vocabulary_size": len(vocab.names) if vocab else 0,
                      "target_index": target_index,
                      "objective": objective.settings(), "score_used": mode, "score_reason": why,
                      "search_settings": result.extra,
                      "division_settings": divider.settings(), "prior_forward_passes": prior_passes},
            version=__version__,
            timings={"divide": t_divide - t0, "prepare": t_prep - t_divide,
                     "search": t_search - t_prep, "total": seconds})

    def _explain_elements(self, source, target: Target, adapter: Adapter,
                          progress: ProgressFn | None = None) -> Explanation:
        """The same search and objective over the words of a text or the segments of a clip:
        only the element set differs (`mmattr.elements`)."""
        from ._elements import (CurveScore, build_elements, check_target, curves,
                                element_explanation, element_vocabulary, rank_values,
                                score_mode)

        cfg = self.config
        check_target(cfg.explain, target)
        t0 = time.perf_counter()
        with torch.inference_mode():
            elements = build_elements(cfg, source, adapter, self.context)
            target_emb = adapter.encode_target(target).float().to(adapter.device)
            vocab = element_vocabulary(cfg, target, adapter, target_emb)
            region_emb = (elements.embed_regions() if cfg.weights.effectiveness != 0
                          else torch.eye(elements.n, device=adapter.device))
            mode, why = score_mode(cfg, vocab, target)
            objective = SMDLObjective(target_emb, region_emb, cfg.weights, mode=mode,
                                      vocabulary=vocab.embeddings if vocab else None,
                                      target_index=vocab.target_index if vocab else None,
                                      logit_scale=adapter.logit_scale, confidence=cfg.confidence,
                                      logits_fn=adapter.logits)
            empty_emb, full_emb = elements.embed_ends()
            t_prep = time.perf_counter()
            search = search_from_config(cfg)
            result = search.run(objective, elements, progress=progress)
            t_search = time.perf_counter()
            score = CurveScore(target_emb, vocab, adapter)
            x, ins, dele = curves(elements, result.order, score,
                                  (empty_emb, full_emb, result.prefix_in, result.prefix_out))
        values = rank_values(elements.n, result.order, result.scores, cfg.attribution)
        seconds = time.perf_counter() - t0
        return element_explanation(
            method="smdl", elements=elements, target=target, adapter=adapter,
            order=result.order, scores=result.scores, terms=result.terms, values=values, x=x,
            ins=ins, dele=dele, curve_score=score.mode, forward_passes=elements.forward_passes,
            seconds=seconds,
            settings={**cfg.to_dict(), "model": adapter.spec,
                      "options": {**self.resolved_options(), **type(elements).resolved_options(cfg),
                                  search.name: dict(search.options)},
                      "vocabulary_source": vocab.source if vocab else "none",
                      "vocabulary_size": len(vocab.names) if vocab else 0,
                      "target_index": vocab.target_index if vocab else None,
                      "objective": objective.settings(), "score_used": mode, "score_reason": why,
                      "search_settings": result.extra},
            timings={"prepare": t_prep - t0, "search": t_search - t_prep, "total": seconds})

    def _attribution(self, labels: np.ndarray, order: list[int], scores: list[float]) -> np.ndarray:
        n = len(order)
        values = np.zeros(n, np.float32)
        if self.config.attribution == "rank":
            values[order] = (n - np.arange(n, dtype=np.float32)) / n
        else:
            gains = np.diff(np.concatenate([[0.0], np.asarray(scores, np.float64)]))
            values[order] = gains.astype(np.float32)
        return values[labels]
