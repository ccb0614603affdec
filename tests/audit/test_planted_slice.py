"""Proof that the audit finds what is there (issue 12, item 6).

`demo-biased` was trained on a world where every star lies on stripes and stripes appear
nowhere else. Audited on a clean world (every background equally likely for every shape), its
top failure slice must be the planted one: stars off stripes or non-stars on stripes (at least
8 of the slice's 10 most typical images), its name must mention stripes, and the audit's "why"
must show that the background decides (contrastive explanations ranking the stripes first where
they are in the image, and a background swap where they are missing). The clean `demo` model,
audited on the same images, must report no slice of that kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmattr.adapters import list_adapters

try:
    from mmattr.demo_model.zoo import MODEL_DIRS
except ImportError:  # before the model zoo
    MODEL_DIRS = {}

pytestmark = pytest.mark.skipif(
    not {"demo-biased", "demo"} <= set(list_adapters())
    or not (MODEL_DIRS.get("demo-biased", Path("/nonexistent")) / "model.safetensors").is_file(),
    reason="the demo-biased model's weights are not in this checkout (issue 11)")


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
    return mmattr.audit(root, model, out=out, explain_budget=6,
                        settings=AuditSettings(explain_regions=16,
                                               cache_dir=str(tmp_path_factory.mktemp("cache"))))


@pytest.fixture(scope="module")
def biased(clean_set, tmp_path_factory):
    return _audit("demo-biased", clean_set[0], tmp_path_factory)


def test_biased_model_top_slice_is_the_planted_one(clean_set, biased):
    root, records = clean_set
    result = biased
    slices = result.summary["slices"]
    assert slices, f"no slice found (accuracy {result.accuracy:.3f})"
    top = slices[0]
    share = sum(_planted(records[img]) for img in top["images"]) / len(top["images"])
    print(f"top slice: {top['size']} images, accuracy {top['accuracy']:.3f}, drop "
          f"{top['drop']:.3f}, planted share of its 10 most typical {share:.2f}, names "
          f"{[(n['phrase'], round(n['score'], 2)) for n in top['names']]}")
    assert len(top["images"]) == 10 and share >= 0.8
    assert "strip" in top["title"]
    assert all(n["p_value"] <= 0.05 for n in top["names"])


def _mode(rec: dict) -> str:
    """Which planted failure mode an image belongs to ('' for none)."""
    star, stripes = "star" in rec["label"], rec["background"] == "stripes"
    return "star off stripes" if star and not stripes else "non-star on stripes" if stripes and not star else ""


def test_one_slice_per_planted_mode_and_none_mixed(clean_set, biased):
    """Each reported slice holds one failure mode (its typical images: ≥ 80 % of one mode),
    and each mode is reported once."""
    root, records = clean_set
    modes = []
    for sl in biased.summary["slices"]:
        kinds = [_mode(records[i]) for i in sl["images"]]
        top = max(set(kinds), key=kinds.count)
        print(f"slice {sl['rank']} “{sl['title']}”: {kinds.count(top)}/{len(kinds)} {top!r}")
        assert top and kinds.count(top) >= 0.8 * len(kinds)
        modes.append(top)
    assert sorted(modes) == ["non-star on stripes", "star off stripes"]


def test_mistakes_are_not_called_label_errors_and_the_background_is_a_finding(biased):
    """No label is wrong: at most 10 % of the biased model's mistakes may be called label
    errors. The manifest's background column explains the stripes slice, and the first
    finding says so with the column and value."""
    s = biased.summary
    mistakes = s["accuracy"]["n"] - s["accuracy"]["correct"]
    assert s["label_issues"]["flagged"] <= 0.1 * mistakes, (s["label_issues"]["flagged"], mistakes)
    assert s["systematic_errors"]["count"] == mistakes - s["label_issues"]["flagged"]
    found = s["findings"]
    print("\n".join(f["statement"] for f in found))
    stripes = [f for f in found if "background = stripes" in f["statement"]]
    assert stripes and stripes[0]["rank"] <= 3 and stripes[0]["kind"] == "slice"
    assert {m["title"] for m in s["metadata_slices"]} >= {"background = stripes"}


def test_planted_slices_depend_on_the_background(clean_set, biased):
    """Occlusion (seed 002): on the planted slice of non-stars on stripes, removing the
    background (object on black) must repair most predictions."""
    root, records = clean_set
    lifted = []
    for sl in biased.summary["slices"]:
        on_stripes = sum(records[i]["background"] == "stripes" and "star" not in records[i]["label"]
                         for i in sl["images"]) / len(sl["images"])
        occ = sl["occlusion"]
        print(f"slice {sl['rank']}: non-stars on stripes {on_stripes:.2f}, accuracy full "
              f"{occ['full']:.3f}, background removed {occ['object_only']:.3f}, object removed "
              f"{occ['background_only']:.3f}")
        if on_stripes >= 0.8:
            # the share of the slice's mistakes that removing the background repairs
            lifted.append((occ["object_only"] - occ["full"]) / (1 - occ["full"]))
    assert lifted and max(lifted) >= 0.5


def test_planted_slices_are_explained_by_the_background(clean_set, biased):
    """Why the planted slices fail, measured two ways:

    - where the cue is in the image (non-stars on stripes, called stars), the contrastive
      explanation "why star rather than the true class" ranks the background above the object
      (background AUC, 0.5 = no preference), while the predicted class alone does not: the
      object carries the colour that both class names share, so it comes first there;
    - where the cue is missing (stars off stripes, called something else) no region can show
      an absence, so the audit moves the object onto the background of a star the model gets
      right, and accuracy must jump.
    """
    root, records = clean_set
    cue_present = cue_missing = 0
    for sl in biased.summary["slices"]:
        imgs = sl["images"]
        planted = sum(_planted(records[i]) for i in imgs) / len(imgs)
        on_stripes = sum(records[i]["background"] == "stripes" for i in imgs) / len(imgs)
        sh, occ = sl["shares"], sl["occlusion"]
        print(f"slice {sl['rank']}: planted {planted:.2f}, on stripes {on_stripes:.2f}, contrast "
              f"background AUC {sh['contrast_background_auc']} (n={sh['contrast_n']}), predicted "
              f"class alone {sh['pred_background_auc']}, accuracy {occ['swap_full']} -> "
              f"{occ['background_swap']} with the object on a correct star's background "
              f"(n={occ['swap_n']})")
        if planted < 0.8:
            continue
        if on_stripes >= 0.8:
            cue_present += 1
            assert sh["contrast_n"] >= 1
            assert sh["contrast_background_auc"] >= 0.8
            assert sh["contrast_background_auc"] > sh["pred_background_auc"]
        elif on_stripes <= 0.2:
            cue_missing += 1
            assert occ["swap_n"] >= 5
            assert occ["background_swap"] - occ["swap_full"] >= 0.5
    assert cue_present and cue_missing


def test_clean_model_reports_no_planted_slice(clean_set, tmp_path_factory):
    root, records = clean_set
    result = _audit("demo", root, tmp_path_factory)
    for sl in result.summary["slices"]:
        share = sum(_planted(records[img]) for img in sl["images"]) / len(sl["images"])
        striped = any("strip" in n["phrase"] for n in sl["names"][:1])
        print(f"slice {sl['rank']}: planted share {share:.2f}, name {sl['names'][:1]}")
        assert not (share >= 0.8 and striped)
