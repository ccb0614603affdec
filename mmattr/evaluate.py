"""`mmattr evaluate`: every method × metric over a dataset folder, resumable.

The folder holds ``manifest.jsonl``: one JSON object per line with ``image`` (required),
``text`` (the target prompt; ``label`` when absent), ``mask`` (optional ground-truth mask) and
``label``, paths relative to the folder (see `mmattr.datasets.shapes.export_dataset`).

Per (image, text, method) one JSON record is appended to ``results.jsonl`` and fsynced before
the next starts, so an interrupted run loses at most the record in flight and a rerun skips the
keys already there. ``results.csv``, ``summary.md`` and the plots are rewritten (atomically)
from all the records at the end of each run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import distributed
from ._io import atomic_path, atomic_write
from .datasets.shapes import manifest_records
from .errors import InputError, MmattrError

RESULTS = "results.jsonl"
RUN_FILE = "run.json"
DEFAULT_METRICS = ("insertion", "deletion", "pointing", "energy_pointing", "iou")
_KEY_FIELDS = ("image", "text", "method")


# -- the dataset ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One manifest line: an image, its target text, an optional mask and label."""

    image: str
    text: str
    mask: str | None
    label: str | None
    line: int


def read_manifest(folder: str | os.PathLike) -> list[Item]:
    """Validate a dataset folder and read its manifest; one-line `InputError`s on bad input."""
    root = Path(folder)
    if not root.exists():
        raise InputError(f"dataset folder not found: {root}")
    if not root.is_dir():
        raise InputError(f"not a folder: {root} (give the folder that holds manifest.jsonl)")
    path = root / "manifest.jsonl"
    if not path.is_file():
        raise InputError(f"no manifest.jsonl in {root}; make one with `mmattr dataset shapes` "
                         "or write one JSON object per line with image, text, mask, label")
    items = []
    for n, rec in manifest_records(path):
        text = rec.get("text") if rec.get("text") is not None else rec.get("label")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{path}:{n}: needs a 'text' (or 'label') to explain")
        mask = rec.get("mask")
        if mask is not None and not isinstance(mask, str):
            raise InputError(f"{path}:{n}: 'mask' must be a path")
        for what, rel in (("image", rec["image"]), ("mask", mask)):
            if rel is not None and not (root / rel).is_file():
                raise InputError(f"{path}:{n}: {what} file not found: {root / rel}")
        label = rec.get("label")
        items.append(Item(rec["image"], text.strip(), mask,
                          str(label) if label is not None else None, n))
    if not items:
        raise InputError(f"{path} lists no images")
    return items


def shard(items: list[Item]) -> list[Item]:
    """This process's share of the items under ``accelerate launch``; all of them otherwise."""
    return distributed.shard_items(items)


def _results_path(out: Path) -> Path:
    # Each process of a sharded run appends to its own file; readers take all of them.
    rank = distributed.rank()
    return out / (RESULTS if rank == 0 else f"results.rank{rank}.jsonl")


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


# -- the run --------------------------------------------------------------------------------

