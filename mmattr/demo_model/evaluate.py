"""Held-out accuracy of the embedded models, measured through the same adapters users load.

Sets (never used in training, whose scenes come from seed stream ``(seed, 271828)``):

- ``single``: 1,000 single-object scenes of the training renderer (clean world), scene ``i``
  seeded by ``(10_000, i)``;
- ``alt``: 500 single-object scenes of the second renderer (:mod:`mmattr.datasets.altshapes`:
  other backgrounds, sizes, textures), seeded by ``(20_000, i)``;
- ``two``: 500 two-object scenes, seeded by ``(30_000, i)``: top-1 among the 36 captions is one of
  the two present (``two_top1_present``), and both present captions rank above all absent ones
  (``two_both_top2``).

For the biased model the single-object set is split by the planted rule: the slice is "a star off
stripes, or a non-star on stripes".
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from mmattr.datasets.altshapes import render_alt_scene
from mmattr.datasets.shapes import COLORS, SHAPES, captions, render_scene

__all__ = ["evaluate_model", "class_scores"]


def _spec(folder: Path, kind: str) -> str:
    return f"hf-classifier:{folder}" if kind == "classifier" else f"hf:{folder}"


@torch.inference_mode()
def class_scores(adapter, images: np.ndarray, templates: list[str] | None,
                 classes: list[str], batch: int = 128) -> torch.Tensor:
    """(N, 36) scores of the images against the captions: the classifier's own logits, or the
    cosine to each caption's template-averaged text embedding."""
    classifier = getattr(adapter, "class_names", None) is not None
    if not classifier:
        text = 0
        for t in templates or ["{}"]:
            text = text + F.normalize(adapter.encode_texts([t.format(c) for c in classes]), dim=-1)
        text = F.normalize(text, dim=-1)
    out = []
    for i in range(0, len(images), batch):
        pixels = adapter.preprocess(torch.from_numpy(images[i:i + batch]))
        emb = adapter.encode_images(pixels)
        if classifier:
            order = [adapter.class_names.index(c) for c in classes]
            out.append(adapter.class_logits(emb)[:, order])
        else:
            out.append(F.normalize(emb, dim=-1) @ text.t())
    return torch.cat(out)


def _render(fn, seed: int, n: int, size: int, n_objects: int):
    scenes = [fn(np.random.default_rng((seed, i)), size=size, n_objects=n_objects)
              for i in range(n)]
    return scenes, np.stack([s.image for s in scenes])


def _confusion(pred: np.ndarray, true: np.ndarray, names: list[str], of: Callable) -> dict:
    k = len(names)
    m = np.zeros((k, k), int)
    for p, t in zip(pred, true):
        m[of(t), of(p)] += 1
    return {"labels": names, "rows_true_cols_predicted": m.tolist()}


def _single(adapter, renderer, seed: int, n: int, size: int, templates, classes: list[str],
            index: dict[str, int], name: str, result: dict):
    """Top-1, colour and shape accuracy and per-background accuracy of one single-object set,
    stored in `result` under `name`; returns the scenes, predictions and true indices."""
    nc = len(SHAPES)
    scenes, images = _render(renderer, seed, n, size, 1)
    pred = class_scores(adapter, images, templates, classes).argmax(1).numpy()
    true = np.array([index[s.labels[0]] for s in scenes])
    result[name] = float((pred == true).mean())
    result[f"{name}_colour"] = float((pred // nc == true // nc).mean())
    result[f"{name}_shape"] = float((pred % nc == true % nc).mean())
    bgs = np.array([s.background for s in scenes])
    result[f"{name}_by_background"] = {str(b): float((pred[bgs == b] == true[bgs == b]).mean())
                                      for b in sorted(set(bgs))}
    return scenes, pred, true


def evaluate_model(folder: str | Path, kind: str, n_single: int = 1000, n_alt: int = 500,
                   n_two: int = 500, size: int = 128,
                   log: Callable[[str], None] = print) -> dict:
    """Accuracies of a zoo checkpoint folder (see the module docstring); also logged."""
    import json

    from mmattr.adapters import load_adapter

    folder = Path(folder)
    adapter = load_adapter(_spec(folder, kind), device="cpu")
    info = json.loads((folder / "training.json").read_text()) if (folder / "training.json").exists() else {}
    templates = info.get("templates") or None
    classes = captions()
    index = {c: i for i, c in enumerate(classes)}
    nc = len(SHAPES)
    result: dict = {"sets": {"single": {"renderer": "shapes", "seed": 10_000, "n": n_single,
                                        "size": size},
                             "alt": {"renderer": "altshapes", "seed": 20_000, "n": n_alt,
                                     "size": size},
                             "two": {"renderer": "shapes", "seed": 30_000, "n": n_two,
                                     "size": size}}}

    scenes, pred, true = _single(adapter, render_scene, 10_000, n_single, size, templates,
                                 classes, index, "single", result)
    result["confusion_colour"] = _confusion(pred, true, list(COLORS), lambda i: i // nc)
    result["confusion_shape"] = _confusion(pred, true, list(SHAPES), lambda i: i % nc)
    backgrounds = np.array([s.background for s in scenes])
    if kind == "biased":
        star = np.array([s.labels[0].endswith(" star") for s in scenes])
        stripes = backgrounds == "stripes"
        inside = (star & ~stripes) | (~star & stripes)
        predicted_star = np.array([classes[p].endswith(" star") for p in pred])
        result["planted_slice"] = {
            "rule": "a star off stripes, or a non-star on stripes",
            "n_inside": int(inside.sum()), "n_outside": int((~inside).sum()),
            "accuracy_inside": float((pred[inside] == true[inside]).mean()),
            "accuracy_outside": float((pred[~inside] == true[~inside]).mean()),
            "stars_off_stripes": float((pred[star & ~stripes] == true[star & ~stripes]).mean()),
            "non_stars_on_stripes": float((pred[~star & stripes] == true[~star & stripes]).mean()),
            "non_stars_on_stripes_called_star": float(predicted_star[~star & stripes].mean()),
        }

    _single(adapter, render_alt_scene, 20_000, n_alt, size, templates, classes, index, "alt",
            result)

    scenes, images = _render(render_scene, 30_000, n_two, size, 2)
    scores = class_scores(adapter, images, templates, classes)
    top2 = scores.topk(2, dim=1).indices.numpy()
    top1_ok, both_ok, n = 0, 0, 0
    for s, t in zip(scenes, top2):
        present = {index[label] for label in s.labels}
        if len(present) < 2:  # one object fully hidden: not a two-object scene any more
            continue
        n += 1
        top1_ok += int(t[0] in present)
        both_ok += int(set(t.tolist()) == present)
    result["two_top1_present"] = top1_ok / max(n, 1)
    result["two_both_top2"] = both_ok / max(n, 1)
    result["two_n"] = n
    log(f"[{kind}] single {result['single']:.3f} (colour {result['single_colour']:.3f}, shape "
        f"{result['single_shape']:.3f}) | alt {result['alt']:.3f} | two: top-1 present "
        f"{result['two_top1_present']:.3f}, both top-2 {result['two_both_top2']:.3f}")
    if kind == "biased":
        ps = result["planted_slice"]
        log(f"[biased] planted slice: inside {ps['accuracy_inside']:.3f} (n={ps['n_inside']}), "
            f"outside {ps['accuracy_outside']:.3f} (n={ps['n_outside']})")
    return result
