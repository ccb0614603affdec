"""`mmattr evaluate`: every method × metric over a dataset folder, resumable.

The folder is a manifest folder (``manifest.jsonl``: one JSON object per line with ``image``
(required), ``text`` (the target prompt; ``label`` when absent), ``mask`` (optional
ground-truth mask) and ``label``, paths relative to the folder; see
`mmattr.datasets.shapes.export_dataset`) or an ImageFolder (one subfolder per class; the class
name is the target text). A line with ``"explain": "text"`` explains the other side: the words
of its ``text`` against its image (its optional ``keywords``, the words that should come
first, feed the ``keywords`` metric); the insertion and deletion metrics then read the curves
over words every method's explanation carries. Reading, the output folder, resume, sharding and the records are
`mmattr.runs`'s.

Per (manifest line, method) one JSON record is appended to ``results.jsonl`` and fsynced before
the next starts, so an interrupted run loses at most the record in flight and a rerun skips the
records already there. Records are keyed by the line (its image, text, mask and label, so lines
that differ only in their mask stay distinct) and by the content of its image and mask: an
edited image is evaluated again. The folder's marker (the dataset, the model and every setting)
is written with the first record, so a run that fails before it leaves nothing that blocks the
corrected command; another dataset, model or setting is refused without ``--overwrite``.
An unreadable image or mask (or one of the wrong size) is skipped and listed in ``summary.md``;
the rest are evaluated. ``results.csv``, ``summary.md`` and the plots are rewritten
(atomically) from the records of the dataset's current content at the end of each run.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from . import distributed
from ._io import atomic_write
from .errors import InputError, MmattrError
from .runs.dataset import (BadItem, DataItem, dataset_identity, load_item, manifest_key,
                           read_dataset)
from .runs.folder import OutputFolder, read_marker
from .runs.records import RecordLog, append_line
from .runs.work import run_items

RESULTS = "results.jsonl"
DEFAULT_METRICS = ("insertion", "deletion", "pointing", "energy_pointing", "iou")
#: what `write_reports` writes beside the records (an --overwrite removes these, nothing else)
REPORT_FILES = ("results.csv", "summary.md", "curves.png", "bars.png")

Item = DataItem  # the name this module exported before the runner existed


# -- the dataset ----------------------------------------------------------------------------

def read_manifest(folder: str | os.PathLike) -> list[DataItem]:
    """The usable items of a dataset folder (see `mmattr.runs.read_dataset`)."""
    return read_dataset(folder, need=("text",)).items


def shard(items: list[DataItem]) -> list[DataItem]:
    """This process's share of the items under ``accelerate launch``; all of them otherwise."""
    return distributed.shard_items(items)


def _limit(items: list[DataItem], bad: list[BadItem], limit: int | None
           ) -> tuple[list[DataItem], list[BadItem]]:
    """The first `limit` dataset entries, usable or not (manifest line order)."""
    if limit is None or len(items) + len(bad) <= limit:
        return items, bad
    entries = sorted([(it.line or 0, 0, i) for i, it in enumerate(items)]
                     + [(b.line or 0, 1, i) for i, b in enumerate(bad)])[:limit]
    return ([items[i] for _, kind, i in entries if kind == 0],
            [bad[i] for _, kind, i in entries if kind == 1])


# -- methods --------------------------------------------------------------------------------

@dataclass(frozen=True)
class MethodSpec:
    """A method name as written on the command line and the config changes it stands for.

    ``smdl``, ``gradcam``, ... run that explainer. ``smdl+prior:gradcam`` (alias
    ``gradcam+ours``) is SMDL over the prior-saliency division of gradcam: the paper's
    "w/ ours" rows.
    """

    name: str
    method: str
    division: str | None = None

    @property
    def base(self) -> str:
        return self.division.split(":", 1)[1] if self.division else self.method


