"""`mmattr.audit`: zero-shot (or classifier-head) audit of an image set, end to end.

read (mmattr.runs) → encode once, cached on disk → predict → measures, label issues,
failure slices, slice names → explanations for a budget of images (resumable records) →
occlusion accuracy → report.html, audit.json, predictions.csv, slices.csv, PNG plots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..adapters.base import Adapter
from ..errors import InputError
from . import label_issues, measures
from .slices import Slice, SliceSettings

OUTPUTS = ("report.html", "audit.json", "predictions.csv", "slices.csv", "reliability.png",
           "confusion.png", "class_accuracy.png", "slices.png")
#: progress(stage, done, total)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class AuditSettings:
    """Every setting of one audit; recorded in audit.json."""

    model: str = "demo"
    #: a file (one class per line), a built-in name (imagenet, shapes) or None: the model's
    #: own classes (classifiers), else its default vocabulary when it holds every label, else
    #: the dataset's labels
    vocabulary: str | None = None
    #: prompt templates for the class names: none, default, imagenet80 or a file (one '{}'
    #: per line), as `vocabulary.load_templates` reads them; None keeps the model's
    templates: str | None = None
    #: a file of slice-naming phrases; None: the generic list (plus the vocabulary)
    phrases: str | None = None
    explain_budget: int = 16
    explain_method: str = "smdl"
    explain_division: str = "slico"
    explain_regions: int = 25
    #: images in the occlusion test (background / object removed), at most: every slice
    #: member first, then a seeded sample of the rest
    occlusion_limit: int = 1000
    batch_size: int = 64
    device: str = "auto"
    dtype: str = "auto"
    calibration_bins: int = 15
    top_mistakes: int = 12
    slices: SliceSettings = field(default_factory=SliceSettings)
    seed: int = 0
    #: embedding cache folder; None: $MMATTR_CACHE or ~/.cache/mmattr/embeddings
    cache_dir: str | None = None
    #: a second model (spec) whose embeddings and predictions check the labels
    reference_model: str | None = None
    #: image properties (size, aspect, brightness, contrast, sharpness) as metadata columns
    image_properties: bool = True
    #: slice names: permutations of the test, and its family-wise level
    name_permutations: int = 1000
    name_alpha: float = 0.05

    def record_settings(self) -> dict:
        """What the explanation records depend on: a rerun with other values starts over."""
        return {"model": self.model, "vocabulary": self.vocabulary, "templates": self.templates,
                "method": self.explain_method, "division": self.explain_division,
                "regions": self.explain_regions, "seed": self.seed}


@dataclass
class AuditResult:
    """What an audit found; `summary` is audit.json's content."""

    out: Path
    summary: dict
    slices: list[Slice]
    seconds: float

    @property
    def accuracy(self) -> float:
        return self.summary["accuracy"]["value"]

    @property
    def report(self) -> Path:
        return self.out / "report.html"

    # notebook display (mmattr.display reads the fields and `summary` defensively)
    def __repr__(self) -> str:
        from ..display import audit_repr

        return audit_repr(self)

    def _repr_html_(self) -> str:
        from ..display import audit_html

        return audit_html(self)


# -- inputs ---------------------------------------------------------------------------------

def resolve_vocabulary(spec: str | None, adapter: Adapter, labels: list[str]) -> list[str]:
    """The class list predictions range over; every label must be in it (one-line error).

    `spec` (--vocabulary) when given; else the model's own classes (a classifier's head, a
    contrastive model's default vocabulary); the dataset's labels only for a model with no
    classes of its own. A label outside the model's own classes is an error, never a silent
    switch to another class list."""
    from ..vocabulary import load_vocabulary

    own = None
    if spec is not None:
        names = load_vocabulary(spec)
    elif adapter.class_names is not None:
        names, own = list(adapter.class_names), "its own classes"
    elif adapter.default_vocabulary:
        names = load_vocabulary(adapter.default_vocabulary)
        own = f"its vocabulary {adapter.default_vocabulary!r}"
    else:
        names = sorted(set(labels))
    names = list(dict.fromkeys(names))
    if len(names) < 2:
        raise InputError(f"the vocabulary has {len(names)} class(es); an audit needs at least two "
                         "(give --vocabulary FILE with one class per line)")
    missing = sorted(set(labels) - set(names))
    if missing and own is not None:
        raise InputError(f"label {missing[0]!r} is not in the vocabulary of model "
                         f"{adapter.spec or type(adapter).__name__} ({own}, {len(names)} "
                         f"classes; {len(missing)} label(s) missing); name the classes with "
                         "--vocabulary FILE (one per line), or fix the dataset's labels")
    if missing:
        raise InputError(f"label {missing[0]!r} is not in the vocabulary ({len(missing)} label(s) "
                         f"missing, vocabulary of {len(names)}); add it to --vocabulary or fix "
                         "the dataset's labels")
    return names


