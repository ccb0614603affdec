"""Proof that the audit finds what is there (issue 12, item 6).

`demo-biased` was trained on a world where every star lies on stripes and stripes appear
nowhere else. Audited on a clean world (every background equally likely for every shape), its
top failure slice must be the planted one: stars off stripes or non-stars on stripes (at least
8 of the slice's 10 most typical images), its name must mention stripes, and the explanations
of its mistakes must put most of their top area on the background (the planted cue). The clean
`demo` model, audited on the same images, must report no slice of that kind.
"""

from __future__ import annotations

import json

import pytest

from mmattr.adapters import list_adapters

pytestmark = pytest.mark.skipif(
    not {"demo-biased", "demo"} <= set(list_adapters()),
    reason="the demo-biased model is not registered in this checkout (issue 11)")


def _planted(rec: dict) -> bool:
    return ("star" in rec["label"]) != (rec["background"] == "stripes")


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory):
    from mmattr.datasets.shapes import export_dataset

    root = tmp_path_factory.mktemp("clean150")
    export_dataset(root, n_scenes=150, seed=11, size=64, n_objects=(1, 1), world="clean")
    records = {}
    for line in (root / "manifest.jsonl").read_text().splitlines():
        rec = json.loads(line)
        records[rec["image"]] = rec
    return root, records


def _audit(model, root, tmp_path_factory):
    import mmattr
    from mmattr.audit import AuditSettings

    out = tmp_path_factory.mktemp(f"audit-{model}") / "out"
    return mmattr.audit(root, model, out=out, explain_budget=4,
                        settings=AuditSettings(explain_regions=16,
                                               cache_dir=str(tmp_path_factory.mktemp("cache"))))


def test_biased_model_top_slice_is_the_planted_one(clean_set, tmp_path_factory):
    root, records = clean_set
    result = _audit("demo-biased", root, tmp_path_factory)
    slices = result.summary["slices"]
    assert slices, f"no slice found (accuracy {result.accuracy:.3f})"
    top = slices[0]
    share = sum(_planted(records[img]) for img in top["images"]) / len(top["images"])
    print(f"top slice: {top['size']} images, accuracy {top['accuracy']:.3f}, drop "
          f"{top['drop']:.3f}, planted share of its 10 most typical {share:.2f}, names "
          f"{[(n['phrase'], round(n['score'], 2)) for n in top['names']]}, background share of "
          f"the predicted class's top area {top['shares']['pred_background']}")
    assert len(top["images"]) == 10 and share >= 0.8
    assert "strip" in top["names"][0]["phrase"]
    assert top["shares"]["pred_background"] is not None
    assert top["shares"]["pred_background"] > 0.5


def test_clean_model_reports_no_planted_slice(clean_set, tmp_path_factory):
    root, records = clean_set
    result = _audit("demo", root, tmp_path_factory)
    for sl in result.summary["slices"]:
        share = sum(_planted(records[img]) for img in sl["images"]) / len(sl["images"])
        striped = any("strip" in n["phrase"] for n in sl["names"][:1])
        print(f"slice {sl['rank']}: planted share {share:.2f}, name {sl['names'][:1]}")
        assert not (share >= 0.8 and striped)
