"""Metadata slices: values (and pairs of values) of the dataset's own columns on which the model
does significantly worse, and which column value explains an embedding slice.

Columns: every scalar field of the manifest (strings, numbers, booleans; a string column with
a different value on most lines, such as an id, is left out), the label (an ImageFolder's class
folder), and cheap properties of each image: width, height, aspect ratio, brightness (mean
luma, 0-255), contrast (luma standard deviation), sharpness (variance of the Laplacian of
luma) and, where the manifest gives a mask, the object's area (the mask's share of the image). Numbers with more than `MAX_LEVELS` distinct values are cut at their quartiles (terciles
below 200 images). Constant columns are left out.

Candidates (SliceLine / Slice Finder style, equality predicates): every value with at least
`min_support` images, and every pair of values from two columns with at least `min_support`
images that fails more often than either value alone. Each is tested one-sided (binomial: more
mistakes than at the rest's error rate); the audit applies one Benjamini-Hochberg correction to
these and the embedding slices together. A pair is not reported when either of its values is
(no sub-slice of a reported slice).

Ref. Chung et al., "Slice Finder: Automated Data Slicing for Model Validation", ICDE 2019;
Sagadeeva and Boehm, "SliceLine: Fast, Linear-Algebra-based Slice Finding for ML Model
Debugging", SIGMOD 2021; Pech-Pacheco et al., "Diatom autofocusing in brightfield microscopy: a
comparative study", ICPR 2000 (variance of the Laplacian as sharpness).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .measures import wilson_interval
from .slices import Slice
from .stats import group_vs_rest_p

#: image properties computed for every image (cached with the embeddings); ``object_area``
#: is the mask's share of the image (NaN without a mask)
PROPERTIES = ("width", "height", "aspect", "brightness", "contrast", "sharpness", "object_area")
#: the cache's key for the properties (bump when they change)
PROPERTIES_KEY = "image-properties-v2"
#: numbers with more distinct values than this are binned at quantiles
MAX_LEVELS = 6
#: fields that are the dataset's structure, not metadata
_STRUCTURE = {"image", "text", "mask", "label"}


def _properties_of(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    luma = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    area = float(mask.mean()) if mask is not None else float("nan")
    return np.array([w, h, w / max(h, 1), float(luma.mean()), float(luma.std()),
                     float(cv2.Laplacian(luma, cv2.CV_32F).var()), area], dtype=np.float32)


def image_properties(items: Sequence, digests: Sequence[str], cache=None, workers: int = 2
                     ) -> np.ndarray:
    """(N, 6) `PROPERTIES` of each item's image, read back from `cache` (an `EmbeddingCache`,
    keyed by content hash) when there, else computed by `workers` threads and stored. An image
    that cannot be read gets NaNs (it was read a moment ago by the encoder, so this is rare)."""
    from ..errors import MmattrError
    from ..runner import load_item_image
    from .why import load_mask

    out = np.full((len(items), len(PROPERTIES)), np.nan, dtype=np.float32)

    def one(pair: tuple[int, Any]) -> None:
        i, it = pair
        got = cache.get(PROPERTIES_KEY, digests[i]) if cache is not None else None
        if got is not None and got.shape == (len(PROPERTIES),):
            out[i] = got
            return
        try:
            image = load_item_image(it)
        except MmattrError:
            return
        try:
            mask = load_mask(str(it.mask_path), image.shape[:2]) if it.mask_path else None
        except MmattrError:
            mask = None  # the occlusion test lists a bad mask; the area is simply unknown
        vec = _properties_of(image, mask)
        out[i] = vec
        if cache is not None:
            cache.put(PROPERTIES_KEY, digests[i], vec)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(one, enumerate(items)))
    return out


@dataclass
class Column:
    """One metadata column as discrete values per image (None: missing)."""

    name: str
    values: list[str | None]
    kind: str  # "field", "label" or "property"


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _discretise(name: str, raw: list[Any], kind: str) -> Column | None:
    present = [v for v in raw if v is not None]
    if len(set(map(str, present))) < 2:
        return None
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    if numeric and len(set(present)) > MAX_LEVELS:
        x = np.array([np.nan if v is None else float(v) for v in raw])
        ok = np.isfinite(x)
        parts = 4 if ok.sum() >= 200 else 3
        edges = np.unique(np.quantile(x[ok], np.linspace(0, 1, parts + 1)))
        if len(edges) < 3:
            return None
        which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
        names = ["lowest" if j == 0 else "highest" if j == len(edges) - 2 else f"bin {j + 1}"
                 for j in range(len(edges) - 1)]
        labels = [f"{names[j]} ({_fmt(edges[j])}–{_fmt(edges[j + 1])})"
                  for j in range(len(edges) - 1)]
        return Column(name, [labels[w] if o else None for w, o in zip(which, ok)], kind)
    values = [None if v is None else str(v) for v in raw]
    if not numeric and len(set(present)) > max(MAX_LEVELS, 0.5 * len(raw)):
        return None  # an id-like column: a value per image says nothing about a group
    return Column(name, values, kind)


def dataset_columns(items: Sequence, labels: Sequence[str],
                    properties: np.ndarray | None = None) -> list[Column]:
    """The discrete metadata columns of a dataset (see the module docstring)."""
    cols: list[Column] = []
    lab = _discretise("label", list(labels), "label")
    if lab is not None:
        cols.append(lab)
    keys = sorted({k for it in items for k, v in it.fields.items()
                   if k not in _STRUCTURE and isinstance(v, (str, int, float, bool))})
    for k in keys:
        raw = [it.fields.get(k) for it in items]
        raw = [v if isinstance(v, (str, int, float, bool)) else None for v in raw]
        col = _discretise(k, raw, "field")
        if col is not None:
            cols.append(col)
    if properties is not None:
        for j, name in enumerate(PROPERTIES):
            col = _discretise(name, [None if not np.isfinite(v) else float(v)
                                     for v in properties[:, j]], "property")
            if col is not None:
                cols.append(col)
    return cols


def _masks(col: Column) -> dict[str, np.ndarray]:
    vals = np.array(["\0" if v is None else v for v in col.values], dtype=object)
    return {v: vals == v for v in sorted(set(col.values) - {None})}


def metadata_candidates(columns: list[Column], correct: np.ndarray, min_support: int = 8,
                        ignore: np.ndarray | None = None, typical: int = 10) -> list[Slice]:
    """Every value and interacting pair with enough images, each with its one-sided p-value
    (q-values are set by the caller, over every slice it tests)."""
    correct = np.asarray(correct, bool)
    keep = np.ones(len(correct), bool) if ignore is None else ~np.asarray(ignore, bool)
    n_all = int(keep.sum())
    errors_all = int((~correct & keep).sum())
    singles: list[tuple[str, str, np.ndarray]] = []
    for col in columns:
        for v, m in _masks(col).items():
            m = m & keep
            if m.sum() >= min_support:
                singles.append((col.name, v, m))

    def make(rule: dict, m: np.ndarray, component: int) -> Slice:
        members = np.flatnonzero(m)
        n = len(members)
        k = int(correct[members].sum())
        lo, hi = (float(x) for x in wilson_interval(k, n))
        rest = n_all - n
        rest_acc = (int((correct & keep).sum()) - k) / rest if rest else k / n
        # typical: its mistakes first (what fails there), then the rest, in dataset order
        order = np.argsort(correct[members], kind="stable")
        return Slice(0, component, members, members[order][:typical], n, k / n, lo, hi,
                     rest_acc - k / n, n - k, kind="metadata", rule=rule,
                     p_value=group_vs_rest_p(n - k, n, errors_all, n_all),
                     rest_accuracy=float(rest_acc))

    out = [make({c: v}, m, -1) for c, v, m in singles]
    acc = {(c, v): float(correct[m].mean()) for c, v, m in singles}
    for i, (c1, v1, m1) in enumerate(singles):
        for c2, v2, m2 in singles[i + 1:]:
            if c1 == c2:
                continue
            m = m1 & m2
            if m.sum() < min_support:
                continue
            if correct[m].mean() < min(acc[(c1, v1)], acc[(c2, v2)]):
                out.append(make({c1: v1, c2: v2}, m, -2))
    return out


def prune_sub_slices(slices: list[Slice]) -> list[Slice]:
    """Drop a pair rule when either of its values is reported on its own."""
    singles = {next(iter(s.rule.items())) for s in slices if len(s.rule) == 1}
    return [s for s in slices if len(s.rule) == 1
            or not any(item in singles for item in s.rule.items())]


def explain_by_columns(members: np.ndarray, columns: list[Column], min_share: float = 0.8,
                       min_lift: float = 2.0) -> list[dict]:
    """Column values held by at least `min_share` of `members` and at least `min_lift` times as
    common there as in the whole dataset: what explains the slice, strongest first."""
    out = []
    for col in columns:
        for v, m in _masks(col).items():
            share = float(m[members].mean()) if len(members) else 0.0
            base = float(m.mean())
            if share >= min_share and base > 0 and share / base >= min_lift:
                out.append({"column": col.name, "value": v, "share": share, "base": base})
    out.sort(key=lambda e: (-e["share"], e["base"]))
    return out
