"""Which words come first: a text explanation against the words that should (a known answer).

A dataset line that explains a text names its ``keywords`` (for a caption naming two objects
of which the image holds one: the present object's colour and shape words). The metric asks
whether they are the explanation's first |K| words: the text's analogue of the pointing game.

Ref. Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016 (the pointing
game, its image analogue).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Sequence

from .base import EvalContext, Metric, MetricSkipped, register_metric


def _norm(word: str) -> str:
    return re.sub(r"[^\w]+", "", word.lower())


def keywords_first(labels: Sequence[str], order: Sequence[int], keywords: Sequence[str]
                   ) -> tuple[float, float]:
    """(1 if the first |K| elements are exactly the keywords (as a multiset, case and
    punctuation ignored) else 0, the share of the first |K| that are keywords)."""
    want = Counter(_norm(k) for k in keywords if _norm(k))
    k = sum(want.values())
    if k == 0:
        raise ValueError("no keywords")
    top = Counter(_norm(labels[i]) for i in list(order)[:k])
    hits = sum((top & want).values())
    return float(hits == k), hits / k


@register_metric("keywords")
class Keywords(Metric):
    """Whether a text explanation's first words are the line's ``keywords`` (↑): columns
    ``keywords_top`` (all of them first) and ``keywords_share`` (the share of the first |K|)."""

    needs_model = False
    modalities = ("text",)
    higher_is_better = {"keywords_top": True, "keywords_share": True}

    def evaluate(self, explanation, context: EvalContext) -> dict[str, Any]:
        keywords = context.fields.get("keywords")
        if isinstance(keywords, str):
            keywords = keywords.split()
        if not keywords:
            raise MetricSkipped("the line names no keywords")
        labels = [row["label"] for row in explanation.elements]
        top, share = keywords_first(labels, explanation.order, keywords)
        return {"keywords_top": top, "keywords_share": share}