def parse_method(name: str) -> MethodSpec:
    from .explainers import EXPLAINERS

    raw = name.strip()
    if not raw:
        raise InputError("an empty method name in --methods")
    if raw.endswith("+ours"):
        base = raw[: -len("+ours")]
        EXPLAINERS.get(base)
        spec = MethodSpec(f"smdl+prior:{base}", "smdl", f"prior:{base}")
    elif "+" in raw:
        method, _, division = raw.partition("+")
        EXPLAINERS.get(method)
        if not division:
            raise InputError(f"method {raw!r}: nothing after '+'; e.g. smdl+prior:gradcam")
        spec = MethodSpec(raw, method, division)
    else:
        EXPLAINERS.get(raw)
        spec = MethodSpec(raw, raw)
    if spec.division:
        from .division import DIVIDERS

        head, _, arg = spec.division.partition(":")
        DIVIDERS.get(head)
        if arg:
            EXPLAINERS.get(arg)
    return spec


def _split_names(value: str | Sequence[str]) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else list(value)
    out = [p.strip() for p in parts if p.strip()]
    seen: list[str] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


# -- settings -------------------------------------------------------------------------------

def _check_options(score: str, fill: str, steps: int, limit: int | None) -> None:
    from .metrics import SCORES
    from .metrics.curves import FILLS

    if score not in SCORES:
        raise InputError(f"unknown score {score!r}; use {', '.join(SCORES)}")
    if fill not in FILLS:
        raise InputError(f"unknown fill {fill!r}; use {', '.join(FILLS)}")
    if steps < 1:
        raise InputError(f"--steps must be at least 1, got {steps}")
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")


def build_metrics(metrics: str | Sequence[str], steps: int, fill: str,
                  options: dict[str, dict] | None = None) -> list:
    """The metric objects of a --metrics list; pixel curves get `steps` and `fill`."""
    from .metrics import make_metric

    names = _split_names(metrics)
    if not names:
        raise InputError("no metric given: --metrics insertion,deletion,...")
    curve_opts = {"steps": steps, "fill": fill}
    objs = []
    for name in names:
        opts = dict((options or {}).get(name, {}))
        if name in ("insertion", "deletion", "highest_confidence"):
            opts = {**curve_opts, **opts}
        objs.append(make_metric(name, **opts))
    return objs


def run_settings(spec: str, cfg: Any, score: str, steps: int, fill: str,
                 metric_objs: Sequence, dataset: str | os.PathLike | None = None) -> dict:
    """What must match for a rerun to resume an output folder (its marker's settings): the
    dataset, the model and every setting the records depend on."""
    return {"dataset": dataset_identity(dataset) if dataset is not None else None,
            "model": spec, "score": score, "steps": steps, "fill": fill,
            "metrics": {m.name: m.settings() for m in metric_objs},
            "config": {k: v for k, v in cfg.replace(model=spec).to_dict().items()
                       if k not in ("method", "batch_size", "device", "dtype")}}


# -- one item -------------------------------------------------------------------------------

