"""The audit's outputs: slice names, explanations (resumable records), occlusion accuracy,
then report.html (one self-contained file), audit.json, predictions.csv, slices.csv, PNGs."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import distributed
from .._version import __version__
from ..errors import ModelError
from . import plots
from .naming import name_slice, phrase_list
from .predict import phrase_embeddings
from .why import (choose_budget, choose_donors, contrast_target, explain_target, load_mask,
                  object_share, occlusion_predictions)

#: attribution maps are stored in the records at most this many pixels on a side
_MAP_SIDE = 64


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    if isinstance(x, np.generic):
        return _nan_to_none(x.item())
    return x


def _small_map(a: np.ndarray) -> np.ndarray:
    import cv2

    h, w = a.shape
    f = min(1.0, _MAP_SIDE / max(h, w))
    if f < 1.0:
        a = cv2.resize(a.astype(np.float32), (max(1, round(w * f)), max(1, round(h * f))),
                       interpolation=cv2.INTER_AREA)
    return np.round(a.astype(np.float64), 4)


#: the explanations of each chosen image: the predicted class, the true class, and the contrast
#: "why the prediction rather than the truth" (Target embedding = predicted − true)
WHY_TASKS = ("predicted", "true", "contrast")
#: the share of each photo kept bright in the report's explanation thumbnails
WHY_TOP_FRACTION = 0.25


def _explain(folder, adapter, settings, items, chosen, names, preds, labels, stage):
    """SMDL for the predicted and the true class of each chosen image, as resumable records
    (one per image and class) in explanations.jsonl; returns {item key: {task: record}}."""
    from ..config import ExplainConfig
    from ..explainers import EXPLAINERS
    from ..runner import load_item_image, run_items

    cfg = ExplainConfig().replace(method=settings.explain_method,
                                  division=settings.explain_division,
                                  regions=settings.explain_regions, batch_size=settings.batch_size,
                                  device=settings.device, seed=settings.seed, model=adapter.spec)
    explainer = EXPLAINERS.get(cfg.method)(cfg)
    pos = {items[i].key: i for i, _ in chosen}

    def work(item, pending):
        i = pos[item.key]
        image = load_item_image(item)
        mask = load_mask(str(item.mask_path), image.shape[:2]) if item.mask_path else None
        for task in pending:
            pred, true = names[preds[i]], names[labels[i]]
            if task == "contrast":
                # "why the prediction rather than the truth"; a correct image has no contrast
                target = contrast_target(adapter, pred, true)
                if target is None:
                    yield task, {"class": None, "note": "prediction is correct"}
                    continue
                cls = f"{pred} rather than {true}"
            else:
                cls = pred if task == "predicted" else true
                target = explain_target(adapter, cls)
            e = explainer.explain(image, target, adapter)
            shares = object_share(e.attribution, mask) if mask is not None else {}
            yield task, {"class": cls, "insertion_auc": e.insertion_auc,
                         "forward_passes": e.forward_passes, "seconds": e.seconds,
                         **_nan_to_none(shares), "map": _small_map(e.attribution).tolist()}

    chosen_items = [items[i] for i, _ in chosen]
    result = run_items(folder, chosen_items, WHY_TASKS, work, progress=stage("explain"))
    wanted = {it.key for it in chosen_items}
    got: dict[str, dict] = {}
    for rec in folder.log.iter_records():
        if rec.get("item") in wanted:
            got.setdefault(rec["item"], {})[rec["task"]] = rec
    return got, result


def _occlusion(adapter, items, names, labels, preds, slices, settings):
    """Predictions with background / object removed on masked images: every slice member
    first, then a seeded sample of the rest, `occlusion_limit` in all."""
    have = np.array([it.mask_path is not None for it in items])
    if not have.any() or settings.occlusion_limit <= 0:
        return None
    in_slice = np.zeros(len(items), bool)
    for sl in slices:
        in_slice[sl.members] = True
    first = np.flatnonzero(have & in_slice)
    rest = np.flatnonzero(have & ~in_slice)
    rng = np.random.default_rng(settings.seed)
    rest = rng.permutation(rest)
    chosen = np.concatenate([first, rest])[: settings.occlusion_limit]
    chosen = np.sort(chosen)
    import torch

    with torch.inference_mode():
        vocab = adapter.class_embeddings(names)

    def to_logits(emb: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return adapter.logits(torch.as_tensor(emb, device=vocab.device), vocab).float().cpu().numpy()

    donor_idx = choose_donors(labels, preds == labels, have, chosen, settings.seed)
    donors = [(str(items[d].path), str(items[d].mask_path)) if d >= 0 else None for d in donor_idx]
    got = occlusion_predictions(adapter, to_logits, [str(items[i].path) for i in chosen],
                                [str(items[i].mask_path) for i in chosen],
                                settings.batch_size, settings.seed, donors=donors)
    keep = np.delete(chosen, got["failed"])
    return {"index": keep, "object_only": got["object_only"],
            "background_only": got["background_only"], "background_swap": got["background_swap"]}


def _occlusion_row(occl: dict, m: np.ndarray, preds: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy of the images selected by `m` in full, with the background removed, with the
    object removed, and with the object on a donor's background (on those that have a donor)."""
    idx = occl["index"][m]
    swap = occl["background_swap"][m]
    has = swap >= 0
    return {"n": int(m.sum()), "full": _acc(preds[idx], labels[idx]),
            "object_only": _acc(occl["object_only"][m], labels[idx]),
            "background_only": _acc(occl["background_only"][m], labels[idx]),
            "swap_n": int(has.sum()), "swap_full": _acc(preds[idx][has], labels[idx][has]),
            "background_swap": _acc(swap[has], labels[idx][has])}


