"""Confusion: the row-normalised matrix and its largest off-diagonal cells."""

from __future__ import annotations

from .base import ReportContext, Section, register_section
from .figures import data_uri


@register_section("confusion")
class Confusion(Section):
    title = "Confusion"
    how = ("How to read: row = true class, column = predicted class, colour = share of the true "
           "class; the table lists the largest off-diagonal cells.")
    order = 30

    def compute(self, ctx: ReportContext) -> dict:
        return {"most_confused": ctx.result.confused}

    def view(self, data: dict, ctx: ReportContext) -> dict:
        png = ctx.pngs.get("confusion")
        return {"plot": data_uri(png) if png else None}
