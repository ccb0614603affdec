"""The keywords metric: whether a text explanation's first |K| words are the line's keywords."""

from __future__ import annotations

import pytest

import mmattr
from mmattr.metrics import EvalContext, MetricSkipped, keywords_first, make_metric


@pytest.mark.parametrize("order,top,share", [
    ([1, 2, 0, 3], 1.0, 1.0),   # "Red" "circle," first: case and punctuation ignored
    ([2, 1, 3, 0], 1.0, 1.0),   # in either order
    ([1, 3, 2, 0], 0.0, 0.5),   # one of the two
    ([0, 3, 1, 2], 0.0, 0.0),   # neither
])
def test_keywords_first(order, top, share):
    labels = ["a", "Red", "circle,", "and"]
    assert keywords_first(labels, order, ["red", "circle"]) == (top, share)


def test_repeated_keywords_count_as_a_multiset():
    labels = ["a", "red", "a", "square"]
    assert keywords_first(labels, [0, 1, 2, 3], ["a", "a"]) == (0.0, 0.5)
    assert keywords_first(labels, [0, 2, 1, 3], ["a", "a"]) == (1.0, 1.0)
    with pytest.raises(ValueError):
        keywords_first(labels, [0, 1, 2, 3], ["", "!"])


def test_the_metric_on_a_text_explanation(bag, bright):
    e = mmattr.explain(bright, text="a zebra on grass", model=bag, explain="text")
    metric = make_metric("keywords")
    assert metric.modalities == ("text",) and not metric.needs_model
    got = metric.evaluate(e, EvalContext(image=bright, fields={"keywords": "zebra"}))
    assert got == {"keywords_top": 1.0, "keywords_share": 1.0}  # zebra is first (the toy's)
    got = metric.evaluate(e, EvalContext(image=bright, fields={"keywords": ["grass"]}))
    assert got == {"keywords_top": 0.0, "keywords_share": 0.0}
    two = metric.evaluate(e, EvalContext(image=bright, fields={"keywords": ["grass", "zebra"]}))
    second = e.elements[e.order[1]]["label"]
    assert two == {"keywords_top": float(second == "grass"),
                   "keywords_share": 1.0 if second == "grass" else 0.5}
    with pytest.raises(MetricSkipped, match="no keywords"):
        metric.evaluate(e, EvalContext(image=bright, fields={}))
