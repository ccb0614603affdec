"""The summary: accuracy with its interval, calibration error, how many slices, label errors
and systematic model errors were found, and per-class accuracy."""

from __future__ import annotations

from .base import ReportContext, Section, register_section
from .figures import data_uri


@register_section("summary")
class Summary(Section):
    title = "Summary"
    how = ("How to read: overall numbers first; a failure slice is a group of similar images (in "
           "the model's own embedding space, or sharing a metadata value) where accuracy is "
           "significantly lower than on the rest.")
    order = 10

    def compute(self, ctx: ReportContext) -> dict:
        r = ctx.result
        return {"accuracy": r.accuracy, "ci_low": r.acc_ci[0], "ci_high": r.acc_ci[1],
                "ece": r.calibration.ece, "slices": len(r.slices),
                "metadata_slices": len(r.metadata_slices),
                "label_errors": int(r.checks.label_error.sum()),
                "systematic_errors": int(r.checks.systematic.sum()),
                "mistakes": int((~r.correct).sum()), "skipped": len(ctx.skipped)}

    def view(self, data: dict, ctx: ReportContext) -> dict:
        png = ctx.pngs.get("class_accuracy")
        return {"plot": data_uri(png) if png else None}