def _one_per_image(items: list) -> tuple[list, int]:
    """An image listed on several manifest lines (several objects) is audited once, with its
    first line's label and mask; returns the items kept and how many lines were folded."""
    seen: dict[str, Any] = {}
    for it in items:
        seen.setdefault(str(it.path), it)
    kept = list(seen.values())
    return kept, len(items) - len(kept)


def _reference(other: Adapter, s: AuditSettings, items: list, names: list[str], cache
               ) -> tuple[np.ndarray, np.ndarray]:
    """A second model's (embeddings, predictions) over the same images and classes, for the
    label check; an image it cannot read is one line (the audited model just read it)."""
    from ..runs.encode import encode_items
    from .predict import class_logits

    enc = encode_items(other, items, cache=cache, batch_size=s.batch_size)
    if enc.bad:
        raise InputError(f"the reference model could not read {enc.bad[0].describe()}")
    logits = class_logits(other, enc.vectors, names, batch_size=s.batch_size)
    return enc.vectors, logits.argmax(axis=1)


# -- analysis (pure: arrays in, dict out) ---------------------------------------------------

@dataclass
class Analysis:
    probs: np.ndarray
    preds: np.ndarray
    labels: np.ndarray
    correct: np.ndarray
    confidence: np.ndarray
    classes: list[measures.ClassAccuracy]
    confusion: np.ndarray
    confused: list[dict]
    calibration: measures.Calibration
    checks: label_issues.LabelCheck
    mistakes: np.ndarray
    label_errors: np.ndarray
    slices: list[Slice]
    accuracy: float
    acc_ci: tuple[float, float]
    #: metadata slices reported (after false-discovery control), best first
    metadata_slices: list[Slice] = field(default_factory=list)
    columns: list = field(default_factory=list)
    #: every slice hypothesis tested (embedding and metadata), the size of the BH family
    tested: int = 0

    @property
    def systematic(self) -> np.ndarray:
        """Indices of systematic model errors (mistakes that are not likely label errors),
        most confident first."""
        return self.checks.systematic_errors(self.confidence)

    def slice_of(self) -> np.ndarray:
        """(N,) rank of the embedding slice each image is in (0: none); set-aside mistakes that
        fall in a slice count as in it."""
        out = np.zeros(len(self.labels), dtype=int)
        for sl in reversed(self.slices):
            out[sl.members] = sl.rank
            out[sl.aside] = sl.rank
        return out


def _link(slices: list[Slice], meta: list[Slice]) -> None:
    """Cross-links: an embedding slice is the same group as the first (best) metadata slice
    whose members mostly coincide with its own (Jaccard ≥ 0.5: a slice of stars that are small
    is not "the small objects"); a metadata slice is part of the first embedding slice that
    holds at least half of it."""
    for sl in slices:
        sl.same_as = ""
    for m in meta:
        m.same_as = ""
    for sl in slices:
        members = set(sl.members.tolist())
        for m in meta:
            other = set(m.members.tolist())
            both = len(members & other)
            if both >= 0.5 * len(members | other) and not sl.same_as:
                sl.same_as = m.title()
            if both >= 0.5 * m.size and not m.same_as:
                m.same_as = f"slice {sl.rank}"


