"""The report's section registry: one contract over every registered section, and a new
section added in one place (a subclass with a template) reaching report.html and audit.json."""

from __future__ import annotations

import json
from importlib import resources


from mmattr.audit.sections import SECTIONS, Section, register_section, sections_in_order


def test_every_section_declares_itself_and_has_a_template():
    classes = sections_in_order()
    assert [c.id for c in classes][:2] == ["findings", "summary"]   # findings first
    assert max(classes, key=lambda c: c.compute_order).id == "findings"  # computed last
    folder = resources.files("mmattr.audit") / "templates" / "sections"
    for cls in classes:
        assert cls.id and cls.title and cls.how.startswith("How to read"), cls
        assert isinstance(cls.order, int) and issubclass(cls, Section)
        assert cls.template_source or (folder / f"{cls.id}.html.j2").is_file(), cls.id
        if cls.stores:
            assert cls.key, cls.id


def test_every_section_is_on_the_page_and_in_audit_json(audited):
    result, _ = audited
    html = result.report.read_text()
    summary = json.loads((result.out / "audit.json").read_text())
    for cls in sections_in_order():
        assert f'data-section="{cls.id}"' in html, cls.id
        if cls.key:
            assert cls.key in summary, cls.key
    json.dumps(summary, allow_nan=False)  # strict JSON: no NaN anywhere


def test_a_new_section_is_one_class(shapes_set, tmp_path):
    import mmattr
    from mmattr.audit import AuditSettings

    @register_section("hardest-classes")
    class Hardest(Section):
        title = "Hardest classes"
        how = "How to read: the three classes with the lowest accuracy."
        order = 35
        key = "hardest_classes"
        template_source = ("<ol>{% for c in data.classes %}<li class='hard'>{{ c.name }} "
                           "{{ '%.2f'|format(c.accuracy) }}</li>{% endfor %}</ol>")

        def compute(self, ctx):
            worst = sorted(ctx.result.classes, key=lambda c: c.accuracy)[:3]
            return {"classes": [{"name": c.name, "accuracy": c.accuracy} for c in worst]}

    try:
        r = mmattr.audit(shapes_set, "demo", out=tmp_path / "out", explain_budget=0,
                         settings=AuditSettings(cache_dir=str(tmp_path / "cache")))
    finally:
        SECTIONS.unregister("hardest-classes")
    html = r.report.read_text()
    assert 'data-section="hardest-classes"' in html and html.count("class='hard'") == 3
    got = r.summary["hardest_classes"]["classes"]
    assert len(got) == 3 and got[0]["accuracy"] <= got[-1]["accuracy"]
    # shown between confusion (30) and the slices (40)
    assert html.index('id="confusion"') < html.index('id="hardest-classes"') < html.index('id="slices"')
    assert "hardest-classes" not in SECTIONS.names()
