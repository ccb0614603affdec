"""`mmattr audit`: audit a model on an image set and write one self-contained report."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer

from ._common import console, one_line_errors, relaunch_if_asked


@contextmanager
def _stages(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """One progress bar per stage (encode, explain) on a terminal; a line every few seconds
    otherwise (logs, pipes)."""
    if not enabled:
        yield lambda stage, done, total: None
        return
    if not sys.stderr.isatty():
        from ..runs.progress import ProgressLines

        lines: dict[str, ProgressLines] = {}
        yield lambda stage, done, total: lines.setdefault(
            stage, ProgressLines(f"audit {stage}", unit="images"))(done, total)
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                  transient=True) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"audit {stage}", total=None)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


@one_line_errors
def audit(
    dataset: Annotated[Path, typer.Argument(help="A manifest folder (label = ground truth) or an ImageFolder (one subfolder per class).")],
    model: Annotated[str, typer.Option(help="Model spec: demo, hf:FOLDER, hf-classifier:FOLDER, ... (see `mmattr models`).")] = "demo",
    vocabulary: Annotated[Optional[str], typer.Option(help="Classes to predict over: a file (one per line), imagenet, shapes; default: the model's own or the dataset's labels.")] = None,
    templates: Annotated[Optional[str], typer.Option(help="Prompt templates for the class names: none, default, imagenet80, or a file with one {} per line (default: the model's own).")] = None,
    phrases: Annotated[Optional[Path], typer.Option(help="Slice-naming phrases file, one per line (default: a generic attribute list).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (new, empty, or an earlier audit's; rerun to resume).")] = Path("audit"),
    explain_budget: Annotated[int, typer.Option("--explain-budget", min=0, help="Images explained (predicted class, true class and the contrast, by SMDL), chosen by the slices.")] = 16,
    regions: Annotated[int, typer.Option(min=2, help="Sub-regions per explanation.")] = 25,
    slicer: Annotated[str, typer.Option(help="Slice finder: modes (failure modes of the mistakes, default), domino (error-aware mixture) or kmeans.")] = "modes",
    min_drop: Annotated[float, typer.Option("--min-drop", min=0.0, max=1.0, help="Smallest accuracy drop below the rest reported as a slice.")] = 0.10,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="False-discovery rate over every slice tested, and the level of slice names.")] = 0.05,
    reference_model: Annotated[Optional[str], typer.Option("--reference-model", help="A second model (spec) whose embeddings and predictions check the labels: a label error must convince it too.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of slice finding and sampling.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Redo an earlier audit in --out made with other settings.")] = False,
    num_processes: Annotated[int, typer.Option("--num-processes", help="Shard encoding and explanations over N processes (accelerate).")] = 1,
    represent: Annotated[bool, typer.Option("--represent", help="Add Representative Interpretations per worst class and per slice (CNN / ViT classifiers).")] = False,
) -> None:
    """Audit MODEL on DATASET: accuracy, calibration, confusion, failure slices with names and
    explanations, likely label errors; writes report.html, audit.json, predictions.csv,
    slices.csv and PNG plots into OUT."""
    relaunch_if_asked(num_processes)
    from ..audit import AuditSettings, SliceSettings, audit as run_audit
    from ..audit.interpretations import representative_section
    from ..audit.slices import SLICERS
    from ..distributed import is_main_process

    SLICERS.get(slicer)
    settings = AuditSettings(explain_regions=regions, batch_size=batch_size, device=device,
                             seed=seed, name_alpha=alpha,
                             slices=SliceSettings(method=slicer, min_drop=min_drop, alpha=alpha,
                                                  seed=seed))
    with _stages(is_main_process()) as progress:
        result = run_audit(dataset, model, out=out, vocabulary=vocabulary,
                           templates=templates,
                           phrases=str(phrases) if phrases else None,
                           explain_budget=explain_budget, overwrite=overwrite,
                           settings=settings, progress=progress,
                           extra_sections=[representative_section(seed=seed)] if represent else None,
                           reference_model=reference_model)
    if not is_main_process():
        return
    s = result.summary
    acc = s["accuracy"]
    console.print(f"accuracy {acc['value']:.3f} (95% CI {acc['ci_low']:.3f}–{acc['ci_high']:.3f}) "
                  f"on {acc['n']} images · ECE {s['calibration']['ece']:.3f} · "
                  f"{len(s['slices'])} failure slice(s), {len(s['metadata_slices'])} metadata "
                  f"slice(s), {s['label_issues']['flagged']} likely label error(s) · "
                  f"{len(s['skipped'])} skipped",
                  highlight=False)
    for f in s["findings"][:6]:
        console.print(f"  {f['rank']}. {f['statement']}", highlight=False, soft_wrap=True)
    console.print(f"{s['seconds']:.1f} s → {result.report}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
