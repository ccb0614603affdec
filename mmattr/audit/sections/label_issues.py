"""Likely label errors: mistakes whose neighbours in embedding space carry the predicted class
and show no shared failure (see `mmattr.audit.label_issues`)."""

from __future__ import annotations

from .base import ReportContext, Section, register_section
from .figures import thumb


@register_section("label-issues")
class LabelIssues(Section):
    title = "Likely label errors"
    how = ("How to read: mistakes whose label is probably wrong: most of their nearest neighbours "
           "in the model's embedding space (themselves left out) carry the predicted class, few "
           "carry the image's own label, and none of them makes the same mistake (a model that "
           "fails on a group alike always does). Check these labels before trusting the "
           "accuracy; every other mistake is listed as a systematic model error.")
    order = 60
    key = "label_issues"

    def compute(self, ctx: ReportContext) -> dict:
        r, names, items = ctx.result, ctx.names, ctx.items
        c = r.checks
        top = [{"image": items[i].image, "label": names[r.labels[i]],
                "suggested": names[r.preds[i]], "mistakenness": float(c.mistakenness[i]),
                "self_confidence": float(c.self_confidence[i]),
                "label_support": float(c.label_support[i]),
                "prediction_support": float(c.prediction_support[i]),
                **({"reference_predicted": names[c.reference_pred[i]]}
                   if c.reference_pred is not None else {})}
               for i in c.label_errors(ctx.settings.top_mistakes)]
        return {"flagged": int(c.label_error.sum()), "neighbours": c.k,
                "set_back": 0 if c.demoted is None else len(c.demoted),
                "method": "k nearest neighbours in embedding space"
                          + (" of the reference model, and its prediction"
                             if c.reference_pred is not None else ""),
                "top": top}

    def view(self, data: dict, ctx: ReportContext) -> dict:
        figs = []
        for i, row in zip(ctx.result.checks.label_errors(ctx.settings.top_mistakes), data["top"]):
            figs.append({"thumb": thumb(ctx.items[i].path),
                         "caption": f"labelled {row['label']}, looks like {row['suggested']}: "
                                    f"{row['prediction_support']:.0%} of its neighbours carry "
                                    f"that class, {row['label_support']:.0%} its label"})
        return {"figures": figs}
