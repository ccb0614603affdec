"""Calibration: the reliability diagram and the expected calibration error."""

from __future__ import annotations

from .base import ReportContext, Section, register_section
from .figures import data_uri


@register_section("calibration")
class Calibration(Section):
    title = "Calibration"
    how = ("How to read: each bar is the accuracy of the images whose top confidence falls in "
           "that bin; bars below the dashed diagonal mean the model is over-confident there. "
           "ECE is the image-weighted mean gap.")
    order = 20

    def compute(self, ctx: ReportContext) -> dict:
        return {"ece": ctx.result.calibration.ece, "mce": ctx.result.calibration.mce}

    def view(self, data: dict, ctx: ReportContext) -> dict:
        png = ctx.pngs.get("reliability")
        return {"plot": data_uri(png) if png else None}
