"""`mmattr evaluate`: methods × metrics over a manifest folder (see mmattr.evaluate)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer

from ..metrics import list_metrics
from ._common import console, one_line_errors, progress_bar, relaunch_if_asked


@one_line_errors
def evaluate(
    dataset: Path = typer.Argument(..., help="Dataset folder: manifest.jsonl, or one subfolder "
                                                "of images per class (ImageFolder)."),
    methods: str = typer.Option("smdl", "--methods", "-m",
                                help="Comma-separated methods: smdl, gradcam, ...; "
                                     "smdl+prior:gradcam (or gradcam+ours) is SMDL over gradcam's prior division."),
    metrics: str = typer.Option("insertion,deletion,pointing,energy_pointing,iou", "--metrics",
                                help="Comma-separated metrics: " + ", ".join(list_metrics()) + "."),
    out: Path = typer.Option(Path("evaluation"), "--out", "-o", help="Output folder; rerun to resume."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Discard earlier results in OUT (only the files evaluate "
                                        "writes) and start again."),
    model: Optional[str] = typer.Option(None, help="Model spec, e.g. demo or hf:FOLDER."),
    score: str = typer.Option("probability", help="Metric score: probability, cosine or logit."),
    steps: int = typer.Option(20, help="Insertion/deletion steps (pixel-level)."),
    fill: str = typer.Option("black", help="Hidden pixels: black, blur or mean."),
    division: Optional[str] = typer.Option(None, help="SMDL division (default slico)."),
    regions: Optional[int] = typer.Option(None, help="SMDL sub-regions (default 49)."),
    search: Optional[str] = typer.Option(None, help="SMDL search strategy."),
    vocabulary: Optional[str] = typer.Option(None, help="Class names for probabilities."),
    limit: Optional[int] = typer.Option(None, help="Only the first N manifest lines."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per forward pass."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    seed: Optional[int] = typer.Option(None, help="Seed for sampled methods and ROAD noise."),
    config: Optional[Path] = typer.Option(None, help="YAML explain settings (configs/explain.yaml)."),
    option: Annotated[Optional[list[str]], typer.Option(
        "--option", "-O", metavar="COMPONENT.NAME=VALUE",
        help="A divider, search or method option for every method run, e.g. -O rise.masks=2000 "
             "(repeatable; `mmattr options` lists them).")] = None,
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots."),
    num_processes: int = typer.Option(1, "--num-processes",
                                      help="Shard the images over N processes (accelerate)."),
) -> None:
    """Explain every manifest line with each method, score each metric, write results.jsonl,
    results.csv, summary.md and plots into OUT. A rerun skips the work already done; an
    unreadable image is skipped and listed in summary.md."""
    from ..config import ExplainConfig, load_config
    from ..distributed import is_main_process
    from ..evaluate import evaluate_dataset
    from ..options import parse_assignments

    relaunch_if_asked(num_processes)

    cfg = (load_config(config) if config else ExplainConfig()).replace(
        division=division, regions=regions, search=search, vocabulary=vocabulary,
        batch_size=batch_size, device=device, seed=seed, options=parse_assignments(option or []))
    with _progress(is_main_process()) as progress:
        summary = evaluate_dataset(dataset, methods, metrics, model=model, out=out, config=cfg,
                                   score=score, steps=steps, fill=fill, limit=limit,
                                   progress=progress, plots=not no_plots, overwrite=overwrite)
    if not is_main_process():
        return
    for note in summary.notes:
        console.print(f"note: {note}", highlight=False)
    bad = f"{len(summary.bad)} items skipped (unreadable), " if summary.bad else ""
    console.print(f"{summary.new} new, {summary.skipped} already done, {bad}"
                  f"{len(summary.records)} records in {summary.seconds:.1f} s → "
                  f"{summary.out / 'summary.md'}", highlight=False)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None]]:
    # A bar on a terminal; a line every few seconds in logs and pipes, so a long run is not silent.
    if enabled and not sys.stderr.isatty():
        from ..runner import ProgressLines

        yield ProgressLines("evaluate", interval=10.0, unit="explanations")
        return
    with progress_bar("evaluate", enabled=enabled) as progress:
        yield progress


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
