"""The audit's outputs: evidence stages (names, explanations, occlusion), then the registered
report sections (`audit/sections/`), report.html (one self-contained file), audit.json,
predictions.csv, slices.csv and PNG plots."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .. import distributed
from .._version import __version__
from . import evidence, plots
from .evidence import WHY_TASKS, nan_to_none

__all__ = ["WHY_TASKS", "build_outputs", "render"]


def build_outputs(folder, adapter, settings, data, enc, names, result, skipped, folded,
                  stage: Callable, cache, extra_sections: list, t0: float,
                  timings: dict[str, float]) -> dict:
    """Name the slices, explain the budget, measure occlusion, compute every report section,
    then write every output; returns audit.json's content."""
    from .sections import ReportContext, sections_in_order
    from .slices import describe_slice

    items = enc.items
    labels, preds = result.labels, result.preds
    notes: list[str] = []
    if folded:
        notes.append(f"{folded} manifest line(s) repeat an image (several objects): each image "
                     "is audited once, with its first line's label and mask")
    t = time.perf_counter()
    vocab = evidence.name_slices(adapter, settings, enc.vectors, result, notes)
    for sl in [*result.slices, *result.metadata_slices]:
        sl.summary = describe_slice(sl, labels, preds, names)
    timings["name_slices"] = time.perf_counter() - t
    t = time.perf_counter()
    chosen = evidence.choose(result, settings.explain_budget)
    why, run = (evidence.explain_budget(folder, adapter, settings, items, chosen, names, preds,
                                        labels, stage) if chosen else ({}, None))
    if run is not None and run.bad:
        notes.append(f"{len(run.bad)} image(s) could not be explained: "
                     + "; ".join(b.describe() for b in run.bad[:3]))
    timings["explain"] = time.perf_counter() - t
    t = time.perf_counter()
    occl = (evidence.occlusion(adapter, items, names, labels, preds, result.slices, settings)
            if distributed.is_main_process() else None)
    timings["occlusion"] = time.perf_counter() - t
    t_write = time.perf_counter()
    if not distributed.is_main_process():
        return {}

    explanations = []
    for i, r in chosen:
        rec = why.get(items[i].key)
        if rec:
            explanations.append({"image": items[i].image, "reason": r,
                                 **{task: {k: v for k, v in rec[task].items()
                                           if k not in ("map", "item", "task")}
                                    for task in WHY_TASKS if task in rec}})
    summary = nan_to_none({
        "mmattr_version": __version__, "command": "audit",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": {"path": str(data.root), "kind": data.kind, "images": len(items),
                    "skipped": len(skipped)},
        "model": adapter.describe(),
        "mode": "classifier head" if adapter.class_names is not None else "zero-shot",
        "settings": {**_settings_dict(settings), "templates_used": list(adapter.templates)},
        "vocabulary": names,
        "accuracy": {"value": result.accuracy, "ci_low": result.acc_ci[0],
                     "ci_high": result.acc_ci[1], "correct": int(result.correct.sum()),
                     "n": len(items)},
        "per_class": [c.__dict__ for c in result.classes],
        "confusion": result.confusion.tolist(),
        "most_confused": result.confused,
        "calibration": result.calibration.to_dict(),
        "confident_mistakes": [{"image": items[i].image, "label": names[labels[i]],
                                "predicted": names[preds[i]],
                                "confidence": float(result.confidence[i]),
                                "label_error": bool(result.checks.label_error[i])}
                               for i in result.mistakes],
        "occlusion": (evidence.occlusion_row(occl, np.ones(len(occl["index"]), bool), preds,
                                             labels) if occl is not None else None),
        "explanations": explanations,
        "phrases": len(vocab.phrases) if vocab is not None else 0,
        "slice_tests": result.tested,
        "notes": notes,
        "encoding": {"encoded": enc.encoded, "from_cache": enc.cached,
                     "seconds": round(enc.seconds, 3), "cache": str(cache.root)},
    })
    pngs = {"reliability": plots.reliability_png(result.calibration),
            "confusion": plots.confusion_png(result.confusion, names),
            "class_accuracy": plots.class_accuracy_png(result.classes, result.accuracy),
            "slices": plots.slices_png(result.slices, result.accuracy) if result.slices else None}
    ctx = ReportContext(adapter, settings, data, items, enc.vectors, names, result, skipped,
                        notes, why, chosen, occl, vocab, pngs, summary, folder.out)
    classes = sections_in_order()
    for cls in sorted(classes, key=lambda c: (c.compute_order, c.order)):
        sec = cls()
        got = sec.compute(ctx)
        if got is not None:
            ctx.computed[cls.id] = nan_to_none(got)
            if cls.key:
                got = ctx.computed[cls.id]
                summary[cls.key] = got[cls.stores] if cls.stores else got
    # the optional sections of the caller (e.g. Representative Interpretations), after the
    # label errors; their fields but html go into audit.json
    extras = []
    legacy = {"adapter": adapter, "items": items, "names": names, "labels": labels,
              "preds": preds, "probs": result.probs, "embeddings": enc.vectors,
              "slices": result.slices, "summary": summary, "out": folder.out}
    for extra in extra_sections:
        got = extra(legacy) if callable(extra) else extra
        if got:
            extras.append(got)
            summary.setdefault("sections", []).append({k: v for k, v in got.items() if k != "html"})
    for key, png in pngs.items():
        if png is not None:
            folder.write_text(f"{key}.png", png)
    folder.write_text("predictions.csv", _predictions_csv(items, names, result))
    folder.write_text("slices.csv", _slices_csv(summary.get("slices", []),
                                                summary.get("metadata_slices", [])))
    folder.write_text("report.html", render(ctx, classes, extras))
    summary["timings"] = {k: round(v, 3) for k, v in timings.items()}
    # audit.json last: it holds the time of every stage, this one included
    summary["timings"]["write_outputs"] = round(time.perf_counter() - t_write, 3)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    folder.write_text("audit.json", json.dumps(summary, indent=1) + "\n")
    return summary


