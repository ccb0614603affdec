"""Representative Interpretations: the decision region a model uses for a whole group of images.

`fit(reference images)` cuts the model at a layer ψ, predicts every reference image, samples |Q|
linear decision boundaries of the head G after ψ (eq. 2) and records on which side of each
boundary every reference image lies. `explain(image)` then finds the decision region P(x) (the
greedy of eq. 4 under the δ constraint), its heat map (eq. 5), the covered reference images
ranked by eq. 6, and the region's coverage and accuracy. The channel weights of an
interpretation are reused for every image it covers (`heatmaps`).

Where it applies: CNN classifiers with ReLU stages after ψ (the paper's setting), ViT
classifiers and CLIP-style zero-shot heads with ψ at a late transformer block. A head linear in
ψ (one linear layer after pooling; CLIP's projection + cosine on the pooled embedding) has the
same decision hyperplanes for every input and a trivial region: `fit` says so and stops.

Ref. Lam et al., "Finding Representative Interpretations on Convolutional Neural Networks",
ICCV 2021.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .._version import __version__
from ..adapters.base import Adapter
from ..errors import InputError, ModelError
from ..explainers.dataset import DatasetExplainer, register_dataset_explainer
from .boundaries import SAMPLERS, Boundaries, sample_boundaries, tie_normals_agree
from .head import LayerHead, candidate_layers, class_names_of, to_pixels
from .heatmap import channel_weights, region_heatmap
from .ranking import rank_covered
from .region import Region, greedy_region

#: flattened feature maps longer than this are count-sketched for Euclidean distances
SKETCH_DIM = 1024
#: keep the reference feature maps in memory between the two passes below this many bytes
FEATURE_BUDGET = 256 * 2**20
#: layers tried when none is named
MAX_LAYER_TRIES = 40


@dataclass(frozen=True)
class RIOptions:
    """Settings of Representative Interpretations (CLI options and the cache key)."""

    #: ψ: a module path in the adapter's vision module; None picks the latest layer whose head
    #: is a function of it alone and not linear
    layer: str | None = None
    #: |Q|, the number of sampled boundaries (the paper's 50)
    boundaries: int = 50
    #: gradient (linearise at reference images, the paper's text) or walk (the authors' code)
    sampler: str = "gradient"
    #: δ, other-class reference images a region may cover; None = τ(x) (the paper's choice)
    delta: int | None = None
    #: class names of a zero-shot head (a vocabulary spec); classifiers use their own
    vocabulary: str | None = None
    seed: int = 0
    batch_size: int = 32
    #: fewest reference images of x's predicted class for a meaningful region
    min_class_refs: int = 3

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise InputError(f"unknown boundary sampler {self.sampler!r}; use {', '.join(SAMPLERS)}")
        if self.boundaries < 1:
            raise InputError(f"--boundaries must be at least 1, got {self.boundaries}")
        if self.delta is not None and self.delta < 0:
            raise InputError(f"--delta must be auto or a count ≥ 0, got {self.delta}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")


@dataclass
class RIFit:
    """What `fit` learns: boundaries, every reference image's side of them, predictions."""

    meta: dict[str, Any]          # spec, layer, psi_shape, class_names, sampler, digest, ...
    W: torch.Tensor               # (Q, D)
    b: torch.Tensor               # (Q,)
    pairs: torch.Tensor           # (Q, 2)
    sources: np.ndarray           # (Q,) reference index each boundary was sampled at
    proj: torch.Tensor            # (Q, N) ⟨W_q, ψ(x_n)⟩
    preds: np.ndarray             # (N,) predicted class index
    probs: np.ndarray             # (N,) softmax probability of the prediction
    sketch: torch.Tensor          # (N, k) ψ flattened (count-sketched when long): Euclidean
    labels: list[str | None] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.preds.shape[0])

    def sides(self) -> np.ndarray:
        """(Q, N) bool: reference n on the positive side of boundary q."""
        return ((self.proj + self.b[:, None]) > 0).cpu().numpy()


