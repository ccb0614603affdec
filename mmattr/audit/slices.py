"""Failure slices: groups of images, found in the model's own embedding space, on which the
model does significantly worse than on the rest.

How a slice is found (the default slicer, ``modes``):

1. **Class-relative features.** Each image's unit embedding minus the mean embedding of the
   correctly predicted images of its own class (its own vector left out), projected on the top
   principal axes (one per five mistakes, at most ``dims``). What every image of a class shares (its colour, its shape) cancels; what sets
   an image apart from the images of its class the model gets right (a background, a blur, a
   size) remains. Images that share a cause of failure share this offset, across classes.
2. **Failure modes from the mistakes.** A Gaussian mixture over the model errors' features
   (likely label errors set aside), the number of components chosen by BIC; a second mixture
   over the correctly predicted images is the background.
3. **Members by features alone.** Every image goes to the most likely component of the two
   mixtures, with its own contribution to that component removed (leave-one-out), so whether an
   image is in a slice never depends on whether the model got *it* right: the accuracy measured
   on a slice is an honest test of it, not a restatement of how it was built.
4. **Tests.** Each candidate is tested one-sided (binomial: more mistakes than at the rest's
   error rate); the audit controls the false-discovery rate (Benjamini-Hochberg) over every
   slice it tests, metadata slices included. A slice is kept when q ≤ ``alpha``, it has at least
   max(min_support, min_fraction·N) images and ``min_errors`` mistakes, and it is at least
   ``min_drop`` below the rest.
5. **Merging.** Two candidates that share a failure signature (their mistakes' mean offsets
   point the same way, cosine ≥ ``merge_cosine``, or their mistakes fall in the same
   true → predicted cells, cosine of the cell counts ≥ 0.5) and whose error rates do not differ
   (Fisher exact p > 0.05, or by less than 0.25) are one failure mode and become one slice; the
   audit also merges slices that one metadata value explains.

``domino`` (Domino's error-aware mixture: the error appended as one more coordinate) and
``kmeans`` (clusters of the features alone) are the alternatives; both choose their number of
components by BIC unless told.

Ref. Eyuboglu et al., "Domino: Discovering Systematic Errors with Cross-Modal Embeddings",
ICLR 2022; Sagadeeva and Boehm, "SliceLine", SIGMOD 2021; Chung et al., "Slice Finder",
ICDE 2019; Schwarz, "Estimating the Dimension of a Model", Ann. Stat. 1978 (BIC).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import InputError
from ..registry import Registry
from .measures import wilson_interval
from .stats import benjamini_hochberg, group_vs_rest_p, same_rate_p

SLICERS: Registry[type["Slicer"]] = Registry("slicer")
#: mixture sizes BIC chooses from (capped by the data: about 8 points per component)
BIC_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24)
_REG = 1e-3


def register_slicer(name: str) -> Callable[[type["Slicer"]], type["Slicer"]]:
    return SLICERS.register(name)


def list_slicers() -> list[str]:
    return SLICERS.names()


def _project(x: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """Top `dims` principal axes, scaled to an average variance of 1 per axis (one scale for
    all axes, so the geometry is kept)."""
    from sklearn.decomposition import PCA

    d = int(max(1, min(dims, x.shape[1], x.shape[0] - 1)))
    z = PCA(n_components=d, random_state=seed).fit_transform(x)
    scale = np.sqrt(z.var(axis=0).sum() / d)
    return z / max(scale, 1e-12)


def _unit(emb: np.ndarray) -> np.ndarray:
    x = np.asarray(emb, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def embedding_features(emb: np.ndarray, dims: int = 16, seed: int = 0) -> np.ndarray:
    """Unit-normalised embeddings on their top `dims` principal axes (see `_project`)."""
    return _project(_unit(emb), dims, seed)


def class_offsets(emb: np.ndarray, labels: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """(N, D): each unit embedding minus the mean of the correctly predicted images of its class,
    its own vector left out; a class with no other correct image uses its other images, a class
    of one image the mean of all images."""
    x = _unit(emb)
    labels = np.asarray(labels)
    ok = np.asarray(correct, bool)
    k = int(labels.max()) + 1 if len(labels) else 0
    s_ok = np.zeros((k, x.shape[1]))
    c_ok = np.zeros(k)
    np.add.at(s_ok, labels[ok], x[ok])
    np.add.at(c_ok, labels[ok], 1.0)
    s_all = np.zeros((k, x.shape[1]))
    c_all = np.zeros(k)
    np.add.at(s_all, labels, x)
    np.add.at(c_all, labels, 1.0)
    n_ok = c_ok[labels] - ok
    n_all = c_all[labels] - 1.0
    ref_ok = (s_ok[labels] - np.where(ok[:, None], x, 0.0)) / np.maximum(n_ok, 1.0)[:, None]
    ref_all = (s_all[labels] - x) / np.maximum(n_all, 1.0)[:, None]
    ref = np.where((n_ok > 0)[:, None], ref_ok, np.where((n_all > 0)[:, None], ref_all,
                                                         x.mean(axis=0, keepdims=True)))
    return x - ref


def class_relative_features(emb: np.ndarray, labels: np.ndarray, correct: np.ndarray,
                            dims: int = 16, seed: int = 0) -> np.ndarray:
    """`class_offsets` on their top `dims` principal axes (see the module docstring)."""
    return _project(class_offsets(emb, labels, correct), dims, seed)


def bic_mixture(x: np.ndarray, max_components: int, seed: int = 0, n_init: int = 2):
    """A diagonal Gaussian mixture of `x` whose number of components (from `BIC_GRID`, at most
    `max_components` and about one per 8 points) has the lowest BIC."""
    from sklearn.mixture import GaussianMixture

    best = None
    cap = max(1, min(max_components, len(x) // 8))
    for k in BIC_GRID:
        if k > cap:
            break
        gm = GaussianMixture(n_components=k, covariance_type="diag", reg_covar=_REG,
                             n_init=n_init, random_state=seed).fit(x)
        bic = gm.bic(x)
        if best is None or bic < best[0]:
            best = (bic, gm)
    return best[1]


def _loo_log_density(z: np.ndarray, fitted: np.ndarray, gm) -> np.ndarray:
    """(C, N) log(n_c · N(z | component c)) of a fitted diagonal mixture, each of the fitted
    points (`fitted` indices) taken out of every component in proportion to its responsibility,
    so no point is drawn to a component by its own weight."""
    resp = gm.predict_proba(z[fitted])
    n_c = resp.sum(axis=0)
    s1 = resp.T @ z[fitted]
    s2 = resp.T @ (z[fitted] ** 2)
    w = np.zeros((len(z), resp.shape[1]))
    w[fitted] = resp
    n = np.maximum(n_c[None, :] - w, 1e-6)                                  # (N, C)
    mu = (s1[None] - w[..., None] * z[:, None, :]) / n[..., None]           # (N, C, d)
    var = np.maximum((s2[None] - w[..., None] * z[:, None, :] ** 2) / n[..., None] - mu ** 2,
                     0.0) + _REG
    lp = -0.5 * (((z[:, None, :] - mu) ** 2) / var + np.log(2 * np.pi * var)).sum(axis=-1)
    return (lp + np.log(n)).T


def _component_log_density(gm, z: np.ndarray) -> np.ndarray:
    """(C, N) log N(z | component c) of a fitted diagonal mixture."""
    var = gm.covariances_ + 0.0
    return -0.5 * (((z[None, :, :] - gm.means_[:, None, :]) ** 2) / var[:, None, :]
                   + np.log(2 * np.pi * var[:, None, :])).sum(axis=-1)


class Slicer(ABC):
    """Partitions a dataset's images into candidate slices; `fit` sees the features and which
    images the model got wrong. `n_slices` bounds the number of components (0: chosen by BIC)."""

    def __init__(self, n_slices: int, seed: int = 0, **options) -> None:
        self.n_slices = n_slices
        self.seed = seed
        self.options = options

    @abstractmethod
    def fit(self, features: np.ndarray, errors: np.ndarray) -> "Slicer":
        """Learn the partition; `features` (N, d), `errors` (N,) bool."""

    def assign(self) -> tuple[np.ndarray, np.ndarray]:
        """(N,) component of each image seen by `fit`, and (N,) its typicality distance
        (smaller = more typical of its component)."""
        return self.labels_, self.distance_

    def candidates(self) -> list[int]:
        """The components that are candidate failure slices (default: all of them)."""
        return sorted({int(c) for c in self.labels_})

    def place(self, features: np.ndarray) -> np.ndarray:
        """(M,) component of images not seen by `fit` (default: −1, none)."""
        return np.full(len(features), -1, dtype=np.int64)

    def _max(self, n: int, default: int = 16) -> int:
        return max(1, min(self.n_slices or default, n))


@register_slicer("modes")
class FailureModes(Slicer):
    """Failure modes fitted to the mistakes, a background fitted to the correct images, and
    members chosen leave-one-out (see the module docstring). Components ``0..m-1`` are the
    failure modes, ``m`` the background."""

    def fit(self, features: np.ndarray, errors: np.ndarray) -> "Slicer":
        z = np.asarray(features, dtype=np.float64)
        errors = np.asarray(errors, bool)
        n = len(z)
        wrong, right = np.flatnonzero(errors), np.flatnonzero(~errors)
        most = self._max(n) - 1  # one label is the background
        if most < 1 or len(wrong) < 4:
            self.labels_ = np.zeros(n, np.int64) if most < 1 else np.full(n, 0, np.int64)
            self.distance_ = np.linalg.norm(z - z.mean(axis=0), axis=1)
            self.modes_ = 0
            return self
        modes = bic_mixture(z[wrong], most, self.seed)
        self.mixtures_ = [(modes, len(wrong))]
        parts = [_loo_log_density(z, wrong, modes)]
        if len(right) >= 2:
            self.mixtures_.append((bic_mixture(z[right], 16, self.seed), len(right)))
            parts.append(_loo_log_density(z, right, self.mixtures_[1][0]))
        logp = np.vstack(parts)
        best = logp.argmax(axis=0)
        m = modes.n_components
        self.modes_ = m
        self.labels_ = np.minimum(best, m).astype(np.int64)  # every background component is one
        # typicality: Mahalanobis distance to the own failure mode's centre (background: its mean)
        dist = np.empty(n)
        for c in range(m + 1):
            members = self.labels_ == c
            if not members.any():
                continue
            if c < m:
                mu, var = modes.means_[c], modes.covariances_[c]
            else:
                mu, var = z[members].mean(axis=0), z[members].var(axis=0) + _REG
            dist[members] = np.sqrt((((z[members] - mu) ** 2) / var).sum(axis=1))
        self.distance_ = dist
        return self

    def candidates(self) -> list[int]:
        return [c for c in range(self.modes_) if (self.labels_ == c).any()]

    def place(self, features: np.ndarray) -> np.ndarray:
        """The most likely component of images the mixtures never saw (no leave-one-out
        needed), by the same rule as `fit`'s members."""
        if not self.modes_ or not len(features):
            return np.full(len(features), -1, dtype=np.int64)
        z = np.asarray(features, dtype=np.float64)
        logp = np.vstack([np.log(gm.weights_ * size)[:, None]  # n_c, as in fit
                          + _component_log_density(gm, z) for gm, size in self.mixtures_])
        return np.minimum(logp.argmax(axis=0), self.modes_).astype(np.int64)


