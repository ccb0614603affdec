"""Failure slices: groups of images, found in the model's own embedding space, on which the
model does markedly worse than overall.

Two slicers, one contract (`Slicer.fit` then `assign`): ``domino`` fits a Gaussian mixture to
the embeddings with the error appended as one more coordinate, so components follow the errors
(the error-aware mixture of Domino); ``kmeans`` clusters the embeddings alone. Either way a
component becomes a slice only when it is large enough and its accuracy drop is significant
(its Wilson interval lies below the overall accuracy), as SliceLine and sliceguard filter.

Ref. Eyuboglu et al., "Domino: Discovering Systematic Errors with Cross-Modal Embeddings",
ICLR 2022; Sagadeeva and Boehm, "SliceLine: Fast, Linear-Algebra-based Slice Finding for ML
Model Debugging", SIGMOD 2021.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import InputError
from ..registry import Registry
from .measures import wilson_interval

SLICERS: Registry[type["Slicer"]] = Registry("slicer")


def register_slicer(name: str) -> Callable[[type["Slicer"]], type["Slicer"]]:
    return SLICERS.register(name)


def list_slicers() -> list[str]:
    return SLICERS.names()


def embedding_features(emb: np.ndarray, dims: int = 32, seed: int = 0) -> np.ndarray:
    """Unit-normalised embeddings projected on their top `dims` principal axes and scaled to an
    average variance of 1 per axis (one scale for all axes, so the geometry is kept)."""
    from sklearn.decomposition import PCA

    x = np.asarray(emb, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    d = int(max(1, min(dims, x.shape[1], x.shape[0] - 1)))
    z = PCA(n_components=d, random_state=seed).fit_transform(x)
    scale = np.sqrt(z.var(axis=0).sum() / d)
    return z / max(scale, 1e-12)


class Slicer(ABC):
    """Partitions a dataset's images into candidate slices; `fit` sees the embeddings and
    which images the model got wrong."""

    def __init__(self, n_slices: int, seed: int = 0, **options) -> None:
        self.n_slices = n_slices
        self.seed = seed
        self.options = options

    @abstractmethod
    def fit(self, features: np.ndarray, errors: np.ndarray) -> "Slicer":
        """Learn the partition; `features` from `embedding_features`, `errors` (N,) bool."""

    def assign(self) -> tuple[np.ndarray, np.ndarray]:
        """(N,) component of each image seen by `fit`, and (N,) its typicality distance
        (smaller = more typical of its component)."""
        return self.labels_, self.distance_


@register_slicer("domino")
class ErrorAwareMixture(Slicer):
    """Diagonal Gaussian mixture over [features, error_weight · error]: the error coordinate
    makes components that separate what the model gets wrong from what it gets right."""

    def fit(self, features: np.ndarray, errors: np.ndarray) -> "Slicer":
        from sklearn.mixture import GaussianMixture

        w = float(self.options.get("error_weight", 3.0))
        x = np.column_stack([features, w * errors.astype(np.float64)])
        gm = GaussianMixture(n_components=self.n_slices, covariance_type="diag",
                             reg_covar=1e-3, n_init=2, random_state=self.seed).fit(x)
        self.labels_ = gm.predict(x)
        # Mahalanobis distance to the own component's mean: the most typical members first.
        mu, var = gm.means_[self.labels_], gm.covariances_[self.labels_]
        self.distance_ = np.sqrt((((x - mu) ** 2) / var).sum(axis=1))
        return self


@register_slicer("kmeans")
class KMeansSlicer(Slicer):
    """k-means on the features alone; slices are the clusters whose accuracy drops."""

    def fit(self, features: np.ndarray, errors: np.ndarray) -> "Slicer":
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=self.n_slices, n_init=4, random_state=self.seed).fit(features)
        self.labels_ = km.labels_
        self.distance_ = np.linalg.norm(features - km.cluster_centers_[km.labels_], axis=1)
        return self


@dataclass
class Slice:
    """One reported failure slice. `members` and `typical` hold dataset indices; `typical`
    are the members closest to the component's centre, most typical first."""

    rank: int
    component: int
    members: np.ndarray
    typical: np.ndarray
    size: int
    accuracy: float
    ci_low: float
    ci_high: float
    drop: float
    errors: int
    names: list[tuple[str, float]] = field(default_factory=list)
    summary: str = ""

    def to_dict(self) -> dict:
        return {"rank": self.rank, "size": self.size, "accuracy": self.accuracy,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "drop": self.drop,
                "errors": self.errors, "summary": self.summary,
                "names": [{"phrase": p, "score": s} for p, s in self.names],
                "typical": [int(i) for i in self.typical]}


@dataclass(frozen=True)
class SliceSettings:
    """How slices are found and which are reported."""

    method: str = "domino"
    #: mixture components / clusters; 0 picks clamp(N // 40, 4, 24)
    n_components: int = 0
    #: smallest slice: max(min_support, min_fraction · N) images
    min_support: int = 8
    min_fraction: float = 0.01
    #: smallest accuracy drop (absolute) worth reporting
    min_drop: float = 0.10
    dims: int = 32
    error_weight: float = 3.0
    max_slices: int = 8
    typical: int = 10
    seed: int = 0

    def components(self, n: int) -> int:
        k = self.n_components or int(np.clip(n // 40, 4, 24))
        return max(1, min(k, n))


def find_slices(emb: np.ndarray, correct: np.ndarray, settings: SliceSettings | None = None
                ) -> list[Slice]:
    """Failure slices of a dataset, best first.

    A component is reported when it holds at least max(min_support, min_fraction·N) images,
    its accuracy is at least `min_drop` below the overall accuracy and its 95 % Wilson upper
    bound is below the overall accuracy. Ranking is by the drop that is certain at that level
    (overall − upper bound), which favours slices that are both large and bad.
    """
    s = settings or SliceSettings()
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    if emb.shape[0] != n:
        raise InputError(f"{emb.shape[0]} embeddings for {n} predictions")
    if n < 4 or correct.all():
        return []
    slicer_cls = SLICERS.get(s.method)
    features = embedding_features(emb, s.dims, s.seed)
    slicer = slicer_cls(s.components(n), seed=s.seed, error_weight=s.error_weight)
    comp, dist = slicer.fit(features, ~correct).assign()
    overall = float(correct.mean())
    support = max(s.min_support, int(np.ceil(s.min_fraction * n)))
    found = []
    for c in np.unique(comp):
        members = np.flatnonzero(comp == c)
        k = int(correct[members].sum())
        m = len(members)
        acc = k / m
        lo, hi = (float(v) for v in wilson_interval(k, m))
        if m < support or overall - acc < s.min_drop or hi >= overall:
            continue
        typical = members[np.argsort(dist[members], kind="stable")][: s.typical]
        found.append(Slice(0, int(c), members, typical, m, acc, lo, hi, overall - acc, m - k))
    found.sort(key=lambda sl: (-(overall - sl.ci_high), -sl.size))
    for r, sl in enumerate(found[: s.max_slices], 1):
        sl.rank = r
    return found[: s.max_slices]