def _share_row(recs: list[dict]) -> dict:
    """Mean object/background measures of a group's explanations, per task."""
    out: dict[str, float | None] = {}
    for task, key in (("predicted", "pred"), ("true", "true"), ("contrast", "contrast")):
        out[f"{key}_background"] = _mean(r.get(task, {}).get("background_share") for r in recs)
        out[f"{key}_background_auc"] = _mean(r.get(task, {}).get("background_auc") for r in recs)
    out["contrast_n"] = sum(1 for r in recs if r.get("contrast", {}).get("background_auc") is not None)
    return out


def _acc(pred: np.ndarray, labels: np.ndarray) -> float | None:
    return float((pred == labels).mean()) if len(pred) else None


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.0%}"


def _mean(values) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


def build_outputs(folder, adapter, settings, data, enc, names, result, skipped, folded,
                  stage: Callable, cache, extra_sections: list[dict], t0: float,
                  timings: dict[str, float]) -> dict:
    """Name the slices, explain the budget, measure occlusion, then write every output."""
    from .slices import describe_slice

    items = enc.items
    n = len(items)
    labels, preds, correct = result.labels, result.preds, result.correct
    errors = ~correct
    notes: list[str] = []
    if folded:
        notes.append(f"{folded} manifest line(s) repeat an image (several objects): each image "
                     "is audited once, with its first line's label and mask")

    t = time.perf_counter()
    # Slice names from text space.
    phrases = phrase_list(settings.phrases)
    try:
        ph = phrase_embeddings(adapter, phrases)
    except ModelError:
        ph = None
    if ph is not None:
        emb = enc.vectors / np.maximum(np.linalg.norm(enc.vectors, axis=1, keepdims=True), 1e-12)
        sim = emb @ ph.T
        for sl in result.slices:
            member = np.zeros(n, bool)
            member[sl.members] = True
            sl.names = name_slice(sim, phrases, member, errors, labels)
    elif result.slices:
        notes.append("slice names need a text encoder; this model has none, so slices are "
                     "described by their classes only")
    for sl in result.slices:
        sl.summary = describe_slice(sl, labels, preds, names)

    timings["name_slices"] = time.perf_counter() - t
    t = time.perf_counter()
    # Explanations for a budget of images chosen by the slices.
    chosen = choose_budget(result.slices, result.mistakes, errors, settings.explain_budget)
    why, run = _explain(folder, adapter, settings, items, chosen, names, preds, labels, stage) \
        if chosen else ({}, None)
    if run is not None and run.bad:
        notes.append(f"{len(run.bad)} image(s) could not be explained: "
                     + "; ".join(b.describe() for b in run.bad[:3]))
    timings["explain"] = time.perf_counter() - t
    t = time.perf_counter()
    occl = _occlusion(adapter, items, names, labels, preds, result.slices, settings) \
        if distributed.is_main_process() else None
    timings["occlusion"] = time.perf_counter() - t
    t_write = time.perf_counter()
    if not distributed.is_main_process():
        return {}

    # Per-slice figures.
    reason = dict(chosen)
    slice_rows = []
    for sl in result.slices:
        row = sl.to_dict()
        row["images"] = [items[i].image for i in sl.typical]
        if occl is not None:
            m = np.isin(occl["index"], sl.members)
            idx = occl["index"][m]
            row["occlusion"] = _occlusion_row(occl, m, preds, labels)
        recs = [why.get(items[i].key, {}) for i, r in chosen if r == f"slice {sl.rank}"]
        row["explained"] = len(recs)
        row["shares"] = _share_row(recs)
        slice_rows.append(row)
    occlusion_all = None
    if occl is not None:
        idx = occl["index"]
        occlusion_all = _occlusion_row(occl, np.ones(len(idx), bool), preds, labels)

    in_slice = np.zeros(n, dtype=int)
    for sl in reversed(result.slices):
        in_slice[sl.members] = sl.rank
    explanations = []
    for i, r in chosen:
        rec = why.get(items[i].key)
        if not rec:
            continue
        explanations.append({"image": items[i].image, "reason": r,
                             **{task: {k: v for k, v in rec[task].items()
                                       if k not in ("map", "item", "task")}
                                for task in WHY_TASKS if task in rec}})
    mistakes = [{"image": items[i].image, "label": names[labels[i]], "predicted": names[preds[i]],
                 "confidence": float(result.confidence[i])} for i in result.mistakes]
    label_errors = [{"image": items[i].image, "label": names[labels[i]],
                     "suggested": names[result.issues["confident_class"][i]],
                     "mistakenness": float(result.issues["mistakenness"][i]),
                     "self_confidence": float(result.issues["self_confidence"][i])}
                    for i in result.label_errors]
    summary = _nan_to_none({
        "mmattr_version": __version__, "command": "audit",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": {"path": str(data.root), "kind": data.kind, "images": n,
                    "skipped": len(skipped)},
        "model": adapter.describe(),
        "mode": "classifier head" if adapter.class_names is not None else "zero-shot",
        "settings": {**_settings_dict(settings), "templates_used": list(adapter.templates)},
        "vocabulary": names,
        "accuracy": {"value": result.accuracy, "ci_low": result.acc_ci[0],
                     "ci_high": result.acc_ci[1], "correct": int(correct.sum()), "n": n},
        "per_class": [c.__dict__ for c in result.classes],
        "confusion": result.confusion.tolist(),
        "most_confused": result.confused,
        "calibration": result.calibration.to_dict(),
        "confident_mistakes": mistakes,
        "label_issues": {"flagged": int(result.issues["is_issue"].sum()), "top": label_errors},
        "slices": slice_rows,
        "occlusion": occlusion_all,
        "explanations": explanations,
        "phrases": len(phrases) if ph is not None else 0,
        "skipped": [{"image": b.image, "reason": b.reason, "line": b.line} for b in skipped],
        "notes": notes,
        "encoding": {"encoded": enc.encoded, "from_cache": enc.cached,
                     "seconds": round(enc.seconds, 3), "cache": str(cache.root)},
        "seconds": round(time.perf_counter() - t0, 3),
        "timings": {k: round(v, 3) for k, v in timings.items()},
    })

    pngs = {"reliability": plots.reliability_png(result.calibration),
            "confusion": plots.confusion_png(result.confusion, names),
            "class_accuracy": plots.class_accuracy_png(result.classes, result.accuracy),
            "slices": plots.slices_png(result.slices, result.accuracy) if result.slices else None}
    for key, png in pngs.items():
        if png is not None:
            folder.write_text(f"{key}.png", png)
    folder.write_text("predictions.csv", _predictions_csv(items, names, result, in_slice))
    folder.write_text("slices.csv", _slices_csv(slice_rows))
    sections = []
    context = {"adapter": adapter, "items": items, "names": names, "labels": labels,
               "preds": preds, "probs": result.probs, "embeddings": enc.vectors,
               "slices": result.slices, "summary": summary, "out": folder.out}
    for extra in extra_sections:
        got = extra(context) if callable(extra) else extra
        if got:
            sections.append(got)
            summary.setdefault("sections", []).append(
                {k: v for k, v in got.items() if k != "html"})
    html = render(summary, result, items, names, why, chosen, pngs, sections)
    folder.write_text("report.html", html)
    # audit.json last: it holds the time of every stage, this one included
    summary["timings"]["write_outputs"] = round(time.perf_counter() - t_write, 3)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    folder.write_text("audit.json", json.dumps(summary, indent=1) + "\n")
    return summary


