"""Findings: the audit's conclusions as plain ranked statements, each with its numbers and a
link to the section that holds the evidence. Computed last, from the other sections' data;
shown first."""

from __future__ import annotations

from ..stats import format_p
from .base import ReportContext, Section, register_section

#: a change in accuracy under an image edit worth stating
EDIT_EFFECT = 0.2


def _q(q: float | None) -> str:
    got = format_p(q)
    return f"q {got}" if got.startswith("<") else f"q = {got}"


def _why(row: dict) -> list[str]:
    """The image-edit and explanation evidence of an embedding slice, as clauses."""
    out = []
    occ = row.get("occlusion") or {}
    full, swap = occ.get("swap_full"), occ.get("background_swap")
    if occ.get("swap_n", 0) >= 3 and full is not None and swap is not None and swap - full >= EDIT_EFFECT:
        out.append(f"moving the object onto the background of a correctly classified image of "
                   f"its class lifts it to {swap:.2f} (from {full:.2f}, n {occ['swap_n']})")
    full_all, obj = occ.get("full"), occ.get("object_only")
    if occ.get("n", 0) >= 3 and full_all is not None and obj is not None and obj - full_all >= EDIT_EFFECT:
        out.append(f"removing the background lifts it to {obj:.2f}")
    sh = row.get("shares") or {}
    auc = sh.get("contrast_background_auc")
    if sh.get("contrast_n") and auc is not None:
        if auc >= 0.7:
            out.append(f"contrastive explanations (why the prediction rather than the truth) rank "
                       f"the background first, AUC {auc:.2f}")
        elif auc <= 0.3:
            out.append(f"contrastive explanations point at the object, not the background "
                       f"(background AUC {auc:.2f})")
    return out


def _numbers(row: dict) -> str:
    return (f"accuracy {row['accuracy']:.2f} vs {row['rest_accuracy']:.2f} elsewhere "
            f"(n {row['size']}, {_q(row['q_value'])})")


@register_section("findings")
class Findings(Section):
    title = "Findings"
    how = ("How to read: what this audit found, most consequential first; each statement gives "
           "its numbers (q = false-discovery-adjusted p of the test) and links to the section "
           "with the evidence.")
    order = 5
    compute_order = 100
    key = "findings"
    stores = "findings"

    def compute(self, ctx: ReportContext) -> dict:
        got = ctx.computed
        rows = got.get("slices", {}).get("rows", [])
        meta = got.get("metadata", {}).get("rows", [])
        by_title = {m["title"]: m for m in meta}
        found: list[dict] = []
        linked = set()
        for row in rows:
            names = row["names"]
            m = by_title.get(row["same_as_metadata"]) if row["same_as_metadata"] else None
            if m is not None:
                linked.add(m["title"])
                head = f"{m['title']}: {_numbers(m)}"
            elif row["explained_by"]:
                e = row["explained_by"][0]
                head = (f"Slice {row['rank']} ({e['column']} = {e['value']} in {e['share']:.0%} "
                        f"of it, {e['base']:.0%} overall): {_numbers(row)}")
            elif names:
                head = (f"Slice {row['rank']} (“{names[0]['phrase']}”, name p = "
                        f"{format_p(names[0]['p_value'])}): {_numbers(row)}")
            else:
                head = f"Slice {row['rank']} (unnamed: {row['unnamed_reason']}): {_numbers(row)}"
            clauses = _why(row)
            summary = m["summary"] if m is not None else row["summary"]  # of the group named
            text = head + ("; " + "; ".join(clauses) if clauses else "") + f"; {summary}."
            found.append({"kind": "slice", "slice": row["rank"], "section": "slices",
                          "weight": row["errors"], "statement": text,
                          "evidence": {k: row.get(k) for k in ("size", "accuracy", "rest_accuracy",
                                                               "q_value", "occlusion", "shares")}})
        for m in meta:
            if m["title"] in linked or m["same_as_slice"]:
                continue  # the same group as an embedding slice, or a part of one
            part = "".join(f"; {x['share']:.0%} of it lies in slice {x['slice']} (“{x['title']}”)"
                           for x in m.get("in_slices", []))
            found.append({"kind": "metadata", "section": "metadata", "weight": m["errors"],
                          "statement": f"{m['title']}: {_numbers(m)}{part}.",
                          "evidence": {k: m[k] for k in ("size", "accuracy", "rest_accuracy",
                                                         "q_value", "rule")}})
        r = ctx.result
        mistakes = int((~r.correct).sum())
        n_le = int(r.checks.label_error.sum())
        if n_le:
            found.append({"kind": "label_errors", "section": "label-issues", "weight": n_le,
                          "statement": f"{n_le} image(s) are likely mislabelled: the model and "
                                       f"their nearest neighbours agree on another class, and no "
                                       f"neighbour makes the same mistake; they are set aside "
                                       f"from the slices.",
                          "evidence": {"count": n_le}})
        if mistakes:
            sysm = got.get("mistakes", {})
            n_sys, in_sl = sysm.get("count", 0), sysm.get("in_slices", 0)
            found.append({"kind": "systematic", "section": "mistakes", "weight": n_sys * 0.5,
                          "statement": f"{n_sys} of the {mistakes} mistakes are the model's own "
                                       f"(not label errors); {in_sl} of them lie in the failure "
                                       f"slices.",
                          "evidence": {"systematic": n_sys, "in_slices": in_sl,
                                       "mistakes": mistakes}})
        cal = r.calibration
        if cal.ece >= 0.05:
            over = float(r.confidence.mean()) > r.accuracy
            found.append({"kind": "calibration", "section": "calibration", "weight": 0,
                          "statement": f"The model is {'over' if over else 'under'}-confident: "
                                       f"mean confidence {r.confidence.mean():.2f} against "
                                       f"accuracy {r.accuracy:.2f} (ECE {cal.ece:.3f}).",
                          "evidence": {"ece": cal.ece}})
        if not rows and not meta:
            s = ctx.settings.slices
            found.append({"kind": "none", "section": "slices", "weight": -1,
                          "statement": f"No failure slice: no group of at least "
                                       f"{s.support(len(ctx.items))} images fails significantly "
                                       f"more often than the rest ({r.tested} groups tested, "
                                       f"false-discovery rate {s.alpha:.0%}).",
                          "evidence": {"tested": r.tested}})
        # slices first (the most mistakes first), then label errors, the rest, calibration
        priority = {"slice": 0, "metadata": 0, "label_errors": 1, "systematic": 2,
                    "calibration": 3, "none": 4}
        found.sort(key=lambda f: (priority[f["kind"]], -f["weight"]))
        for k, f in enumerate(found, 1):
            f["rank"] = k
        return {"findings": found}