class _ItemEvaluator:
    """`run_items` work: explain one item with each pending method and score every metric.

    The model is loaded at the first item that has work, so a rerun with nothing left to do
    loads none, and a bad --model fails before any record (leaving nothing behind).
    """

    def __init__(self, model: Any, spec: str, cfg: Any, methods: Sequence[MethodSpec],
                 metric_objs: Sequence, score: str) -> None:
        self.model, self.spec, self.cfg, self.score = model, spec, cfg, score
        self.methods = {m.name: m for m in methods}
        self.configs = {}
        from .api import validate

        from .explainers import EXPLAINERS

        for m in methods:  # every method's settings checked before any model is loaded
            self.configs[m.name] = cfg.replace(method=m.method, division=m.division, model=spec)
            modalities = EXPLAINERS.get(m.method).modalities
            # a text-only method (gradxinput) is checked as it will run: on the text lines
            validate(self.configs[m.name] if "image" in modalities
                     else self.configs[m.name].replace(explain=modalities[0]))
        self.metric_objs = list(metric_objs)
        self.adapter = None
        self.notes: list[str] = []

    def _adapter(self):
        from .adapters import Adapter, load_adapter

        if self.adapter is None:
            self.adapter = (self.model if isinstance(self.model, Adapter)
                            else load_adapter(self.spec, self.cfg.device, self.cfg.dtype))
        return self.adapter

    def _scorer(self, adapter, target, image):
        from .metrics import TargetScore

        try:
            scorer = TargetScore(adapter, target, score=self.score,
                                 vocabulary=self.cfg.vocabulary, batch_size=self.cfg.batch_size)
            from .metrics import image_tensor

            pred = scorer.predict(image_tensor(image, adapter.device)[None])
            return scorer, (pred[0] if pred else None)
        except InputError as exc:
            if any(m.needs_model for m in self.metric_objs):
                _note(self.notes, f"model-based metrics skipped: {exc}")
            return None, None

    def _config(self, name: str, modality: str):
        """The run's config for a method on a line that explains `modality`: on a text, a
        "w/ ours" method is SMDL over the same words (the words are the elements whatever the
        baseline), and a division does not apply."""
        cfg = self.configs[name]
        if modality == "image":
            return cfg
        method = self.methods[name]
        if method.division and method.division.startswith("prior:"):
            cfg = cfg.replace(method="smdl")
        return cfg.replace(explain=modality)

    def __call__(self, item: DataItem, pending: list[str]) -> Iterator[tuple[str, dict]]:
        from .api import explain
        from .metrics import EvalContext
        from .runs.context import MapCache, RunContext
        from .targets import Target

        adapter = self._adapter()
        image, mask = load_item(item)  # the dataset's one rule for images and masks
        modality = str(item.fields.get("explain", "image"))
        pending = list(pending)
        for name in [n for n in pending if not self._explains(n, modality)]:
            pending.remove(name)
            yield name, {**make_record(item, self.methods[name], None, None, {},
                                       {"method": f"{name} does not explain {modality}"},
                                       explain_seconds=0.0, metric_seconds=0.0,
                                       metric_passes=0), "explain": modality}
        if modality != "image":
            yield from self._other_side(item, pending, adapter, image, mask, modality)
            return
        target = Target.from_text(item.text)
        scorer, predicted = self._scorer(adapter, target, image)
        # Each process explains its own items alone; a "w/ ours" method reuses its baseline's
        # map of this image through a map cache scoped to the item (bounded, never stale).
        context = RunContext.per_item(MapCache())
        for name in pending:
            t0 = time.perf_counter()
            e = explain(image, target=target, model=adapter, config=self.configs[name],
                        context=context)
            seconds = time.perf_counter() - t0
            ctx = EvalContext(image=image, score_fn=scorer, mask=mask, device=adapter.device,
                              seed=self.cfg.seed, fields=dict(item.fields))
            passes0 = scorer.forward_passes if scorer else 0
            t1 = time.perf_counter()
            values, skipped = self._score(e, ctx, scorer)
            yield name, make_record(
                item, self.methods[name], e, predicted, values, skipped,
                explain_seconds=seconds, metric_seconds=time.perf_counter() - t1,
                metric_passes=(scorer.forward_passes - passes0) if scorer else 0)

    def _explains(self, name: str, modality: str) -> bool:
        from .explainers import EXPLAINERS

        method = self.methods[name]
        if modality != "image" and method.division and method.division.startswith("prior:"):
            return True  # w/ ours on a text: SMDL over its words
        return modality in EXPLAINERS.get(method.method).modalities

    def _other_side(self, item: DataItem, pending: list[str], adapter, image, mask,
                    modality: str) -> Iterator[tuple[str, dict]]:
        """A line that explains its text against its image: every method over the words, the
        metrics that measure text explanations (curves over words, keywords)."""
        from .api import explain
        from .metrics import EvalContext
        from .runs.context import MapCache, RunContext
        from .targets import Target

        if modality not in ("text",):
            raise InputError(f"manifest line {item.line}: explain {modality!r}: a dataset line "
                             "explains its image or its text")
        target = Target.from_image(image)
        context = RunContext.per_item(MapCache())
        for name in pending:
            t0 = time.perf_counter()
            e = explain(text=item.text, target=target, model=adapter,
                        config=self._config(name, modality), context=context)
            seconds = time.perf_counter() - t0
            ctx = EvalContext(image=image, score_fn=None, mask=mask, device=adapter.device,
                              seed=self.cfg.seed, fields=dict(item.fields))
            t1 = time.perf_counter()
            values, skipped = self._score(e, ctx, None)
            record = make_record(item, self.methods[name], e, None, values, skipped,
                                 explain_seconds=seconds,
                                 metric_seconds=time.perf_counter() - t1, metric_passes=0)
            yield name, {**record, "explain": modality}

    def _score(self, e, ctx, scorer) -> tuple[dict[str, Any], dict[str, str]]:
        from .metrics import MetricSkipped

        values: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        modality = getattr(e, "modality", "image")
        for metric in self.metric_objs:
            if modality not in metric.modalities:
                skipped[metric.name] = f"measures {' and '.join(metric.modalities)} explanations"
                continue
            if metric.needs_model and scorer is None and modality == "image":
                skipped[metric.name] = "needs a model score"
                continue
            try:
                values.update(metric.evaluate(e, ctx))
            except MetricSkipped as exc:
                skipped[metric.name] = str(exc)
                _note(self.notes, f"{metric.name} skipped for some items: {exc}")
        return values, skipped