@register_slicer("domino")
class ErrorAwareMixture(Slicer):
    """Diagonal Gaussian mixture over [features, error_weight · error]: the error coordinate
    makes components that separate what the model gets wrong from what it gets right."""

    def fit(self, features: np.ndarray, errors: np.ndarray) -> "Slicer":
        w = float(self.options.get("error_weight", 3.0))
        x = np.column_stack([features, w * errors.astype(np.float64)])
        if self.n_slices:
            from sklearn.mixture import GaussianMixture

            gm = GaussianMixture(n_components=min(self.n_slices, len(x)), covariance_type="diag",
                                 reg_covar=_REG, n_init=2, random_state=self.seed).fit(x)
        else:
            gm = bic_mixture(x, self._max(len(x), 24), self.seed)
        self.labels_ = gm.predict(x)
        # Mahalanobis distance to the own component's mean: the most typical members first.
        mu, var = gm.means_[self.labels_], gm.covariances_[self.labels_]
        self.distance_ = np.sqrt((((x - mu) ** 2) / var).sum(axis=1))
        return self


@register_slicer("kmeans")
class KMeansSlicer(Slicer):
    """k-means on the features alone (k by a spherical mixture's BIC unless given); slices
    are the clusters whose accuracy drops."""

    def fit(self, features: np.ndarray, errors: np.ndarray) -> "Slicer":
        from sklearn.cluster import KMeans

        k = self.n_slices or bic_mixture(features, self._max(len(features), 24),
                                         self.seed).n_components
        km = KMeans(n_clusters=min(k, len(features)), n_init=4, random_state=self.seed).fit(features)
        self.labels_ = km.labels_
        self.distance_ = np.linalg.norm(features - km.cluster_centers_[km.labels_], axis=1)
        return self