def _merge_explained(slices: list[Slice], correct: np.ndarray, typical: int) -> list[Slice]:
    """Slices that one metadata value explains (its first explanation, else the significant
    metadata slice that holds at least half of each) are one failure mode: merged, ranks
    renewed."""
    from .slices import combine

    groups: dict[str, list[Slice]] = {}
    for sl in slices:
        e = sl.explained_by[0] if sl.explained_by else None
        key = f"{e['column']} = {e['value']}" if e else sl.same_as or f"\0{sl.rank}"
        groups.setdefault(key, []).append(sl)
    out = [g[0] if len(g) == 1 else combine(g, correct, typical) for g in groups.values()]
    out.sort(key=lambda sl: sl.rank)
    for r, sl in enumerate(out, 1):
        sl.rank = r
    return out


def _typical_of_prediction(emb: np.ndarray, preds: np.ndarray, labels: np.ndarray,
                           correct: np.ndarray, share: float = 0.75, least: int = 5) -> np.ndarray:
    """(N,) bool: the image is as close to the mean of its predicted class's correctly
    classified images as `share` of those images are (cosine to the class mean, each member
    left out of its own mean); False where the class has fewer than `least` such images."""
    z = np.asarray(emb, np.float64)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    out = np.zeros(len(preds), dtype=bool)
    for c in np.unique(preds[~correct]):
        own = np.flatnonzero(correct & (labels == c))
        if len(own) < least:
            continue
        total = z[own].sum(axis=0)
        loo = (total[None] - z[own]) / (len(own) - 1)  # each member against the others' mean
        member_sims = (z[own] * loo).sum(axis=1) / np.maximum(np.linalg.norm(loo, axis=1), 1e-12)
        bar = np.quantile(member_sims, 1.0 - share)
        mean = total / len(own)
        who = np.flatnonzero(preds == c)
        out[who] = z[who] @ mean / max(float(np.linalg.norm(mean)), 1e-12) >= bar
    return out


def analyse(emb: np.ndarray, logits: np.ndarray, labels: np.ndarray, names: list[str],
            settings: AuditSettings = AuditSettings(), columns: list | None = None,
            reference: tuple[np.ndarray, np.ndarray] | None = None) -> Analysis:
    """Every dataset-level number from embeddings, logits and integer labels.

    `columns` are the dataset's metadata columns (`metadata.dataset_columns`); `reference` a
    second model's (embeddings, predictions) for the label check. Likely label errors are set
    aside before slices are looked for; embedding and metadata slices are tested as one family
    (Benjamini-Hochberg)."""
    from .metadata import explain_by_columns, metadata_candidates, prune_sub_slices
    from .predict import softmax
    from .slices import select_slices, slice_candidates
    from .stats import benjamini_hochberg

    probs = softmax(np.asarray(logits, np.float64))
    preds = probs.argmax(axis=1)
    correct = preds == labels
    confidence = probs.max(axis=1)
    n = len(labels)
    lo, hi = measures.wilson_interval(int(correct.sum()), n)
    confusion = measures.confusion_matrix(labels, preds, len(names))
    checks = label_issues.check_labels(
        emb, probs, labels, reference_emb=None if reference is None else reference[0],
        reference_pred=None if reference is None else reference[1])
    s = settings.slices
    aside = checks.label_error
    emb_cands = slice_candidates(emb, correct, s, labels=labels, ignore=aside, preds=preds)
    meta_cands = metadata_candidates(columns or [], correct, s.support(n), ignore=aside,
                                     typical=s.typical)
    family = emb_cands + meta_cands
    for c, q in zip(family, benjamini_hochberg([c.p_value for c in family])):
        c.q_value = float(q)
    kept_n = n - int(aside.sum())
    slices = select_slices(emb_cands, kept_n, s)
    meta = prune_sub_slices(select_slices(meta_cands, kept_n, replace(s, max_slices=10 ** 6)))
    for r, m in enumerate(meta, 1):
        m.rank = r
    meta = meta[: s.max_slices]
    for sl in slices:
        sl.explained_by = explain_by_columns(sl.members, columns or [])
    _link(slices, meta)
    slices = _merge_explained(slices, correct, s.typical)
    for sl in slices:  # a merged slice explained by its metadata slice, if now it is
        sl.explained_by = sl.explained_by or explain_by_columns(sl.members, columns or [])
    _link(slices, meta)
    # A label-error candidate that falls, by its features, in a reported failure slice is that
    # failure mode's mistake, not a label error, provided the mode is established by more of
    # its own mistakes than the candidates it would take in: a mode fitted to a handful of
    # mistakes is wide, and would swallow every image that looks unlike its label.
    # A candidate that looks like a typical image of the class the model predicts is a normal
    # member of that class under a wrong label: it stays a label error whichever mode it lands
    # in (a blurred or biased image is unlike every class, a flipped one is not).
    typical = _typical_of_prediction(emb, preds, labels, correct)
    for sl in slices:
        aside = sl.aside[checks.label_error[sl.aside]] if len(sl.aside) <= sl.errors \
            else sl.aside[:0]
        sl.aside = aside[~typical[aside]]
        checks.demote(sl.aside)
    return Analysis(
        probs, preds, labels, correct, confidence,
        measures.per_class_accuracy(labels, preds, names), confusion,
        measures.most_confused_pairs(confusion, names),
        measures.calibration(confidence, correct, settings.calibration_bins), checks,
        label_issues.confident_mistakes(preds, labels, confidence, settings.top_mistakes),
        checks.label_errors(settings.top_mistakes), slices, float(correct.mean()),
        (float(lo), float(hi)), meta, list(columns or []), len(family))