def _settings_dict(settings) -> dict:
    from dataclasses import asdict

    return asdict(settings)


def _predictions_csv(items, names, result) -> str:
    extra_keys = sorted({k for it in items for k, v in it.fields.items()
                         if isinstance(v, (str, int, float, bool))})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "label", "predicted", "correct", "confidence", "p_label",
                "mistakenness", "label_error", "label_error_score", "label_support",
                "prediction_support", "slice", *extra_keys])
    c = result.checks
    where = result.slice_of()
    for i, it in enumerate(items):
        w.writerow([it.image, names[result.labels[i]], names[result.preds[i]],
                    int(result.correct[i]), f"{result.confidence[i]:.6f}",
                    f"{c.self_confidence[i]:.6f}", f"{c.mistakenness[i]:.6f}",
                    int(c.label_error[i]), f"{c.score[i]:.6f}", f"{c.label_support[i]:.3f}",
                    f"{c.prediction_support[i]:.3f}", where[i] or "",
                    *[it.fields.get(k, "") for k in extra_keys]])
    return buf.getvalue()


def _slices_csv(rows: list[dict], meta: list[dict]) -> str:
    from .sections.figures import fmt

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["kind", "rank", "title", "size", "accuracy", "rest_accuracy", "ci_low", "ci_high",
                "drop", "errors", "q_value", "name", "name_score", "name_p", "names",
                "unnamed_reason", "explained_by", "summary", "acc_background_removed",
                "acc_object_removed", "acc_background_swapped", "pred_background_share",
                "pred_background_auc", "contrast_background_auc"])
    for r in [*rows, *meta]:
        names = r["names"]
        occ = r.get("occlusion") or {}
        sh = r.get("shares") or {}
        w.writerow([r["kind"], r["rank"], r["title"], r["size"], f"{r['accuracy']:.4f}",
                    fmt(r["rest_accuracy"]), f"{r['ci_low']:.4f}", f"{r['ci_high']:.4f}",
                    f"{r['drop']:.4f}", r["errors"], f"{r['q_value']:.3g}",
                    names[0]["phrase"] if names else "",
                    f"{names[0]['score']:.3f}" if names else "",
                    f"{names[0]['p_value']:.3g}" if names else "",
                    "; ".join(f"{x['phrase']} ({x['score']:+.2f}, p {x['p_value']:.3g})"
                              for x in names),
                    r["unnamed_reason"],
                    "; ".join(f"{e['column']} = {e['value']} ({e['share']:.0%})"
                              for e in r["explained_by"]),
                    r["summary"], fmt(occ.get("object_only")), fmt(occ.get("background_only")),
                    fmt(occ.get("background_swap")), fmt(sh.get("pred_background")),
                    fmt(sh.get("pred_background_auc")), fmt(sh.get("contrast_background_auc"))])
    return buf.getvalue()


def render(ctx, classes: list, extras: list[dict]) -> str:
    """report.html as one string: CSS, plots and thumbnails inlined (data URIs); opens offline.
    Each registered section is shown by its own template, in page order; the caller's extra
    sections come after the likely label errors."""
    import jinja2

    from .stats import format_p

    env = jinja2.Environment(loader=jinja2.PackageLoader("mmattr.audit", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    env.filters["p"] = format_p  # p- and q-values as a person reads them
    shown = []
    for cls in classes:
        if cls.id not in ctx.computed:
            continue
        sec = cls()
        data = ctx.computed[cls.id]
        template = (env.from_string(cls.template_source) if cls.template_source
                    else sec.template)
        shown.append({"id": cls.id, "title": sec.heading(data), "how": cls.how,
                      "template": template, "data": data, "view": sec.view(data, ctx),
                      "extra": None, "order": cls.order})
    for k, x in enumerate(extras):
        shown.append({"id": x["id"], "title": x["title"], "how": x.get("how", ""),
                      "template": None, "data": {}, "view": {}, "extra": x, "order": 65 + k / 100})
    shown.sort(key=lambda s: s["order"])
    summ = ctx.summary
    return env.get_template("report.html.j2").render(
        model=summ["model"]["spec"], dataset_name=Path(summ["dataset"]["path"]).name,
        n_images=summ["dataset"]["images"], n_classes=len(ctx.names), mode=summ["mode"],
        version=__version__, created=summ["created"], sections=shown)