@dataclass
class Slice:
    """One failure slice (found in embedding space, or a metadata rule). `members` and
    `typical` hold dataset indices; `typical` are the members most typical of it, first."""

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
    #: "embedding" or "metadata"
    kind: str = "embedding"
    #: one-sided p-value that it fails more often than the rest, and its BH q-value
    p_value: float = float("nan")
    q_value: float = float("nan")
    #: accuracy of the images outside it
    rest_accuracy: float = float("nan")
    #: metadata slices: {column: value}
    rule: dict = field(default_factory=dict)
    #: mixture components merged into this slice
    merged: int = 1
    #: p-value of each name (same order as `names`), and why a slice has no name
    name_p: list[float] = field(default_factory=list)
    unnamed: str = ""
    #: metadata values that explain it: [{"column", "value", "share", "base"}]
    explained_by: list[dict] = field(default_factory=list)
    #: the metadata slice it coincides with, if any
    same_as: str = ""
    #: images set aside before the search (likely label errors) that fall in it by their
    #: features; after the analysis, those set back as its model errors (not counted in its
    #: tested numbers)
    aside: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def title(self) -> str:
        """How a person names it: its metadata rule, else its best name, else 'unnamed'."""
        if self.rule:
            return " & ".join(f"{k} = {v}" for k, v in self.rule.items())
        if self.explained_by:
            e = self.explained_by[0]
            return f"{e['column']} = {e['value']}"
        return self.names[0][0] if self.names else "unnamed"

    def to_dict(self) -> dict:
        return {"rank": self.rank, "kind": self.kind, "title": self.title(), "size": self.size,
                "accuracy": self.accuracy, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "drop": self.drop, "rest_accuracy": self.rest_accuracy, "errors": self.errors,
                "p_value": self.p_value, "q_value": self.q_value, "summary": self.summary,
                "rule": dict(self.rule), "merged_components": self.merged,
                "names": [{"phrase": p, "score": s,
                           "p_value": self.name_p[i] if i < len(self.name_p) else None}
                          for i, (p, s) in enumerate(self.names)],
                "unnamed_reason": self.unnamed, "explained_by": list(self.explained_by),
                "same_as_metadata": self.same_as, "set_aside_inside": len(self.aside),
                "typical": [int(i) for i in self.typical]}


