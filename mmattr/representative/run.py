"""The `represent` command's work: read a dataset, fit (cached), explain, write the files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._io import atomic_write
from ..errors import InputError, MmattrError
from .cache import FitCache
from .explainer import RepresentativeInterpretations, RIOptions
from .outputs import write_interpretation


def load_references(dataset: str | os.PathLike
                    ) -> tuple[list[np.ndarray], list[str | None], list[str], list[str]]:
    """Unique images of a dataset folder (manifest or ImageFolder, read by the dataset runner),
    in order: (images, labels, ids, notes).

    An image listed with several labels (a multi-object scene) gets no label; an image that
    is missing or cannot be read is skipped and reported in the notes.
    """
    from ..runner import ItemError, load_item_image, read_dataset

    data = read_dataset(dataset)
    notes = [f"skipped {bad.describe()}" for bad in data.bad]
    labels: dict[str, set] = {}
    first = {}
    for item in data.items:
        first.setdefault(item.image, item)
        labels.setdefault(item.image, set()).add(item.label)
    images, labs, ids = [], [], []
    for rel, item in first.items():
        try:
            images.append(load_item_image(item))
        except ItemError as exc:
            notes.append(f"skipped {rel}: {exc}")
            continue
        only = labels[rel]
        labs.append(next(iter(only)) if len(only) == 1 else None)
        ids.append(rel)
    return images, labs, ids, notes


def _folder_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "image"


def represent_dataset(dataset: str | os.PathLike, out: str | os.PathLike, model: str,
                      image: str | os.PathLike | None = None, layer: str | None = None,
                      boundaries: int = 50, delta: int | None = None, sampler: str = "gradient",
                      representatives: int = 8, vocabulary: str | None = None,
                      cache_dir: str | os.PathLike | None = None, device: str = "auto",
                      batch_size: int = 32, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Fit on `dataset` (cached by model, layer, settings and data), explain `image` or
    `representatives` k-means representatives, write one folder each into `out`."""
    from ..adapters import load_adapter
    from ..image import load_image

    if representatives < 1:
        raise InputError(f"--representatives must be at least 1, got {representatives}")
    options = RIOptions(layer=layer, boundaries=boundaries, sampler=sampler, delta=delta,
                        vocabulary=vocabulary, seed=seed, batch_size=batch_size)
    target = load_image(image) if image is not None else None
    images, labels, ids, notes = load_references(dataset)
    adapter = load_adapter(model, device=device)
    cache = FitCache(cache_dir)
    ri = RepresentativeInterpretations(adapter, options).fit(images, labels, ids, cache=cache)
    fit_key = cache.key_hash(ri.key)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, np.ndarray, dict]] = []
    if target is not None:
        jobs.append((_folder_name(Path(image).stem), target, {"image": str(image)}))
    else:
        for k, i in enumerate(ri.representatives(representatives)):
            jobs.append((f"rep{k:02d}_{_folder_name(Path(ids[i]).with_suffix('').as_posix())}",
                         images[int(i)], {"image": ids[int(i)], "representative": k}))
    rows = []
    for done, (name, img, extra) in enumerate(jobs):
        folder = out / name
        previous = _previous(folder, fit_key, delta)
        if previous is not None:
            rows.append(previous)
            continue
        try:
            interp = ri.explain(img)
        except MmattrError as exc:
            if target is not None:
                raise
            notes.append(f"{extra['image']}: {exc}")
            continue
        data = write_interpretation(folder, ri, interp, img,
                                    extra={**extra, "fit_key": fit_key, "delta_option": delta})
        rows.append({**data, "folder": name})
        if progress is not None:
            progress(done + 1, len(jobs))
    summary = {"dataset": str(dataset), "model": model, "layer": ri.fitted.meta["layer"],
               "reference_images": ri.fitted.n, "cached": cache.hits > 0, "fit_key": fit_key,
               "notes": notes,
               "interpretations": [{k: r[k] for k in ("folder", "image", "predicted", "coverage",
                                                      "accuracy_model", "accuracy_labels",
                                                      "boundaries", "delta", "tau")}
                                   for r in rows]}
    atomic_write(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _previous(folder: Path, fit_key: str, delta: int | None) -> dict | None:
    """A finished interpretation of the same fit and δ (skipped on a rerun); an output folder
    holding files mmattr did not write is an error, never overwritten."""
    path = folder / "interpretation.json"
    if not folder.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or "fit_key" not in data:
        if any(folder.iterdir()):
            raise InputError(f"{folder} holds files mmattr did not write; choose another --out")
        return None
    if data["fit_key"] == fit_key and data.get("delta_option") == delta:
        return {**data, "folder": folder.name}
    return None
