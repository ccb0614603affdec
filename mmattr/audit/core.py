"""`mmattr.audit`: zero-shot (or classifier-head) audit of an image set, end to end.

read (mmattr.runner) → encode once, cached on disk → predict → measures, label issues,
failure slices, slice names → explanations for a budget of images (resumable records) →
occlusion accuracy → report.html, audit.json, predictions.csv, slices.csv, PNG plots.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import distributed
from .._version import __version__
from ..adapters.base import Adapter
from ..errors import InputError, ModelError
from . import label_issues, measures
from .slices import Slice, SliceSettings, find_slices

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
    #: a file of prompt templates holding '{}', one per line; None keeps the model's
    templates: str | None = None
    #: a file of slice-naming phrases; None: the generic list (plus the vocabulary)
    phrases: str | None = None
    explain_budget: int = 16
    explain_method: str = "smdl"
    explain_division: str = "slico"
    explain_regions: int = 25
    #: images per class of the occlusion test (background / object removed), at most
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


# -- inputs ---------------------------------------------------------------------------------

def _read_templates(path: str) -> tuple[str, ...]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"templates file not found: {p}")
    rows = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.strip().startswith("#")]
    bad = [r for r in rows if "{}" not in r]
    if not rows or bad:
        raise InputError(f"templates file {p}: every line needs '{{}}' where the class name goes"
                         + (f" (not: {bad[0]!r})" if bad else ", and there is none"))
    return tuple(rows)


def resolve_vocabulary(spec: str | None, adapter: Adapter, labels: list[str]) -> list[str]:
    """The class list predictions range over; every label must be in it (one-line error)."""
    from ..vocabulary import load_vocabulary

    if spec is not None:
        names = load_vocabulary(spec)
    elif adapter.class_names is not None:
        names = list(adapter.class_names)
    elif adapter.default_vocabulary and set(labels) <= set(load_vocabulary(adapter.default_vocabulary)):
        names = load_vocabulary(adapter.default_vocabulary)
    else:
        names = sorted(set(labels))
    names = list(dict.fromkeys(names))
    if len(names) < 2:
        raise InputError(f"the vocabulary has {len(names)} class(es); an audit needs at least two "
                         "(give --vocabulary FILE with one class per line)")
    missing = sorted(set(labels) - set(names))
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
    issues: dict[str, np.ndarray]
    mistakes: np.ndarray
    label_errors: np.ndarray
    slices: list[Slice]
    accuracy: float
    acc_ci: tuple[float, float]


def analyse(emb: np.ndarray, logits: np.ndarray, labels: np.ndarray, names: list[str],
            settings: AuditSettings = AuditSettings()) -> Analysis:
    """Every dataset-level number from embeddings, logits and integer labels."""
    from .predict import softmax

    probs = softmax(np.asarray(logits, np.float64))
    preds = probs.argmax(axis=1)
    correct = preds == labels
    confidence = probs.max(axis=1)
    n = len(labels)
    lo, hi = measures.wilson_interval(int(correct.sum()), n)
    confusion = measures.confusion_matrix(labels, preds, len(names))
    issues = label_issues.label_issue_scores(probs, labels)
    return Analysis(
        probs, preds, labels, correct, confidence,
        measures.per_class_accuracy(labels, preds, names), confusion,
        measures.most_confused_pairs(confusion, names),
        measures.calibration(confidence, correct, settings.calibration_bins), issues,
        label_issues.confident_mistakes(preds, labels, confidence, settings.top_mistakes),
        label_issues.likely_label_errors(issues, settings.top_mistakes),
        find_slices(emb, correct, settings.slices), float(correct.mean()), (float(lo), float(hi)))


def describe_slice(sl: Slice, labels: np.ndarray, preds: np.ndarray, names: list[str]) -> str:
    """'true mostly X (40%); its mistakes predicted mostly Y (70%)'."""
    m = sl.members
    t = np.bincount(labels[m], minlength=len(names))
    text = f"true class mostly {names[t.argmax()]} ({t.max() / len(m):.0%})"
    wrong = m[preds[m] != labels[m]]
    if len(wrong):
        p = np.bincount(preds[wrong], minlength=len(names))
        text += f"; its mistakes predicted mostly {names[p.argmax()]} ({p.max() / len(wrong):.0%})"
    return text


# -- the command -----------------------------------------------------------------------------

def audit(dataset: str | Path, model: str | Adapter = "demo", *, out: str | Path = "audit",
          vocabulary: str | None = None, templates: str | None = None,
          phrases: str | None = None, explain_budget: int = 16, overwrite: bool = False,
          settings: AuditSettings | None = None, progress: Progress | None = None,
          extra_sections: list[dict] | None = None) -> AuditResult:
    """Audit `model` on the image set at `dataset` (a manifest folder whose ``label`` is the
    ground truth, or an ImageFolder) and write the report into `out`.

    Contrastive models are audited zero-shot over the vocabulary, classifiers with their own
    head. `extra_sections` are optional report sections (dicts with id, title, how, html),
    the hook for per-class / per-slice interpretations.

    >>> result = audit("shapes-500/", model="demo", out="audit-demo")
    >>> result.accuracy, [s.names[0] for s in result.slices], result.report
    """
    from ..adapters import load_adapter
    from ..runner import EmbeddingCache, RunFolder, encode_items, read_dataset

    t0 = time.perf_counter()
    spec = (model.spec or type(model).__name__) if isinstance(model, Adapter) else model
    s = replace(settings or AuditSettings(), model=spec, vocabulary=vocabulary,
                templates=templates, phrases=phrases, explain_budget=explain_budget)
    if s.explain_budget < 0:
        raise InputError(f"--explain-budget must be 0 or more, got {s.explain_budget}")
    tpl = _read_templates(templates) if templates else None
    if phrases:
        from .naming import read_phrases

        read_phrases(phrases)  # a bad file fails before any work
    data = read_dataset(dataset, need=("label",))
    items, folded = _one_per_image(data.items)
    folder = RunFolder(out, "audit", s.record_settings(), records="explanations",
                       outputs=OUTPUTS, overwrite=overwrite)
    adapter = model if isinstance(model, Adapter) else load_adapter(spec, s.device, s.dtype)
    old_templates = adapter.templates
    try:
        if tpl is not None:
            adapter.templates = tpl
        names = resolve_vocabulary(vocabulary, adapter, [it.label for it in items])
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
        logits = class_logits(adapter, enc.vectors, names)
        result = analyse(enc.vectors, logits, labels, names, s)
        timings = {"read_and_load": enc_start - t0, "encode": enc.seconds,
                   "predict_and_analyse": time.perf_counter() - t_enc}
        skipped = [*data.bad, *enc.bad]
        from .report import build_outputs

        summary = build_outputs(folder, adapter, s, data, enc, names, result, skipped, folded,
                                stage, cache, extra_sections or [], t0, timings)
    finally:
        adapter.templates = old_templates
    return AuditResult(folder.out, summary, result.slices, time.perf_counter() - t0)