@dataclass(frozen=True)
class SliceSettings:
    """How slices are found and which are reported."""

    method: str = "modes"
    #: the most mixture components (failure modes + 1 for modes); 0: chosen by BIC up to 16
    n_components: int = 0
    #: smallest slice: max(min_support, min_fraction · N) images, and at least min_errors
    #: mistakes (a "pattern" of three mistakes is an anecdote, however small its p-value)
    min_support: int = 8
    min_fraction: float = 0.01
    min_errors: int = 5
    #: smallest accuracy drop below the rest worth reporting
    min_drop: float = 0.10
    #: false-discovery rate over every slice tested
    alpha: float = 0.05
    #: feature axes at most (fewer with few mistakes: one per five)
    dims: int = 16
    error_weight: float = 3.0
    #: candidates whose mistakes' mean offsets have at least this cosine (and error rates that
    #: do not differ, Fisher p > 0.05) are merged into one slice
    merge_cosine: float = 0.8
    max_slices: int = 8
    typical: int = 10
    seed: int = 0

    def support(self, n: int) -> int:
        return max(self.min_support, int(np.ceil(self.min_fraction * n)))


def _candidate(members: np.ndarray, correct: np.ndarray, dist: np.ndarray, typical: int,
               component: int, merged: int = 1) -> Slice:
    n_all = len(correct)
    m = len(members)
    k = int(correct[members].sum())
    errors_all = int((~correct).sum())
    lo, hi = (float(v) for v in wilson_interval(k, m))
    rest = n_all - m
    rest_acc = (int(correct.sum()) - k) / rest if rest else float(correct.mean())
    order = np.argsort(dist[members], kind="stable")
    return Slice(0, component, members, members[order][:typical], m, k / m, lo, hi,
                 rest_acc - k / m, m - k, rest_accuracy=float(rest_acc),
                 p_value=group_vs_rest_p(m - k, m, errors_all, n_all), merged=merged)