def make_record(item: DataItem, method: MethodSpec, e: Any, predicted: str | None,
                values: dict[str, Any], skipped: dict[str, str], *, explain_seconds: float,
                metric_seconds: float, metric_passes: int) -> dict:
    """The record schema of results.jsonl (the runner adds ``item`` and ``task``)."""
    return {
        "image": item.image, "text": item.text, "label": item.label, "method": method.name,
        "base_method": method.base, "mask": item.mask, "predicted": predicted,
        "correct": (predicted == item.text) if predicted is not None else None,
        "n_regions": e.n_regions if e is not None else 0, "explain_seconds": explain_seconds,
        "metric_seconds": metric_seconds, "curve_score": e.curve_score if e is not None else None,
        "explain_forward_passes": e.forward_passes if e is not None else 0,
        "metric_forward_passes": metric_passes,
        "metrics": values, "skipped": skipped,
    }


# -- the run --------------------------------------------------------------------------------

@dataclass
class EvalSummary:
    out: Path
    records: list[dict]
    new: int
    skipped: int            # (item, method) pairs already done by an earlier run
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bad: list[BadItem] = field(default_factory=list)  # items skipped: unreadable or missing


def evaluate_dataset(dataset: str | os.PathLike, methods: str | Sequence[str] = "smdl",
                     metrics: str | Sequence[str] = DEFAULT_METRICS, *, model: Any = None,
                     out: str | os.PathLike = "evaluation", config: Any = None,
                     score: str = "probability", steps: int = 20, fill: str = "black",
                     limit: int | None = None, progress: Callable[[int, int], None] | None = None,
                     metric_options: dict[str, dict] | None = None, plots: bool = True,
                     overwrite: bool = False) -> EvalSummary:
    """Run each method on each manifest line, score it with each metric, write the results.

    `config` is an `ExplainConfig` (or YAML path) for the explainers; `model` a spec or an
    Adapter (the config's model otherwise). `score`, `steps` and `fill` set how the model-based
    metrics score perturbed images. `overwrite` discards earlier results in `out` (only the
    files evaluate writes). Returns every record of `out` (old and new).
    """
    from .adapters import Adapter
    from .config import ExplainConfig, load_config

    t_start = time.perf_counter()
    _check_options(score, fill, steps, limit)
    cfg = (config if isinstance(config, ExplainConfig)
           else load_config(config) if config else ExplainConfig())
    method_specs = [parse_method(m) for m in _split_names(methods)]
    if not method_specs:
        raise InputError("no method given: --methods smdl,gradcam,...")
    metric_objs = build_metrics(metrics, steps, fill, metric_options)
    data = read_dataset(dataset, need=("text",))
    items, bad = _limit(data.items, data.bad, limit)
    spec = model.spec if isinstance(model, Adapter) else (model or cfg.model)
    settings = run_settings(spec, cfg, score, steps, fill, metric_objs, dataset)
    # The folder rules before any work: a file, someone else's folder, the dataset itself,
    # another dataset / model / setting without --overwrite are one line here.
    folder = OutputFolder(out, "evaluate", settings, records=Path(RESULTS).stem,
                          files=REPORT_FILES, overwrite=overwrite, record_key=_key,
                          avoid=[dataset])
    with folder:
        work = _ItemEvaluator(model, spec, cfg, method_specs, metric_objs, score)
        result = run_items(folder, items, [m.name for m in method_specs], work,
                           progress=progress)
        bad = bad + result.bad
        records = result.records
        if not records:
            # nothing evaluated and nothing on disk: one line, and no folder left behind
            raise InputError(f"no image of {dataset} could be evaluated: {len(bad)} skipped, "
                             f"e.g. {bad[0].describe()}" if bad
                             else f"{dataset}: nothing to evaluate")
        notes = work.notes
        if bad:
            _note(notes, f"{len(bad)} unreadable or missing image(s) or mask(s) skipped; "
                         f"listed in {folder.path('summary.md')}")
        if distributed.is_main_process():
            write_reports(folder.out, records, plots=plots, bad=bad, settings=folder.settings,
                          write=folder.write_text)
            folder.finish()
    return EvalSummary(folder.out, records, result.new, result.done_before, notes,
                       time.perf_counter() - t_start, bad)


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