def _settings_dict(settings) -> dict:
    from dataclasses import asdict

    return asdict(settings)


def _predictions_csv(items, names, result, in_slice) -> str:
    extra_keys = sorted({k for it in items for k, v in it.fields.items()
                         if isinstance(v, (str, int, float, bool))})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "label", "predicted", "correct", "confidence", "p_label",
                "mistakenness", "label_issue", "slice", *extra_keys])
    iss = result.issues
    for i, it in enumerate(items):
        w.writerow([it.image, names[result.labels[i]], names[result.preds[i]],
                    int(result.correct[i]), f"{result.confidence[i]:.6f}",
                    f"{iss['self_confidence'][i]:.6f}", f"{iss['mistakenness'][i]:.6f}",
                    int(iss["is_issue"][i]), in_slice[i] or "",
                    *[it.fields.get(k, "") for k in extra_keys]])
    return buf.getvalue()


def _slices_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "size", "accuracy", "ci_low", "ci_high", "drop", "errors", "name",
                "name_score", "names", "summary", "acc_background_removed", "acc_object_removed",
                "acc_background_swapped", "pred_background_share", "pred_background_auc",
                "contrast_background_auc"])
    for r in rows:
        names = r["names"]
        occ = r.get("occlusion") or {}
        w.writerow([r["rank"], r["size"], f"{r['accuracy']:.4f}", f"{r['ci_low']:.4f}",
                    f"{r['ci_high']:.4f}", f"{r['drop']:.4f}", r["errors"],
                    names[0]["phrase"] if names else "",
                    f"{names[0]['score']:.3f}" if names else "",
                    "; ".join(f"{x['phrase']} ({x['score']:+.2f})" for x in names),
                    r["summary"], _fmt(occ.get("object_only")), _fmt(occ.get("background_only")),
                    _fmt(occ.get("background_swap")), _fmt(r["shares"]["pred_background"]),
                    _fmt(r["shares"]["pred_background_auc"]),
                    _fmt(r["shares"]["contrast_background_auc"])])
    return buf.getvalue()