def slice_candidates(emb: np.ndarray, correct: np.ndarray, settings: SliceSettings | None = None,
                     labels: np.ndarray | None = None, ignore: np.ndarray | None = None,
                     preds: np.ndarray | None = None) -> list[Slice]:
    """Every candidate slice with its p-value, before false-discovery control (indices are into
    the whole dataset; images in `ignore`, e.g. likely label errors, are left out of the fit,
    the tests and every slice). With `labels` the features are class-relative; with `preds` too,
    candidates whose mistakes share confusion cells can merge."""
    s = settings or SliceSettings()
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    if emb.shape[0] != n:
        raise InputError(f"{emb.shape[0]} embeddings for {n} predictions")
    keep = np.ones(n, bool) if ignore is None else ~np.asarray(ignore, bool)
    idx = np.flatnonzero(keep)
    if len(idx) < 4 or correct[idx].all():
        return []
    ok = correct[idx]
    # about five mistakes per feature axis: a mixture of 40 mistakes cannot carry 16 axes (BIC
    # would keep one component for everything), 400 can
    dims = int(np.clip((~ok).sum() // 5, 2, s.dims))
    # features of every image (the set-aside ones too, to place them afterwards); the
    # reference means use correct images only, which set-aside mistakes never are
    if labels is not None:
        every = class_relative_features(emb, labels, correct, dims, s.seed)
    else:
        every = embedding_features(emb, dims, s.seed)
    features = every[idx]
    slicer = SLICERS.get(s.method)(s.n_components, seed=s.seed, error_weight=s.error_weight)
    comp, dist = slicer.fit(features, ~ok).assign()
    aside = np.flatnonzero(~keep)
    placed = slicer.place(every[aside])
    groups = {c: np.flatnonzero(comp == c) for c in slicer.candidates()}
    cells = None
    if labels is not None and preds is not None:
        k = int(max(np.max(labels), np.max(preds))) + 1
        cells = (np.asarray(labels) * k + np.asarray(preds))[idx]
    groups = _merge(groups, features, ok, s.merge_cosine, cells)
    out = []
    for c, (local, merged, parts) in groups.items():
        cand = _candidate(local, ok, dist, s.typical, c, merged)
        cand.members, cand.typical = idx[cand.members], idx[cand.typical]
        cand.aside = aside[np.isin(placed, list(parts))]
        out.append(cand)
    return out


def _merge(groups: dict[int, np.ndarray], features: np.ndarray, correct: np.ndarray,
           min_cos: float, cells: np.ndarray | None = None, min_cells: float = 0.5,
           max_gap: float = 0.25) -> dict[int, tuple[np.ndarray, int, set[int]]]:
    """Merge candidates that share a failure signature: their mistakes' mean feature offsets
    point the same way (cosine ≥ `min_cos`) or, with `cells` (each image's true → predicted
    cell id), their mistakes fall in the same confusion cells (cosine of the cell counts ≥
    `min_cells`); and their error rates do not differ (Fisher exact p > 0.05, or by less than
    `max_gap`: two total failures of one cause differ significantly at a few hundred images).
    Greedy, most similar pair first, until no pair qualifies. Returns {component: (members,
    how many were merged, the components merged)}."""
    cur = {c: (m, 1, {c}) for c, m in groups.items() if len(m)}

    def signature(m: np.ndarray) -> tuple[np.ndarray, np.ndarray | None] | None:
        wrong = m[~correct[m]]
        if not len(wrong):
            return None
        v = features[wrong].mean(axis=0)
        cell = None
        if cells is not None:
            ids, counts = np.unique(cells[wrong], return_counts=True)
            cell = dict(zip(ids.tolist(), counts.astype(float).tolist()))
        return v / max(np.linalg.norm(v), 1e-12), cell

    def cell_cos(a: dict, b: dict) -> float:
        dot = sum(v * b.get(k, 0.0) for k, v in a.items())
        return dot / max(np.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values())),
                         1e-12)

    while len(cur) > 1:
        sig = {c: signature(m) for c, (m, _, _) in cur.items()}
        best = None
        keys = sorted(cur)
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                if sig[a] is None or sig[b] is None:
                    continue
                cos = float(sig[a][0] @ sig[b][0])
                same_cells = (sig[a][1] is not None and cell_cos(sig[a][1], sig[b][1]) >= min_cells)
                if cos < min_cos and not same_cells:
                    continue
                ma, mb = cur[a][0], cur[b][0]
                ea, eb = int((~correct[ma]).sum()), int((~correct[mb]).sum())
                gap = abs(ea / len(ma) - eb / len(mb))
                if gap > max_gap and same_rate_p(ea, len(ma), eb, len(mb)) <= 0.05:
                    continue
                if best is None or cos > best[0]:
                    best = (cos, a, b)
        if best is None:
            break
        _, a, b = best
        cur[a] = (np.sort(np.concatenate([cur[a][0], cur[b][0]])), cur[a][1] + cur[b][1],
                  cur[a][2] | cur[b][2])
        del cur[b]
    return cur


