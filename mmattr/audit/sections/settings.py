"""Everything needed to rerun the audit, and which naming phrases were left out and why."""

from __future__ import annotations

from .base import ReportContext, Section, register_section


@register_section("settings")
class Settings(Section):
    title = "Settings"
    how = "How to read: everything needed to rerun this audit; every number is also in audit.json."
    order = 100
    key = "naming"
    stores = "naming"  # the phrases kept, dropped and merged; the rows are in "settings"

    def compute(self, ctx: ReportContext) -> dict:
        s, summ = ctx.settings, ctx.summary
        sl = s.slices
        rows = [("model", summ["model"]["spec"]), ("mode", summ["mode"]),
                ("dataset", summ["dataset"]["path"]),
                ("vocabulary", f"{len(ctx.names)} classes ({s.vocabulary or 'default'})"),
                ("templates", " | ".join(summ["settings"]["templates_used"])
                 or "none (classifier head)"),
                ("label check", f"{ctx.result.checks.k} nearest neighbours"
                 + (f", reference model {s.reference_model}" if s.reference_model else "")),
                ("slices", f"{sl.method}, FDR {sl.alpha}, min drop {sl.min_drop}, "
                           f"min support {sl.support(len(ctx.items))} images and {sl.min_errors} mistakes, "
                           f"{ctx.result.tested} hypotheses tested"),
                ("names", f"{s.name_permutations} permutations, family-wise level {s.name_alpha}"),
                ("explanations", f"{s.explain_method} {s.explain_division} "
                                 f"{s.explain_regions} regions, budget {s.explain_budget}"),
                ("encoding", f"{summ['encoding']['encoded']} encoded, "
                             f"{summ['encoding']['from_cache']} from cache")]
        naming = ctx.naming.to_dict() if ctx.naming is not None else None
        return {"rows": [list(r) for r in rows], "naming": naming}
