"""The `represent` command's work: read a dataset, fit (cached), explain, write the files.

The output folder follows the one rule of every command (`mmattr.runs.folder`): checked before
the fit, refused when it holds someone else's files, the dataset itself, or a result of other
settings (without ``overwrite``). Each interpretation is written into a temporary folder and
moved into place; a rerun of the same settings reuses the interpretations of the same fit (the
fit's key covers the images' content, so an edited dataset is interpreted again).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError, MmattrError
from ..runs.dataset import dataset_identity
from ..runs.folder import OutputFolder
from ..runs.store import EmbeddingStore
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
    from ..runs.dataset import ItemError, load_item, read_dataset

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
            # the dataset's one rule: an unreadable image, or a bad mask, skips the item
            images.append(load_item(item).image)
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
                      progress: Callable[[int, int], None] | None = None,
                      overwrite: bool = False) -> dict[str, Any]:
    """Fit on `dataset` (cached in the shared store by model, layer, settings and data),
    explain `image` or `representatives` k-means representatives, write one folder each into
    `out`. Every setting, the cache folder and `out` are checked before the fit."""
    from ..adapters import load_adapter
    from ..image import load_image

    if representatives < 1:
        raise InputError(f"--representatives must be at least 1, got {representatives}")
    options = RIOptions(layer=layer, boundaries=boundaries, sampler=sampler, delta=delta,
                        vocabulary=vocabulary, seed=seed, batch_size=batch_size)
    target = load_image(image) if image is not None else None
    store = EmbeddingStore(cache_dir).check()
    if not Path(dataset).is_dir():
        from ..runs.dataset import read_dataset

        read_dataset(dataset)  # its one-line error: not found, not a folder
    settings = {"dataset": dataset_identity(dataset), "model": model,
                "image": os.path.realpath(image) if image is not None else None,
                "representatives": None if image is not None else representatives,
                "layer": layer, "boundaries": boundaries, "delta": delta, "sampler": sampler,
                "vocabulary": vocabulary, "seed": seed}
    with OutputFolder(out, "represent", settings, overwrite=overwrite,
                      files=("summary.json",), avoid=[dataset]) as folder:
        images, labels, ids, notes = load_references(dataset)
        adapter = load_adapter(model, device=device)
        cache = FitCache(store=store)
        ri = RepresentativeInterpretations(adapter, options).fit(images, labels, ids, cache=cache)
        fit_key = cache.key_hash(ri.key)
        jobs: list[tuple[str, np.ndarray, dict]] = []
        if target is not None:
            jobs.append((_folder_name(Path(image).stem), target, {"image": str(image)}))
        else:
            for k, i in enumerate(ri.representatives(representatives)):
                jobs.append((f"rep{k:02d}_{_folder_name(Path(ids[i]).with_suffix('').as_posix())}",
                             images[int(i)], {"image": ids[int(i)], "representative": k}))
        rows = []
        for done, (name, img, extra) in enumerate(jobs):
            previous = _previous(folder, name, fit_key, delta)
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
            written: dict = {}

            def fill(tmp: Path, name=name, img=img, extra=extra, interp=interp) -> list[str]:
                written.update(write_interpretation(
                    tmp / name, ri, interp, img,
                    extra={**extra, "fit_key": fit_key, "delta_option": delta}))
                return [name]

            folder.write_files(fill)
            rows.append({**written, "folder": name})
            if progress is not None:
                progress(done + 1, len(jobs))
        summary = {"dataset": str(dataset), "model": model, "layer": ri.fitted.meta["layer"],
                   "reference_images": ri.fitted.n, "cached": cache.hits > 0,
                   "fit_key": fit_key, "notes": notes,
                   "interpretations": [{k: r[k] for k in ("folder", "image", "predicted",
                                                          "coverage", "accuracy_model",
                                                          "accuracy_labels", "boundaries",
                                                          "delta", "tau")}
                                       for r in rows]}
        folder.write_text("summary.json", json.dumps(summary, indent=2) + "\n")
        folder.finish()
    return summary


def _previous(folder: OutputFolder, name: str, fit_key: str, delta: int | None) -> dict | None:
    """A finished interpretation of the same fit and δ in this folder of the same settings
    (skipped on a rerun); anything else is written again."""
    if folder.state != "same":
        return None
    try:
        data = json.loads((folder.out / name / "interpretation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (isinstance(data, dict) and data.get("fit_key") == fit_key
            and data.get("delta_option") == delta):
        return {**data, "folder": name}
    return None