# -- the command -----------------------------------------------------------------------------

def audit(dataset: str | Path, model: str | Adapter = "demo", *, out: str | Path = "audit",
          vocabulary: str | None = None, templates: str | None = None,
          phrases: str | None = None, explain_budget: int = 16, overwrite: bool = False,
          settings: AuditSettings | None = None, progress: Progress | None = None,
          extra_sections: list[dict | Callable[[dict], dict | None]] | None = None,
          reference_model: str | Adapter | None = None) -> AuditResult:
    """Audit `model` on the image set at `dataset` (a manifest folder whose ``label`` is the
    ground truth, or an ImageFolder) and write the report into `out`.

    Contrastive models are audited zero-shot over the vocabulary, classifiers with their own
    head. `extra_sections` are optional report sections, the hook for per-class / per-slice
    interpretations: each a dict (``id``, ``title``, ``how``: one sentence on how to read it,
    ``html``: trusted HTML with images inlined) or a callable that receives the audit's context
    (adapter, items, names, labels, preds, probs, embeddings, slices, summary, out) and returns
    such a dict or None. They appear after the label errors; their fields but html go into
    audit.json.

    >>> result = audit("shapes-500/", model="demo", out="audit-demo")
    >>> result.accuracy, [s.names[0] for s in result.slices], result.report
    """
    from ..runs.dataset import read_dataset
    from ..runs.folder import OutputFolder

    t0 = time.perf_counter()
    spec = (model.spec or type(model).__name__) if isinstance(model, Adapter) else model
    base = settings or AuditSettings()
    ref = reference_model if reference_model is not None else base.reference_model
    ref_spec = ((ref.spec or type(ref).__name__) if isinstance(ref, Adapter) else ref)
    s = replace(base, model=spec, vocabulary=vocabulary, templates=templates, phrases=phrases,
                explain_budget=explain_budget, reference_model=ref_spec)
    if s.explain_budget < 0:
        raise InputError(f"--explain-budget must be 0 or more, got {s.explain_budget}")
    if templates is not None:
        from ..vocabulary import load_templates

        load_templates(templates)  # a bad name or file fails before any work
    if phrases:
        from .naming import read_phrases

        read_phrases(phrases)  # a bad file fails before any work
    data = read_dataset(dataset, need=("label",))
    items, folded = _one_per_image(data.items)
    from ..runs.store import EmbeddingCache

    EmbeddingCache(s.cache_dir).check()  # a cache folder that cannot be used: one line now
    # The one output-folder rule, before any work: another dataset, model or setting in --out
    # is refused without --overwrite (whether or not explanations exist yet).
    folder = OutputFolder(out, "audit", _folder_settings(s, dataset), records="explanations",
                          files=OUTPUTS, overwrite=overwrite, avoid=[dataset])
    with folder:
        return _audit(folder, dataset, data, items, folded, model, s, spec, ref, templates,
                      vocabulary, progress, extra_sections, t0)


