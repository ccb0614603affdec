"""The audit's evidence stages after the numbers: slice names from text space, SMDL explanations
for a budget of images (resumable records), and accuracy under occlusion. Each returns plain
data that the report sections read; none writes a report file."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..errors import ModelError
from .naming import Vocabulary, name_slice, phrase_list, vet_phrases
from .predict import phrase_embeddings
from .why import (choose_budget, choose_donors, contrast_target, explain_target,
                  object_share, occlusion_predictions)

#: attribution maps are stored in the records at most this many pixels on a side
MAP_SIDE = 64
#: the explanations of each chosen image: the predicted class, the true class, and the contrast
#: "why the prediction rather than the truth" (Target embedding = predicted − true)
WHY_TASKS = ("predicted", "true", "contrast")


def nan_to_none(x: Any) -> Any:
    """JSON-safe: NaN and infinities become None, numpy scalars Python ones."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [nan_to_none(v) for v in x]
    if isinstance(x, np.generic):
        return nan_to_none(x.item())
    return x


def mean_of(values) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


def accuracy_of(pred: np.ndarray, labels: np.ndarray) -> float | None:
    return float((pred == labels).mean()) if len(pred) else None


def small_map(a: np.ndarray) -> np.ndarray:
    import cv2

    h, w = a.shape
    f = min(1.0, MAP_SIDE / max(h, w))
    if f < 1.0:
        a = cv2.resize(a.astype(np.float32), (max(1, round(w * f)), max(1, round(h * f))),
                       interpolation=cv2.INTER_AREA)
    return np.round(a.astype(np.float64), 4)


# -- names ---------------------------------------------------------------------------------

def name_slices(adapter, settings, vectors: np.ndarray, result, notes: list[str]
                ) -> Vocabulary | None:
    """Vet the phrases against the model's tokenizer, then name every embedding slice (names
    with permutation p-values, or the reason it has none). None for a model without text."""
    slices = result.slices
    phrases = phrase_list(settings.phrases)
    try:
        emb = phrase_embeddings(adapter, phrases)
    except ModelError:
        emb = None
    if emb is None:
        if slices:
            notes.append("slice names need a text encoder; this model has none, so slices are "
                         "described by their classes and metadata only")
            for sl in slices:
                sl.unnamed = "the model has no text encoder"
        return None
    vocab = vet_phrases(phrases, emb, adapter.word_pieces)
    if not vocab.checked:
        notes.append("this model's tokenizer could not be read, so slice names were not checked "
                     "for words it does not know")
    if vocab.dropped:
        notes.append(f"{len(vocab.dropped)} of {len(phrases)} naming phrases were left out (words "
                     "the model's tokenizer does not know, or the same text embedding as "
                     "another phrase); audit.json lists them")
    x = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sim = x @ vocab.embeddings.T if len(vocab.phrases) else np.zeros((len(x), 0))
    errors = result.checks.systematic  # model errors; likely label errors set aside
    for sl in slices:
        member = np.zeros(len(x), bool)
        member[sl.members] = True
        got = name_slice(sim, vocab.phrases, member, errors, result.labels,
                         alpha=settings.name_alpha, permutations=settings.name_permutations,
                         seed=settings.seed + sl.rank)
        sl.names = [(p, s) for p, s, _ in got.names]
        sl.name_p = [q for _, _, q in got.names]
        sl.unnamed = got.unnamed
    return vocab


# -- explanations --------------------------------------------------------------------------

def explain_budget(folder, adapter, settings, items, chosen, names, preds, labels,
                   stage: Callable):
    """SMDL for the predicted class, the true class and the contrast of each chosen image, as
    resumable records (one per image and task) in explanations.jsonl; returns
    ({item key: {task: record}}, the run's result)."""
    from ..config import ExplainConfig
    from ..explainers import EXPLAINERS
    from ..runs.context import RunContext
    from ..runs.dataset import load_item
    from ..runs.work import run_items

    cfg = ExplainConfig().replace(method=settings.explain_method,
                                  division=settings.explain_division,
                                  regions=settings.explain_regions, batch_size=settings.batch_size,
                                  device=settings.device, seed=settings.seed, model=adapter.spec)
    # each process explains its own images alone (the work is sharded by image)
    explainer = EXPLAINERS.get(cfg.method)(cfg, context=RunContext.per_item())
    pos = {items[i].key: i for i, _ in chosen}

    def work(item, pending):
        i = pos[item.key]
        image, mask = load_item(item)  # the dataset's one rule for images and masks
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
                         **nan_to_none(shares), "map": small_map(e.attribution).tolist()}

    chosen_items = [items[i] for i, _ in chosen]
    result = run_items(folder, chosen_items, WHY_TASKS, work, progress=stage("explain"))
    got: dict[str, dict] = {}
    for rec in result.records:  # made for each image's current content, once each
        got.setdefault(rec["item"], {})[rec["task"]] = rec
    return got, result


def choose(result, budget: int) -> list[tuple[int, str]]:
    """The images to explain: the slices' most typical model errors, then the most confident
    systematic errors."""
    return choose_budget(result.slices, result.systematic[:max(budget, 0) * 2],
                         result.checks.systematic, budget)


# -- occlusion -----------------------------------------------------------------------------

def occlusion(adapter, items, names, labels, preds, slices, settings) -> dict | None:
    """Predictions with background / object removed and with the background swapped, on
    masked images: every slice member first, then a seeded sample of the rest,
    `occlusion_limit` in all. None without masks."""
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
    chosen = np.sort(np.concatenate([first, rest])[: settings.occlusion_limit])
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


def occlusion_row(occl: dict, m: np.ndarray, preds: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy of the images selected by `m` in full, with the background removed, with the
    object removed, and with the object on a donor's background (on those that have a donor)."""
    idx = occl["index"][m]
    swap = occl["background_swap"][m]
    has = swap >= 0
    return {"n": int(m.sum()), "full": accuracy_of(preds[idx], labels[idx]),
            "object_only": accuracy_of(occl["object_only"][m], labels[idx]),
            "background_only": accuracy_of(occl["background_only"][m], labels[idx]),
            "swap_n": int(has.sum()), "swap_full": accuracy_of(preds[idx][has], labels[idx][has]),
            "background_swap": accuracy_of(swap[has], labels[idx][has])}


def share_row(recs: list[dict]) -> dict:
    """Mean object/background measures of a group's explanations, per task."""
    out: dict[str, float | None] = {}
    for task, key in (("predicted", "pred"), ("true", "true"), ("contrast", "contrast")):
        out[f"{key}_background"] = mean_of(r.get(task, {}).get("background_share") for r in recs)
        out[f"{key}_background_auc"] = mean_of(r.get(task, {}).get("background_auc") for r in recs)
    out["contrast_n"] = sum(1 for r in recs if r.get("contrast", {}).get("background_auc") is not None)
    return out
