"""Systematic model errors: the mistakes that are not likely label errors, most confident
first, each linked to its failure slice, with explanations where the budget reached them."""

from __future__ import annotations

from .base import ReportContext, Section, register_section
from .figures import thumb, why_figures


@register_section("mistakes")
class Mistakes(Section):
    title = "Systematic model errors"
    how = ("How to read: the model's own mistakes (likely label errors are listed apart), most "
           "confident first, each with its failure slice; each explained one shows the photo, "
           "then what drove the prediction, what supports the true class, and what tipped it to "
           "the prediction rather than the truth (the most important quarter bright).")
    order = 50
    key = "systematic_errors"

    def _rows(self, ctx: ReportContext) -> list[tuple[int, dict]]:
        r = ctx.result
        where = r.slice_of()
        return [(int(i), {"image": ctx.items[i].image, "label": ctx.names[r.labels[i]],
                          "predicted": ctx.names[r.preds[i]],
                          "confidence": float(r.confidence[i]),
                          "slice": int(where[i]) or None})
                for i in r.systematic[: ctx.settings.top_mistakes]]

    def compute(self, ctx: ReportContext) -> dict:
        return {"count": int(ctx.result.checks.systematic.sum()),
                "in_slices": int((ctx.result.slice_of()[ctx.result.checks.systematic] > 0).sum()),
                "top": [row for _, row in self._rows(ctx)]}

    def view(self, data: dict, ctx: ReportContext) -> dict:
        explained = {i for i, _ in ctx.chosen}
        figs = []
        for i, row in self._rows(ctx):
            caption = (f"{row['image']}: {row['label']} → {row['predicted']} "
                       f"({row['confidence']:.2f})"
                       + (f" · slice {row['slice']}" if row["slice"] else " · in no slice"))
            got = why_figures(ctx, [i]) if i in explained else []
            if got:
                got[0]["caption"] = caption + (" · photo · why predicted · why true · why "
                                               "predicted rather than true")
                figs.append(got[0])
            else:
                figs.append({"thumb": thumb(ctx.items[i].path), "caption": caption})
        return {"figures": figs}