#: settings that do not change an audit's results (so a rerun with others resumes)
_OPERATIONAL = ("explain_budget", "batch_size", "device", "cache_dir")


def _folder_settings(s: AuditSettings, dataset: str | Path) -> dict:
    """What an audit folder's marker records: the dataset and every setting but the
    operational ones."""
    from dataclasses import asdict

    from ..runs.dataset import dataset_identity

    return {"dataset": dataset_identity(dataset),
            **{k: v for k, v in asdict(s).items() if k not in _OPERATIONAL}}


def _audit(folder, dataset, data, items, folded, model, s, spec, ref, templates, vocabulary,
           progress, extra_sections, t0) -> AuditResult:
    """The audit in a checked (and locked) output folder."""
    from ..adapters import load_adapter
    from ..api import with_templates
    from ..runs.encode import encode_items
    from ..runs.store import EmbeddingCache

    # a view with the templates: the caller's (or the cache's) adapter is never changed
    adapter = with_templates(model if isinstance(model, Adapter)
                             else load_adapter(spec, s.device, s.dtype), templates)
    names = resolve_vocabulary(vocabulary, adapter, [it.label for it in items])
    # the reference model is loaded before any work, so a bad spec costs nothing
    ref_adapter = None
    if ref is not None:
        ref_adapter = with_templates(ref if isinstance(ref, Adapter)
                                     else load_adapter(ref, s.device, s.dtype), templates)
    stage = (lambda name: (lambda d, t: progress(name, d, t))) if progress else (lambda name: None)
    cache = EmbeddingCache(s.cache_dir)
    enc_start = time.perf_counter()
    enc = encode_items(adapter, items, cache=cache, batch_size=s.batch_size,
                       progress=stage("encode"))
    if not enc.items:
        raise InputError(f"no image of {dataset} could be read: "
                         f"{enc.bad[0].describe() if enc.bad else 'none listed'}")
    from .predict import class_logits

    index = {n: k for k, n in enumerate(names)}
    labels = np.array([index[it.label] for it in enc.items])
    t_enc = time.perf_counter()
    logits = class_logits(adapter, enc.vectors, names, batch_size=s.batch_size)
    reference = None
    t_ref = time.perf_counter()
    if ref_adapter is not None:
        reference = _reference(ref_adapter, s, enc.items, names, cache)
    t_meta = time.perf_counter()
    from .metadata import dataset_columns, image_properties

    # keyed by the image's and the mask's content (the object's area comes from the mask)
    from ..runs.dataset import combine_digests, file_digest

    keys = [combine_digests(d, file_digest(it.mask_path) if it.mask_path else None)
            for d, it in zip(enc.digests, enc.items)]
    props = image_properties(enc.items, keys, cache) if s.image_properties else None
    columns = dataset_columns(enc.items, [it.label for it in enc.items], props)
    t_analyse = time.perf_counter()
    result = analyse(enc.vectors, logits, labels, names, s, columns, reference)
    timings = {"read_and_load": enc_start - t0, "encode": enc.seconds,
               "predict": t_ref - t_enc, "reference_model": t_meta - t_ref,
               "metadata": t_analyse - t_meta, "analyse": time.perf_counter() - t_analyse}
    skipped = [*data.bad, *enc.bad]
    from .report import build_outputs

    summary = build_outputs(folder, adapter, s, data, enc, names, result, skipped, folded,
                            stage, cache, extra_sections or [], t0, timings)
    from .. import distributed

    if distributed.is_main_process():
        folder.finish()
    return AuditResult(folder.out, summary, result.slices, time.perf_counter() - t0)