@dataclass
class EvalSummary:
    out: Path
    records: list[dict]
    new: int
    skipped: int
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def evaluate_dataset(dataset: str | os.PathLike, methods: str | Sequence[str] = "smdl",
                     metrics: str | Sequence[str] = DEFAULT_METRICS, *, model: Any = None,
                     out: str | os.PathLike = "evaluation", config: Any = None,
                     score: str = "probability", steps: int = 20, fill: str = "black",
                     limit: int | None = None, progress: Callable[[int, int], None] | None = None,
                     metric_options: dict[str, dict] | None = None, plots: bool = True,
                     ) -> EvalSummary:
    """Run each method on each manifest line, score it with each metric, write the results.

    `config` is an `ExplainConfig` (or YAML path) for the explainers; `model` a spec or an
    Adapter (the config's model otherwise). `score`, `steps` and `fill` set how the model-based
    metrics score perturbed images. Returns every record of `out` (old and new).
    """
    from .adapters import Adapter, load_adapter
    from .api import explain, validate
    from .config import ExplainConfig, load_config
    from .image import load_image
    from .metrics import SCORES, EvalContext, MetricSkipped, TargetScore, make_metric
    from .metrics.curves import FILLS
    from .targets import Target

    t_start = time.perf_counter()
    if score not in SCORES:
        raise InputError(f"unknown score {score!r}; use {', '.join(SCORES)}")
    if fill not in FILLS:
        raise InputError(f"unknown fill {fill!r}; use {', '.join(FILLS)}")
    if steps < 1:
        raise InputError(f"--steps must be at least 1, got {steps}")
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    cfg = (config if isinstance(config, ExplainConfig)
           else load_config(config) if config else ExplainConfig())
    method_specs = [parse_method(m) for m in _split_names(methods)]
    if not method_specs:
        raise InputError("no method given: --methods smdl,gradcam,...")
    metric_names = _split_names(metrics)
    if not metric_names:
        raise InputError("no metric given: --metrics insertion,deletion,...")
    options = metric_options or {}
    curve_opts = {"steps": steps, "fill": fill}
    metric_objs = []
    for name in metric_names:
        opts = dict(options.get(name, {}))
        if name in ("insertion", "deletion", "highest_confidence"):
            opts = {**curve_opts, **opts}
        metric_objs.append(make_metric(name, **opts))
    items = read_manifest(dataset)
    root = Path(dataset)
    if limit is not None:
        items = items[:limit]

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = model.spec if isinstance(model, Adapter) else (model or cfg.model)
    run_settings = {"model": spec, "score": score, "steps": steps, "fill": fill,
                    "metrics": {m.name: m.settings() for m in metric_objs},
                    "config": {k: v for k, v in cfg.replace(model=spec).to_dict().items()
                               if k not in ("method", "batch_size", "device", "dtype")}}
    _check_run_settings(out_dir, run_settings)

    results_path = _results_path(out_dir)
    _repair_tail(results_path)
    distributed.wait_for_everyone()  # every results file repaired before anyone reads them
    done = {_key(r) for r in read_results(out_dir)}
    todo = [(it, m) for it in items for m in method_specs
            if (it.image, it.text, m.name) not in done]
    skipped = len(items) * len(method_specs) - len(todo)
    distributed.wait_for_everyone()  # the same `done` everywhere before anyone appends
    # Shard what is left rather than the manifest, so a resumed run keeps every process busy.
    mine = set(shard(list(dict.fromkeys(it for it, _ in todo))))
    todo = [(it, m) for it, m in todo if it in mine]
    notes: list[str] = []
    adapter = None
    if progress is not None:
        progress(0, len(todo))
    new = 0
    by_item: dict[Item, list[MethodSpec]] = {}
    for it, m in todo:
        by_item.setdefault(it, []).append(m)
    # Items are sharded, so each process explains its own images with whole search steps;
    # a "w/ ours" method reuses its baseline's map of the same image.
    from .explainers._common import reuse_maps

    with distributed.items_sharded(), reuse_maps():
        for it, specs in by_item.items():
            if adapter is None:
                adapter = model if isinstance(model, Adapter) else load_adapter(
                    spec, cfg.device, cfg.dtype)
            image = np.array(load_image(root / it.image))  # writable: torch warns on read-only arrays
            mask = _load_mask(root / it.mask, image.shape[:2]) if it.mask else None
            target = Target.from_text(it.text)
            scorer = None
            predicted = None
            try:
                scorer = TargetScore(adapter, target, score=score, vocabulary=cfg.vocabulary,
                                     batch_size=cfg.batch_size)
                from .metrics import image_tensor

                pred = scorer.predict(image_tensor(image, adapter.device)[None])
                predicted = pred[0] if pred else None
            except InputError as exc:
                if any(m.needs_model for m in metric_objs):
                    _note(notes, f"model-based metrics skipped: {exc}")
            for m in specs:
                mcfg = cfg.replace(method=m.method, division=m.division, model=spec)
                validate(mcfg)
                t0 = time.perf_counter()
                e = explain(image, target=target, model=adapter, config=mcfg)
                seconds = time.perf_counter() - t0
                ctx = EvalContext(image=image, score_fn=scorer, mask=mask, device=adapter.device,
                                  seed=cfg.seed)
                passes0 = scorer.forward_passes if scorer else 0
                values: dict[str, Any] = {}
                skipped_metrics: dict[str, str] = {}
                t1 = time.perf_counter()
                for metric in metric_objs:
                    if metric.needs_model and scorer is None:
                        skipped_metrics[metric.name] = "needs a model score"
                        continue
                    try:
                        values.update(metric.evaluate(e, ctx))
                    except MetricSkipped as exc:
                        skipped_metrics[metric.name] = str(exc)
                        _note(notes, f"{metric.name} skipped for some items: {exc}")
                record = {
                    "image": it.image, "text": it.text, "label": it.label, "method": m.name,
                    "base_method": m.base, "mask": it.mask, "predicted": predicted,
                    "correct": (predicted == it.text) if predicted is not None else None,
                    "n_regions": e.n_regions, "explain_seconds": seconds,
                    "metric_seconds": time.perf_counter() - t1,
                    "explain_forward_passes": e.forward_passes,
                    "metric_forward_passes": (scorer.forward_passes - passes0) if scorer else 0,
                    "metrics": values, "skipped": skipped_metrics,
                }
                append_record(results_path, record)
                new += 1
                if progress is not None:
                    progress(new, len(todo))
    # Sharded runs: every process's records are on disk before the main one writes the reports.
    distributed.wait_for_everyone()
    new = sum(distributed.gather_items([new]))
    records = read_results(out_dir)
    if distributed.is_main_process():
        write_reports(out_dir, records, plots=plots)
    return EvalSummary(out_dir, records, new, skipped, notes, time.perf_counter() - t_start)


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def _load_mask(path: Path, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            m = np.asarray(img.convert("L")) > 127
    except OSError as exc:
        raise InputError(f"cannot read mask {path}: {exc}") from None
    if m.shape != tuple(hw):
        raise InputError(f"mask {path} is {m.shape[1]}x{m.shape[0]}, its image {hw[1]}x{hw[0]}")
    return m


def _check_run_settings(out: Path, settings: dict) -> None:
    path = out / RUN_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        if old is not None and old != json.loads(json.dumps(settings)):
            diff = sorted(k for k in set(old) | set(settings)
                          if old.get(k) != json.loads(json.dumps(settings.get(k))))
            raise InputError(f"{out} holds results made with other settings ({', '.join(diff)}); "
                             "use another --out, or the same settings to resume")
    else:
        atomic_write(path, json.dumps(settings, indent=2) + "\n")


# -- the results file -----------------------------------------------------------------------

def _key(record: dict) -> tuple:
    return tuple(record.get(k) for k in _KEY_FIELDS)


def append_record(path: Path, record: dict) -> None:
    """Append one JSON line and fsync it before returning, so it survives a crash."""
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _repair_tail(path: Path) -> None:
    # A kill mid-write can leave a partial last line; cut it so the next append starts clean.
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def read_results(out: str | os.PathLike) -> list[dict]:
    """Every complete record in `out` (all processes' files); partial lines are ignored."""
    records: dict[tuple, dict] = {}
    for path in sorted(Path(out).glob("results*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                records[_key(rec)] = rec
    return list(records.values())


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


def write_reports(out: Path, records: list[dict], plots: bool = True) -> None:
    """results.csv (one row per image × method), summary.md (mean ± std), curves.png, bars.png."""
    cols = scalar_columns(records)
    fixed = ["image", "text", "label", "method", "predicted", "correct", "n_regions",
             "explain_seconds", "metric_seconds", "explain_forward_passes", "metric_forward_passes"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fixed + cols)
    for r in records:
        writer.writerow([r.get(k) for k in fixed] + [r["metrics"].get(c, "") for c in cols])
    atomic_write(out / "results.csv", buf.getvalue())
    stats = summarise(records, cols)
    skipped = sorted({f"{k}: {v}" for r in records for k, v in r.get("skipped", {}).items()})
    text = ["# Evaluation summary", "",
            f"{len(records)} records, {len({(r['image'], r['text']) for r in records})} items, "
            f"methods {', '.join(method_order(records))}. Mean ± std over items.", ""]
    if cols:
        text.append(markdown_table(stats, cols))
    if skipped:
        text += ["Skipped metrics:", ""] + [f"- {s}" for s in skipped] + [""]
    atomic_write(out / "summary.md", "\n".join(text) + "\n")
    if plots and records:
        _plots(out, records, stats, cols)


def _plots(out: Path, records: list[dict], stats: dict, cols: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .metrics import auc, mean_curve

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
                                 figsize=(4.5 * len(curve_metrics), 3.4 + 0.13 * legend_rows),
                                 dpi=100, squeeze=False)
        for ax, m in zip(axes[0], curve_metrics):
            for method in methods:
                curves = [(r["metrics"][f"{m}_x"], r["metrics"][f"{m}_curve"]) for r in records
                          if r["method"] == method and f"{m}_curve" in r["metrics"]]
                if curves:
                    x, y = mean_curve(curves)
                    ax.plot(x, y, color=colour[base[method]],
                            linestyle="--" if base[method] != method else "-",
                            label=f"{method} ({auc(x, y):.3f})")
            ax.set_title(f"{m} (dataset-mean curve)")
            ax.set_xlabel("fraction of pixels")
            ax.set_ylabel("score")
            ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                      frameon=False)
        fig.tight_layout()
        _save_fig(fig, out / "curves.png")
        plt.close(fig)
    if cols:
        methods = list(stats)
        ncols = min(4, len(cols))
        nrows = -(-len(cols) // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.4 * nrows), dpi=100,
                                 squeeze=False)
        for ax in axes.ravel()[len(cols):]:
            ax.axis("off")
        for ax, c in zip(axes.ravel(), cols):
            means = [stats[m][c][0] for m in methods]
            stds = [stats[m][c][1] for m in methods]
            ax.bar(range(len(methods)), means, yerr=stds, capsize=3, color="tab:blue")
            ax.set_xticks(range(len(methods)))
            ax.set_xticklabels(methods, rotation=45, ha="right", fontsize=7)
            ax.set_title(c + _direction(c), fontsize=9)
        fig.tight_layout()
        _save_fig(fig, out / "bars.png")
        plt.close(fig)


def _save_fig(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)


__all__ = ["Item", "MethodSpec", "EvalSummary", "read_manifest", "parse_method", "shard",
           "evaluate_dataset", "read_results", "append_record", "summarise", "markdown_table",
           "write_reports", "MmattrError"]
