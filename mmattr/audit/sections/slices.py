"""Failure slices found in embedding space: size, accuracy against the rest with its test,
names with their p-values (or why none), the metadata that explains them, what happens when
the background or the object is removed or swapped, and explanations of typical mistakes."""

from __future__ import annotations

import numpy as np

from ..evidence import occlusion_row, share_row
from .base import ReportContext, Section, register_section
from .figures import data_uri, fmt, pct, thumb, why_figures


@register_section("slices")
class Slices(Section):
    title = "Failure slices"
    how = ("How to read: each slice is a group of images that sit together in the model's "
           "embedding space (relative to their own class) and fail significantly more often than "
           "the rest (q = false-discovery-adjusted p); its first name is the metadata value that "
           "explains it, else the phrases that set its mistakes apart from the rest of their "
           "classes better than chance (score in standard deviations, permutation p; “not …” = "
           "the mistakes lack it). Then the accuracy with the background or the object removed "
           "or the background swapped, its most typical images (red frame = wrong), and for a "
           "few mistakes the photo and three explanations: of the predicted class, of the true "
           "class, and of the prediction rather than the truth.")
    order = 40
    key = "slices"
    stores = "rows"

    def compute(self, ctx: ReportContext) -> dict:
        r, items = ctx.result, ctx.items
        rows = []
        for sl in r.slices:
            row = sl.to_dict()
            row["images"] = [items[i].image for i in sl.typical]
            if ctx.occlusion is not None:
                m = np.isin(ctx.occlusion["index"], sl.members)
                row["occlusion"] = occlusion_row(ctx.occlusion, m, r.preds, r.labels)
            recs = [ctx.why.get(items[i].key, {}) for i, why in ctx.chosen
                    if why == f"slice {sl.rank}"]
            row["explained"] = len(recs)
            row["shares"] = share_row(recs)
            rows.append(row)
        return {"rows": rows}

    def view(self, data: dict, ctx: ReportContext) -> dict:
        r = ctx.result
        out = []
        for sl, row in zip(r.slices, data["rows"]):
            occ, shares = row.get("occlusion"), row["shares"]
            out.append({
                "occlusion": ({"n": occ["n"], "full": fmt(occ["full"]),
                               "object_only": fmt(occ["object_only"]),
                               "background_only": fmt(occ["background_only"]),
                               "swap_n": occ["swap_n"], "swap_full": fmt(occ["swap_full"]),
                               "background_swap": fmt(occ["background_swap"])}
                              if occ and occ["n"] else None),
                "shares": ({"pred_background": pct(shares["pred_background"]),
                            "true_background": pct(shares["true_background"]),
                            "pred_auc": fmt(shares["pred_background_auc"]),
                            "contrast_auc": fmt(shares["contrast_background_auc"]),
                            "contrast_n": shares["contrast_n"]}
                           if shares["pred_background"] is not None else None),
                "gallery": [{"thumb": thumb(ctx.items[i].path), "correct": bool(r.correct[i]),
                             "caption": f"{ctx.names[r.labels[i]]} → {ctx.names[r.preds[i]]}"}
                            for i in sl.typical],
                "why": why_figures(ctx, [i for i, why in ctx.chosen if why == f"slice {sl.rank}"]),
            })
        png = ctx.pngs.get("slices")
        return {"slices": out, "plot": data_uri(png) if png else None,
                "min_drop": ctx.settings.slices.min_drop, "alpha": ctx.settings.slices.alpha,
                "support": ctx.settings.slices.support(len(ctx.items)),
                "min_errors": ctx.settings.slices.min_errors,
                "tested": r.tested, "note": " ".join(ctx.notes)}
