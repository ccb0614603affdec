"""Inputs that could not be read, left out of every number."""

from __future__ import annotations

from .base import ReportContext, Section, register_section


@register_section("skipped")
class Skipped(Section):
    title = "Skipped inputs"
    how = ("How to read: images that could not be read are left out of every number above; fix "
           "or remove them and rerun.")
    order = 90
    key = "skipped"
    stores = "skipped"

    def compute(self, ctx: ReportContext) -> dict:
        return {"skipped": [{"image": b.image, "reason": b.reason, "line": b.line}
                            for b in ctx.skipped]}