@dataclass
class Interpretation:
    """P(x) for one image, with its heat map and the reference images it covers."""

    predicted: int
    predicted_name: str
    probability: float
    boundaries: list[int]          # indices into the fit's Q
    sides: np.ndarray              # (P,) x's side of each
    alpha: torch.Tensor            # (P, C) channel weights, reused for covered images
    heatmap: np.ndarray            # (H, W) at the image's size, in [0, 1]
    ranked: np.ndarray             # covered reference indices, nearest first (eq. 6)
    distances: np.ndarray          # their eq. 6 distances
    delta: int
    tau: int
    coverage: int                  # covered reference images
    other_covered: int             # of them predicted another class
    accuracy_model: float          # ACU-MD: covered references predicted x's class
    accuracy_labels: float | None  # ACU-GT: covered references whose label is x's class
    settings: dict[str, Any] = field(default_factory=dict)

    # notebook display: the region's numbers and heat map, never the arrays
    def __repr__(self) -> str:
        from ..display import interpretation_repr

        return interpretation_repr(self)

    def _repr_html_(self) -> str:
        from ..display import interpretation_html

        return interpretation_html(self)

    def to_json(self, fit: RIFit, top: int = 50) -> dict[str, Any]:
        names = fit.meta["class_names"]
        return {
            "predicted": self.predicted_name, "predicted_index": self.predicted,
            "probability": self.probability,
            "boundaries": [{"index": int(q), "sampled_at": fit.ids[int(fit.sources[q])],
                            "classes": [names[int(c)] for c in fit.pairs[q].tolist()],
                            "side": "positive" if bool(s) else "negative"}
                           for q, s in zip(self.boundaries, self.sides)],
            "delta": self.delta, "tau": self.tau,
            "coverage": self.coverage, "coverage_fraction": self.coverage / max(fit.n, 1),
            "other_class_covered": self.other_covered,
            "accuracy_model": self.accuracy_model, "accuracy_labels": self.accuracy_labels,
            "covered_ranked": [{"id": fit.ids[int(i)], "distance": float(d),
                                "predicted": names[int(fit.preds[i])],
                                "label": fit.labels[int(i)] if fit.labels else None}
                               for i, d in zip(self.ranked[:top], self.distances[:top])],
            "covered_total": int(len(self.ranked)),
            "channel_weights": self.alpha.cpu().numpy().round(6).tolist(),
            "settings": self.settings,
        }


def sketch(flat: torch.Tensor, dim: int = SKETCH_DIM, seed: int = 0) -> torch.Tensor:
    """(N, D) → (N, min(D, dim)): the vectors themselves when short, else a count sketch (each
    coordinate added with a random sign into one of `dim` buckets), which keeps Euclidean
    distances in expectation at O(D) memory."""
    d = flat.shape[1]
    if d <= dim:
        return flat.float()
    g = torch.Generator().manual_seed(seed)
    bucket = torch.randint(dim, (d,), generator=g).to(flat.device)
    sign = (torch.randint(2, (d,), generator=g) * 2 - 1).float().to(flat.device)
    return flat.new_zeros(flat.shape[0], dim).float().index_add_(1, bucket, flat.float() * sign)


def same_class(name: str, label: str) -> bool:
    """Whether a manifest label names the class `name`: equal up to case and a leading
    article, or ending in it ("a red star" is a "star", and a "red star")."""
    def norm(text: str) -> str:
        text = text.strip().lower()
        for article in ("a ", "an ", "the "):
            if text.startswith(article):
                return text[len(article):]
        return text

    n, lab = norm(name), norm(label)
    return lab == n or lab.endswith(" " + n)


def data_digest(images: Sequence[np.ndarray], labels: Sequence[str | None] | None) -> str:
    h = hashlib.sha256()
    for k, im in enumerate(images):
        h.update(str(im.shape).encode())
        h.update(np.ascontiguousarray(im).tobytes())
        if labels is not None:
            h.update(repr(labels[k]).encode())
    return h.hexdigest()