# -- the HTML --------------------------------------------------------------------------------

def _thumb(path: Path, side: int = 96) -> str:
    from ..image import load_image

    return data_uri(plots.thumbnail_png(load_image(path), side))


def _overlay(path: Path, flat_map: list, side: int = 96) -> str:
    import cv2

    from ..image import load_image

    image = load_image(path)
    a = np.asarray(flat_map, dtype=np.float32)
    a = cv2.resize(a, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    return data_uri(plots.top_area_png(image, a, WHY_TOP_FRACTION, side))


def render(summary: dict, result, items, names, why: dict, chosen, pngs: dict,
           extra_sections: list[dict]) -> str:
    """report.html as one string: CSS, plots and thumbnails inlined (data URIs); opens offline."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mmattr.audit", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    tpl = env.get_template("report.html.j2")
    labels, preds = result.labels, result.preds

    def why_figs(indices: list[int]) -> list[dict]:
        figs = []
        for i in indices:
            rec = why.get(items[i].key, {})
            if "predicted" not in rec or "true" not in rec:
                continue
            con = rec.get("contrast", {})
            auc = con.get("background_auc")
            extra = (f"; the contrast ranks the background above the object with probability "
                     f"{auc:.2f}" if auc is not None else "")
            figs.append({"thumb": _thumb(items[i].path), "pred": _overlay(items[i].path, rec["predicted"]["map"]),
                         "true": _overlay(items[i].path, rec["true"]["map"]),
                         "contrast": _overlay(items[i].path, con["map"]) if "map" in con else None,
                         "caption": f"{items[i].image}: photo · why “{names[preds[i]]}” "
                                    f"(predicted) · why “{names[labels[i]]}” (true)"
                                    + (" · why the prediction rather than the truth" if "map" in con else "")
                                    + extra})
        return figs

    slices = []
    for sl, row in zip(result.slices, summary["slices"]):
        occ = row.get("occlusion")
        shares = row["shares"]
        slices.append({
            "rank": sl.rank, "size": sl.size, "accuracy": sl.accuracy, "ci_low": sl.ci_low,
            "ci_high": sl.ci_high, "drop": sl.drop, "errors": sl.errors, "summary": sl.summary,
            "names": [{"phrase": p, "score": s} for p, s in sl.names],
            "occlusion": ({"n": occ["n"], "full": _fmt(occ["full"]),
                           "object_only": _fmt(occ["object_only"]),
                           "background_only": _fmt(occ["background_only"]),
                           "swap_n": occ["swap_n"], "swap_full": _fmt(occ["swap_full"]),
                           "background_swap": _fmt(occ["background_swap"])}
                          if occ and occ["n"] else None),
            "shares": ({"pred_background": _pct(shares["pred_background"]),
                        "true_background": _pct(shares["true_background"]),
                        "pred_auc": _fmt(shares["pred_background_auc"]),
                        "contrast_auc": _fmt(shares["contrast_background_auc"]),
                        "contrast_n": shares["contrast_n"]}
                       if shares["pred_background"] is not None else None),
            "gallery": [{"thumb": _thumb(items[i].path), "correct": bool(result.correct[i]),
                         "caption": f"{names[labels[i]]} → {names[preds[i]]}"}
                        for i in sl.typical],
            "why": why_figs([i for i, r in chosen if r == f"slice {sl.rank}"]),
        })
    explained = {i for i, _ in chosen}
    mistakes = []
    for i in result.mistakes:
        caption = (f"{items[i].image}: {names[labels[i]]} → {names[preds[i]]} "
                   f"({result.confidence[i]:.2f})")
        figs = why_figs([i]) if i in explained else []
        if figs:
            figs[0]["caption"] = caption + " · photo · why predicted · why true · why predicted rather than true"
            mistakes.append(figs[0])
        else:
            mistakes.append({"thumb": _thumb(items[i].path), "caption": caption})
    issues = [{"thumb": _thumb(items[i].path),
               "caption": f"labelled {names[labels[i]]}, looks like "
                          f"{names[result.issues['confident_class'][i]]} (mistakenness "
                          f"{result.issues['mistakenness'][i]:.2f})"} for i in result.label_errors]
    nav = [("summary", "Summary"), ("calibration", "Calibration"), ("confusion", "Confusion"),
           ("slices", "Failure slices"), ("mistakes", "Confident mistakes"),
           ("label-issues", "Label errors"),
           *[(x["id"], x["title"]) for x in extra_sections],
           ("skipped", "Skipped"), ("settings", "Settings")]
    s = summary["settings"]
    settings_rows = [("model", summary["model"]["spec"]), ("mode", summary["mode"]),
                     ("dataset", summary["dataset"]["path"]),
                     ("vocabulary", f"{len(names)} classes ({s['vocabulary'] or 'default'})"),
                     ("templates", " | ".join(s["templates_used"]) or "none (classifier head)"),
                     ("slices", f"{s['slices']['method']}, min drop {s['slices']['min_drop']}"),
                     ("explanations", f"{s['explain_method']} {s['explain_division']} "
                                      f"{s['explain_regions']} regions, budget {s['explain_budget']}"),
                     ("encoding", f"{summary['encoding']['encoded']} encoded, "
                                  f"{summary['encoding']['from_cache']} from cache"),
                     ("time", f"{summary['seconds']:.1f} s")]
    headline = ""
    if result.slices:
        sl = result.slices[0]
        name = f" (“{sl.names[0][0]}”, score {sl.names[0][1]:+.2f})" if sl.names else ""
        headline = (f"Worst slice: {sl.size} images{name} at accuracy {sl.accuracy:.3f}, "
                    f"{sl.drop:.3f} below overall.")
    return tpl.render(
        model=summary["model"]["spec"], dataset_name=Path(summary["dataset"]["path"]).name,
        n_images=summary["dataset"]["images"], n_classes=len(names), mode=summary["mode"],
        version=__version__, created=summary["created"], nav=nav,
        accuracy=result.accuracy, acc_low=result.acc_ci[0], acc_high=result.acc_ci[1],
        ece=result.calibration.ece, slices=slices, n_issues=summary["label_issues"]["flagged"],
        skipped=summary["skipped"], headline=headline,
        plots={k: data_uri(v) for k, v in pngs.items() if v is not None},
        confused=summary["most_confused"], mistakes=mistakes, issues=issues,
        min_drop=s["slices"]["min_drop"],
        min_support=s["slices"]["min_support"], slice_note=" ".join(summary["notes"]),
        extra_sections=extra_sections, settings=settings_rows)