def combine(slices: list[Slice], correct: np.ndarray, typical: int = 10) -> Slice:
    """One slice from several of one failure mode (say, one metadata value explains them all):
    members united, typical members taken in turn from each, statistics recomputed; its q is
    the largest of theirs (each was significant on its own)."""
    correct = np.asarray(correct, bool)
    members = np.unique(np.concatenate([sl.members for sl in slices]))
    errors_all = int((~correct).sum())
    n_all = len(correct)
    m = len(members)
    k = int(correct[members].sum())
    lo, hi = (float(v) for v in wilson_interval(k, m))
    rest = n_all - m
    rest_acc = (int(correct.sum()) - k) / rest if rest else float(correct.mean())
    turns = [i for group in zip(*[list(sl.typical) + [None] * typical for sl in slices])
             for i in group if i is not None]
    typ = np.array(list(dict.fromkeys(turns))[:typical], dtype=np.int64)
    first = slices[0]
    return Slice(first.rank, first.component, members, typ, m, k / m, lo, hi, rest_acc - k / m,
                 m - k, kind=first.kind, rest_accuracy=float(rest_acc),
                 p_value=group_vs_rest_p(m - k, m, errors_all, n_all),
                 q_value=float(max(sl.q_value for sl in slices)),
                 merged=sum(sl.merged for sl in slices), explained_by=first.explained_by,
                 same_as=first.same_as,
                 aside=np.unique(np.concatenate([sl.aside for sl in slices])).astype(np.int64))


def select_slices(candidates: list[Slice], n: int, settings: SliceSettings | None = None
                  ) -> list[Slice]:
    """The candidates to report, best first: q ≤ alpha, at least `settings.support(n)` images
    and `min_errors` mistakes, a drop of at least `min_drop` below the rest, and not mostly (half or more of its members)
    inside a better one. Ranked by the drop that is certain at 95 % (rest − upper bound).
    q-values must be set (`benjamini_hochberg` over every candidate tested)."""
    s = settings or SliceSettings()
    support = s.support(n)
    ok = [c for c in candidates if np.isfinite(c.q_value) and c.q_value <= s.alpha
          and c.size >= support and c.errors >= s.min_errors and c.drop >= s.min_drop]
    ok.sort(key=lambda sl: (-(sl.rest_accuracy - sl.ci_high), -sl.size))
    kept: list[Slice] = []
    for c in ok:
        members = set(c.members.tolist())
        if any(len(members & set(k.members.tolist())) >= 0.5 * len(members) for k in kept):
            continue
        kept.append(c)
    for r, sl in enumerate(kept[: s.max_slices], 1):
        sl.rank = r
    return kept[: s.max_slices]


def find_slices(emb: np.ndarray, correct: np.ndarray, settings: SliceSettings | None = None,
                labels: np.ndarray | None = None, ignore: np.ndarray | None = None,
                preds: np.ndarray | None = None) -> list[Slice]:
    """Failure slices of a dataset, best first (see the module docstring): candidates, their
    Benjamini-Hochberg q-values, then `select_slices`."""
    cands = slice_candidates(emb, correct, settings, labels, ignore, preds)
    for c, q in zip(cands, benjamini_hochberg([c.p_value for c in cands])):
        c.q_value = float(q)
    n = len(correct) - (0 if ignore is None else int(np.asarray(ignore, bool).sum()))
    return select_slices(cands, n, settings)


def describe_slice(sl: Slice, labels: np.ndarray, preds: np.ndarray, names: list[str]) -> str:
    """'true class mostly X (70%); its mistakes predicted mostly Y (60%)', or, where no class
    holds half, how many classes it mixes and the most common one."""
    def share(idx: np.ndarray, what: str) -> str:
        counts = np.bincount(idx, minlength=len(names))
        top = counts.argmax()
        frac = counts[top] / len(idx)
        if frac >= 0.5:
            return f"{what} mostly {names[top]} ({frac:.0%})"
        return f"{what} spread over {int((counts > 0).sum())} classes (most often {names[top]}, {frac:.0%})"

    m = sl.members
    text = share(labels[m], "true class")
    wrong = m[preds[m] != labels[m]]
    if len(wrong):
        text += "; " + share(preds[wrong], "its mistakes predicted")
    return text
