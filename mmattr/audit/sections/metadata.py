"""Metadata slices: values (and pairs of values) of the dataset's columns and image properties
on which the model fails significantly more often than on the rest."""

from __future__ import annotations

from .base import ReportContext, Section, register_section


@register_section("metadata")
class MetadataSlices(Section):
    title = "Metadata slices"
    how = ("How to read: each row is a value of a manifest column (or of an image property: size, "
           "aspect, brightness, contrast, sharpness) or a pair of values, with its accuracy "
           "against the rest and the false-discovery-adjusted q of the test that it fails more "
           "often; only significant rows are listed, and a pair only when neither of its values "
           "is listed alone.")
    order = 45
    key = "metadata_slices"
    stores = "rows"

    def compute(self, ctx: ReportContext) -> dict:
        r = ctx.result
        embedded = {sl.same_as: sl.rank for sl in r.slices if sl.same_as}
        rows = []
        for m in r.metadata_slices:
            d = m.to_dict()
            d["images"] = [ctx.items[i].image for i in m.typical]
            # the embedding slice it is (or mostly lies in)
            inside = int(m.same_as.split()[-1]) if m.same_as.startswith("slice ") else None
            d["same_as_slice"] = embedded.get(m.title(), inside)
            # how much of it the embedding slices hold: a value can stand for a slice's cause
            # or merely go with it (the stars of a slice are also the smallest objects)
            mine = set(m.members.tolist())
            d["in_slices"] = [{"slice": sl.rank, "title": sl.title(),
                               "share": len(mine & set(sl.members.tolist())) / max(m.size, 1)}
                              for sl in r.slices]
            d["in_slices"] = [x for x in d["in_slices"] if x["share"] >= 0.25]
            rows.append(d)
        return {"rows": rows, "columns": [{"name": c.name, "kind": c.kind,
                                           "values": len(set(c.values) - {None})}
                                          for c in r.columns]}