@register_dataset_explainer("representative")
class RepresentativeInterpretations(DatasetExplainer):
    """Decision regions of the head after ψ shared by groups of images, with heat maps.

    Ref. Lam et al., "Finding Representative Interpretations on Convolutional Neural
    Networks", ICCV 2021.
    """

    name = "representative"

    def __init__(self, adapter: Adapter, options: RIOptions | None = None) -> None:
        self.adapter = adapter
        self.options = options or RIOptions()
        self.head: LayerHead | None = None
        self.fitted: RIFit | None = None
        self.images: list[np.ndarray] = []
        #: what the current fit depends on (model, settings, data digest); set by `fit`
        self.key: dict[str, Any] = {}

    # -- fit ---------------------------------------------------------------------------------
    def cache_key(self, digest: str) -> dict[str, Any]:
        """What a fit depends on: model, layer, settings and the data's content."""
        opts = asdict(self.options)
        opts.pop("batch_size")
        opts.pop("min_class_refs")
        opts.pop("delta")  # used at explain time only
        return {"model": self.adapter.describe(), "options": opts, "data": digest,
                "version": __version__, "format": 1}

    def fit(self, images: Sequence[np.ndarray], labels: Sequence[str | None] | None = None,
            ids: Sequence[str] | None = None, cache: Any = None) -> "RepresentativeInterpretations":
        """Sample the boundaries and place every reference image (cached when `cache` is a
        `FitCache`: a refit of the same model, layer, settings and images loads from disk)."""
        images = list(images)
        if self.adapter.vision_module() is None:
            raise ModelError(f"model {self.adapter.spec!r} exposes no vision module (torch "
                             "module): Representative Interpretations read and replace one of "
                             "its layers")
        if len(images) < 2:
            raise InputError(f"Representative Interpretations need at least 2 reference "
                             f"images, got {len(images)}")
        labels = list(labels) if labels is not None else [None] * len(images)
        ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(images))]
        self.images = images
        names = class_names_of(self.adapter, self.options.vocabulary)
        key = self.key = self.cache_key(data_digest(images, labels))
        if cache is not None:
            hit = cache.get(key)
            if hit is not None:
                self.head = LayerHead(self.adapter, hit.meta["layer"], names)
                self.fitted = hit
                return self
        self.head = self._choose_head(images, names)
        self.fitted = self._fit(images, labels, ids)
        if cache is not None:
            cache.put(key, self.fitted)
        return self

    def _encode(self, images: Sequence[np.ndarray], head: LayerHead | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        head = head or self.head
        psis, logits = [], []
        bs = self.options.batch_size
        for s in range(0, len(images), bs):
            p, l = head.features(head.pixels(images[s:s + bs]))
            psis.append(p)
            logits.append(l)
        return torch.cat(psis), torch.cat(logits)

    def _choose_head(self, images: list[np.ndarray], names: list[str]) -> LayerHead:
        probe = images[:64]
        if self.options.layer:
            head = LayerHead(self.adapter, self.options.layer, names)
            self._check_head(head, probe, explicit=True)
            return head
        layers = candidate_layers(self.adapter, to_pixels(self.adapter, probe[:1]))
        for path in layers[:MAX_LAYER_TRIES]:
            head = LayerHead(self.adapter, path, names)
            try:
                self._check_head(head, probe, explicit=False)
            except ModelError:
                continue
            return head
        raise ModelError(f"no layer of model {self.adapter.spec!r} has a non-linear head that "
                         "is a function of it alone; name one with --layer")

    def _check_head(self, head: LayerHead, probe: list[np.ndarray], explicit: bool) -> None:
        psi, logits = self._encode(probe, head)
        head.check_cut(psi, logits)
        if psi.dim() == 3:
            head.grid(psi)  # a token layer needs the model's grid for heat maps
        linear = tie_normals_agree(head.logits, psi, logits.argmax(1), chunk=self.options.batch_size)
        if linear:
            raise ModelError(
                f"the head after layer {head.layer_name!r} is linear in ψ (its decision "
                "boundaries are the same hyperplanes for every image), so a region would just "
                "be 'every image predicted c'; pick an earlier layer with non-linear stages "
                "after it" + (" (--layer)" if explicit else ""))

    def _fit(self, images: list[np.ndarray], labels: list[str | None], ids: list[str]) -> RIFit:
        head = self.head
        opts = self.options
        n = len(images)
        psi_all, logits = self._encode_bounded(images)
        preds = logits.argmax(1)
        probs = torch.softmax(logits, 1).max(1).values
        rng = np.random.default_rng(opts.seed)
        q = min(opts.boundaries, n)
        src = np.sort(rng.choice(n, size=q, replace=False))
        pred_np = preds.cpu().numpy()
        if len(np.unique(pred_np)) < 2:
            raise InputError(f"every reference image is predicted "
                             f"{head.class_names[int(pred_np[0])]!r}: decision regions need "
                             "reference images of at least two predicted classes")
        negatives = None
        if opts.sampler == "walk":
            negatives = []
            for i in src:
                pool = np.flatnonzero(pred_np != pred_np[i])
                if len(pool) == 0:
                    raise InputError("every reference image is predicted the same class: the "
                                     "walk sampler needs images of at least two classes")
                negatives.append(int(rng.choice(pool)))
        needed = src if negatives is None else np.concatenate([src, negatives])
        psi_q = (psi_all[torch.as_tensor(needed)] if psi_all is not None
                 else self._encode([images[i] for i in needed])[0])
        bnd = sample_boundaries(head.logits, psi_q, preds[torch.as_tensor(src)], q,
                                sampler=opts.sampler, seed=opts.seed, indices=src,
                                negatives=None if negatives is None else np.arange(q, 2 * q),
                                chunk=opts.batch_size)
        proj, sk = self._project(images, psi_all, bnd)
        meta = {"spec": self.adapter.spec, "layer": head.layer_name,
                "psi_shape": list(psi_q.shape[1:]), "class_names": head.class_names,
                "sampler": opts.sampler, "boundaries": q, "seed": opts.seed,
                "version": __version__}
        return RIFit(meta, bnd.W, bnd.b, bnd.pairs, bnd.sources, proj, pred_np,
                     probs.cpu().numpy(), sk, labels, ids)

    def _encode_bounded(self, images: list[np.ndarray]) -> tuple[torch.Tensor | None, torch.Tensor]:
        """All logits; all feature maps too unless they exceed FEATURE_BUDGET."""
        bs = self.options.batch_size
        psis, logits, size, keep = [], [], 0, True
        for s in range(0, len(images), bs):
            p, l = self.head.features(self.head.pixels(images[s:s + bs]))
            logits.append(l)
            size += p.numel() * 4
            keep = keep and size <= FEATURE_BUDGET
            psis = psis + [p] if keep else []
        return (torch.cat(psis) if keep else None), torch.cat(logits)

    def _project(self, images, psi_all, bnd: Boundaries) -> tuple[torch.Tensor, torch.Tensor]:
        bs = self.options.batch_size
        projs, sks = [], []
        for s in range(0, len(images), bs):
            p = psi_all[s:s + bs] if psi_all is not None else self._encode(images[s:s + bs])[0]
            flat = p.flatten(1)
            projs.append(bnd.W @ flat.T)
            sks.append(sketch(flat, seed=self.options.seed))
        return torch.cat(projs, dim=1), torch.cat(sks)

    # -- explain ------------------------------------------------------------------------------
    def _need_fit(self) -> RIFit:
        if self.fitted is None or self.head is None:
            raise InputError("fit the explainer on reference images before explaining")
        return self.fitted

    def features(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ψ(x) flattened (B, D), logits (B, K)) of images, at the fitted layer."""
        self._need_fit()
        psi, logits = self._encode(list(images))
        return psi.flatten(1), logits

    def explain(self, image: np.ndarray, delta: int | None = None) -> Interpretation:
        """P(x), its heat map over `image`, the covered reference images ranked (eq. 6)."""
        fit = self._need_fit()
        psi, logits = self._encode([image])
        return self._interpret(image, psi, logits, delta)

    def explain_reference(self, index: int, delta: int | None = None) -> Interpretation:
        """The interpretation of a fitted reference image (by index)."""
        self._need_fit()
        if not self.images:
            raise InputError("the reference images are not in memory (loaded from the cache "
                             "without them); fit with the images")
        return self.explain(self.images[index], delta)

    def _interpret(self, image: np.ndarray, psi: torch.Tensor, logits: torch.Tensor,
                   delta: int | None) -> Interpretation:
        fit = self.fitted
        names = fit.meta["class_names"]
        flat = psi.flatten(1)
        c = int(logits.argmax(1)[0])
        prob = float(torch.softmax(logits, 1)[0, c])
        same_class = fit.preds == c
        if int(same_class.sum()) < self.options.min_class_refs:
            raise InputError(
                f"only {int(same_class.sum())} reference images are predicted {names[c]!r} "
                f"(at least {self.options.min_class_refs} needed for a region): add reference "
                "images of that class")
        x_proj = (fit.W @ flat.T)[:, 0]
        x_side = (x_proj + fit.b > 0).cpu().numpy()
        sides = fit.sides()
        delta = self.options.delta if delta is None else delta
        region = greedy_region(sides == x_side[:, None], ~same_class, x_side, delta)
        alpha = self._alpha(region)
        heat = self._maps(psi, alpha, [image])[0]
        chosen = torch.as_tensor(region.boundaries, dtype=torch.long)
        ranked, dist = rank_covered(x_proj[chosen].cpu().numpy(),
                                    fit.proj[chosen].cpu().numpy(), region.covered)
        cov = int(region.covered.sum())
        acc_md = float(same_class[region.covered].mean()) if cov else float("nan")
        return Interpretation(
            predicted=c, predicted_name=names[c], probability=prob,
            boundaries=list(region.boundaries), sides=region.sides, alpha=alpha, heatmap=heat,
            ranked=ranked, distances=dist, delta=region.delta, tau=region.tau, coverage=cov,
            other_covered=region.other_covered, accuracy_model=acc_md,
            accuracy_labels=self._label_accuracy(region.covered, names[c]),
            settings={"layer": fit.meta["layer"], "sampler": fit.meta["sampler"],
                      "boundaries_sampled": fit.meta["boundaries"],
                      "delta_option": "auto" if delta is None else int(delta),
                      "model": fit.meta["spec"], "reference_images": fit.n})

    def _label_accuracy(self, covered: np.ndarray, name: str) -> float | None:
        labels = [self.fitted.labels[i] for i in np.flatnonzero(covered)]
        known = [lab for lab in labels if lab is not None]
        if not known:
            return None
        return float(np.mean([same_class(name, lab) for lab in known]))

    def _alpha(self, region: Region) -> torch.Tensor:
        fit = self.fitted
        if not region.boundaries:
            return torch.zeros(0, 1)
        W = fit.W[torch.as_tensor(region.boundaries)].view(len(region.boundaries),
                                                            *fit.meta["psi_shape"])
        return channel_weights(self.head.grid(W), region.sides)

    def _maps(self, psi: torch.Tensor, alpha: torch.Tensor, images: Sequence[np.ndarray]
              ) -> list[np.ndarray]:
        from ..explainers._common import to_image_space

        hw = tuple(self.adapter.preprocess.output_hw)
        if alpha.shape[0] == 0:
            maps = torch.zeros(psi.shape[0], *hw)
        else:
            maps = region_heatmap(self.head.grid(psi), alpha, hw)
        return [to_image_space(m, self.adapter, im.shape[:2]).clamp(0, 1).cpu().numpy()
                for m, im in zip(maps, images)]

    def heatmaps(self, interpretation: Interpretation, images: Sequence[np.ndarray]
                 ) -> list[np.ndarray]:
        """Heat maps of other images with the interpretation's channel weights reused."""
        self._need_fit()
        psi, _ = self._encode(list(images))
        return self._maps(psi, interpretation.alpha, images)

    def covers(self, interpretation: Interpretation, flat: torch.Tensor) -> np.ndarray:
        """(B, D) flattened feature maps → (B,) bool: inside the interpretation's region."""
        fit = self._need_fit()
        if not interpretation.boundaries:
            return np.ones(flat.shape[0], dtype=bool)
        idx = torch.as_tensor(interpretation.boundaries)
        side = ((fit.W[idx] @ flat.T + fit.b[idx][:, None]) > 0).cpu().numpy()
        return (side == interpretation.sides[:, None]).all(axis=0)

    def representatives(self, k: int, among: np.ndarray | None = None) -> np.ndarray:
        """Reference indices nearest to k k-means centres of the feature maps (the paper's
        choice of images to interpret), optionally among a subset of indices."""
        from sklearn.cluster import KMeans

        fit = self._need_fit()
        idx = np.arange(fit.n) if among is None else np.asarray(among)
        if len(idx) == 0:
            return idx
        k = max(1, min(int(k), len(idx)))
        x = fit.sketch[torch.as_tensor(idx)].cpu().numpy().astype(np.float64)
        km = KMeans(n_clusters=k, n_init=4, random_state=self.options.seed).fit(x)
        d = km.transform(x)  # (M, k) distances to the centres
        chosen: list[int] = []
        for j in range(k):  # nearest distinct image to each centre
            for i in np.argsort(d[:, j]):
                if int(i) not in chosen:
                    chosen.append(int(i))
                    break
        return idx[np.asarray(chosen)]