# -- the results file -----------------------------------------------------------------------

def _key(record: dict) -> tuple:
    # Records written before the runner carry no "item" (nor a digest: never reused, but read
    # once each by `read_results`): derive the item from their fields.
    item = record.get("item") or manifest_key(str(record.get("image")), record.get("text"),
                                              record.get("mask"), record.get("label"))
    return item, record.get("digest"), record.get("task") or record.get("method")


def append_record(path: Path, record: dict) -> None:
    """Append one JSON line and fsync it before returning, so it survives a crash."""
    append_line(path, record)


def read_results(out: str | os.PathLike) -> list[dict]:
    """Every complete record in `out` (all processes' files), each (item, content, method)
    once; partial lines are ignored."""
    return RecordLog(out, Path(RESULTS).stem, _key).read()


def scalar_columns(records: Iterable[dict]) -> list[str]:
    cols: list[str] = []
    for r in records:
        for k, v in r.get("metrics", {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in cols:
                cols.append(k)
    return cols


def method_order(records: Iterable[dict]) -> list[str]:
    seen: list[str] = []
    for r in records:
        if r["method"] not in seen:
            seen.append(r["method"])
    return seen


def summarise(records: list[dict], columns: Sequence[str] | None = None,
              where: Callable[[dict], bool] | None = None) -> dict[str, dict[str, tuple]]:
    """{method: {column: (mean, std, n)}} over the records that pass `where`."""
    cols = list(columns) if columns is not None else scalar_columns(records)
    out: dict[str, dict[str, tuple]] = {}
    for method in method_order(records):
        rows = [r for r in records if r["method"] == method and (where is None or where(r))]
        stats = {}
        for c in cols:
            v = np.array([r["metrics"][c] for r in rows if isinstance(r["metrics"].get(c), (int, float))],
                         np.float64)
            stats[c] = (float(v.mean()), float(v.std()), int(v.size)) if v.size else (math.nan, math.nan, 0)
        out[method] = stats
    return out


def _direction(column: str) -> str:
    from .metrics import METRICS

    for name in METRICS.names():
        hib = getattr(METRICS.get(name), "higher_is_better", {})
        if column in hib:
            return " ↑" if hib[column] else " ↓"
    return ""


def markdown_table(stats: dict[str, dict[str, tuple]], columns: Sequence[str],
                   digits: int = 4, headers: Sequence[str] | None = None) -> str:
    heads = list(headers) if headers else [c + _direction(c) for c in columns]
    lines = ["| method | n | " + " | ".join(heads) + " |",
             "|---|---:|" + "---:|" * len(columns)]
    for method, row in stats.items():
        n = max((row[c][2] for c in columns), default=0)
        cells = []
        for c in columns:
            mean, std, k = row[c]
            cells.append("–" if k == 0 else f"{mean:.{digits}f} ± {std:.{digits}f}")
        lines.append(f"| {method} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_reports(out: Path, records: list[dict], plots: bool = True,
                  bad: Sequence[BadItem] = (), settings: dict | None = None,
                  write: Callable[[str, str | bytes], Any] | None = None) -> None:
    """results.csv (one row per image × method), summary.md (mean ± std, skipped items),
    curves.png, bars.png. `settings` (the folder marker's, read from `out` when not given)
    name the score and fill in the plots' axis labels. `write(name, data)` writes one file
    (the output folder's, which lists it in the marker; default: an atomic write in `out`)."""
    out = Path(out)
    if settings is None:
        marker = read_marker(out)
        settings = marker.get("settings") if marker else None
    settings = settings if isinstance(settings, dict) else {}
    if write is None:
        def write(name: str, data: str | bytes) -> None:
            atomic_write(out / name, data)
    cols = scalar_columns(records)
    fixed = ["image", "text", "label", "mask", "method", "predicted", "correct", "n_regions",
             "explain_seconds", "metric_seconds", "explain_forward_passes", "metric_forward_passes"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fixed + cols)
    for r in records:
        writer.writerow([r.get(k) for k in fixed] + [r["metrics"].get(c, "") for c in cols])
    write("results.csv", buf.getvalue())
    stats = summarise(records, cols)
    skipped = sorted({f"{k}: {v}" for r in records for k, v in r.get("skipped", {}).items()})
    n_items = len({_key(r)[0] for r in records})
    text = ["# Evaluation summary", "",
            f"{len(records)} records, {n_items} items, "
            f"methods {', '.join(method_order(records))}. Mean ± std over items.", ""]
    if cols:
        text.append(markdown_table(stats, cols))
    if skipped:
        text += ["Skipped metrics:", ""] + [f"- {s}" for s in skipped] + [""]
    if bad:
        text += [f"Skipped items: {len(bad)} (unreadable or missing; not evaluated, retried by "
                 "the next run)", ""] + [f"- {b.describe()}" for b in bad] + [""]
    write("summary.md", "\n".join(text) + "\n")
    if plots and records:
        _plots(write, records, stats, cols, settings)


_SCORE_NAMES = {"probability": "target probability (softmax over the vocabulary)",
                "cosine": "cosine similarity to the target",
                "logit": "target logit (logit scale × cosine)"}
_FILL_NAMES = {"black": "black", "blur": "a blurred copy", "mean": "the mean colour"}


def curve_axis_labels(metric: str, settings: dict, curve_score: str | None = None
                      ) -> tuple[str, str]:
    """(x label, y label) of a metric's curve: which fraction of which pixels, which score."""
    deletion = metric.startswith("deletion")
    if metric.endswith("_region"):
        x = (f"fraction of pixels {'removed' if deletion else 'revealed'}, "
             "whole regions in the explainer's order")
        y = _SCORE_NAMES.get(curve_score or "", f"target {curve_score or 'score'}") + \
            " (explainer's own curve)"
        return x, y
    fill = _FILL_NAMES.get(settings.get("fill", "black"), settings.get("fill", "black"))
    x = (f"fraction of pixels {'removed' if deletion else 'revealed'}, most salient first "
         f"({'removed' if deletion else 'hidden'} = {fill})")
    return x, _SCORE_NAMES.get(settings.get("score", "probability"), "target score")


def clipped_errors(means: Sequence[float], stds: Sequence[float], lows: Sequence[float],
                   highs: Sequence[float]) -> np.ndarray:
    """(2, n) asymmetric error bars: mean ± std cut at the range the values can take (the
    smallest and largest per-item value), so no bar runs outside the metric's range."""
    m, s = np.asarray(means, float), np.asarray(stds, float)
    lo = np.clip(m - s, np.asarray(lows, float), None)
    hi = np.clip(m + s, None, np.asarray(highs, float))
    return np.nan_to_num(np.stack([m - lo, hi - m]).clip(min=0.0))


def _plots(write: Callable[[str, bytes], Any], records: list[dict], stats: dict,
           cols: list[str], settings: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .metrics import auc, mean_curve

    settings = settings or {}
    curve_metrics = [m for m in ("insertion", "deletion", "insertion_region", "deletion_region")
                     if any(f"{m}_curve" in r["metrics"] for r in records)]
    if curve_metrics:
        methods = method_order(records)
        # A method and its "w/ ours" variant share a colour; the variant is dashed.
        base = {r["method"]: r.get("base_method") or r["method"] for r in records}
        bases = list(dict.fromkeys(base[m] for m in methods))
        cmap = plt.get_cmap("tab10" if len(bases) <= 10 else "tab20")
        colour = {b: cmap(i % cmap.N) for i, b in enumerate(bases)}
        legend_rows = -(-len(methods) // 2)
        fig, axes = plt.subplots(1, len(curve_metrics),
                                 figsize=(5.2 * len(curve_metrics), 3.8 + 0.13 * legend_rows),
                                 dpi=100, squeeze=False)
        for ax, m in zip(axes[0], curve_metrics):
            scores = {r.get("curve_score") for r in records if f"{m}_curve" in r["metrics"]}
            xlabel, ylabel = curve_axis_labels(m, settings, scores.pop() if len(scores) == 1
                                               else None)
            for method in methods:
                curves = [(r["metrics"][f"{m}_x"], r["metrics"][f"{m}_curve"]) for r in records
                          if r["method"] == method and f"{m}_curve" in r["metrics"]]
                if curves:
                    x, y = mean_curve(curves)
                    ax.plot(x, y, color=colour[base[method]],
                            linestyle="--" if base[method] != method else "-",
                            label=f"{method} (AUC {auc(x, y):.3f})")
            ax.set_title(f"{m}: dataset-mean curve", fontsize=10)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.set_xlim(0, 1)
            ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                      frameon=False)
        fig.tight_layout()
        write("curves.png", _png(fig))
        plt.close(fig)
    if cols:
        methods = list(stats)
        ncols = min(4, len(cols))
        nrows = -(-len(cols) // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.6 * nrows), dpi=100,
                                 squeeze=False)
        for ax in axes.ravel()[len(cols):]:
            ax.axis("off")
        for ax, c in zip(axes.ravel(), cols):
            means = [stats[m][c][0] for m in methods]
            stds = [stats[m][c][1] for m in methods]
            lows, highs = [], []
            for m in methods:
                v = [r["metrics"][c] for r in records if r["method"] == m
                     and isinstance(r["metrics"].get(c), (int, float))]
                lows.append(min(v) if v else math.nan)
                highs.append(max(v) if v else math.nan)
            ax.bar(range(len(methods)), means, yerr=clipped_errors(means, stds, lows, highs),
                   capsize=3, color="tab:blue")
            ax.set_xticks(range(len(methods)))
            ax.set_xticklabels(methods, rotation=45, ha="right", fontsize=7)
            ax.set_title(c + _direction(c), fontsize=9)
            ax.set_ylabel(f"mean {c} over items", fontsize=8)
        fig.tight_layout(rect=(0, 0.06 / nrows, 1, 1))
        fig.text(0.5, 0.01, "bars: mean over items; whiskers: ± 1 std, cut at the smallest and "
                 "largest item value (never outside the metric's range)", ha="center",
                 va="bottom", fontsize=8)
        write("bars.png", _png(fig))
        plt.close(fig)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


__all__ = ["Item", "MethodSpec", "EvalSummary", "read_manifest", "parse_method", "shard",
           "evaluate_dataset", "read_results", "append_record", "summarise", "markdown_table",
           "write_reports", "build_metrics", "run_settings", "make_record", "curve_axis_labels",
           "clipped_errors", "MmattrError"]
