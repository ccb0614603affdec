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
    dataset: Annotated[Path, typer.Argument(help="Dataset folder: manifest.jsonl, or one "
                                                 "subfolder of images per class (ImageFolder).")],
    methods: Annotated[str, typer.Option(
        "--methods", "-m", help="Comma-separated methods: smdl, gradcam, ...; smdl+prior:gradcam "
                                "(or gradcam+ours) is SMDL over gradcam's prior division.")] = "smdl",
    metrics: Annotated[str, typer.Option(
        "--metrics", help="Comma-separated metrics: " + ", ".join(list_metrics()) + ".")
    ] = "insertion,deletion,pointing,energy_pointing,iou",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; rerun to resume.")
                   ] = Path("evaluation"),
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Discard earlier results in OUT (only the files evaluate writes) and "
                            "start again.")] = False,
    model: Annotated[Optional[str], typer.Option(help="Model spec, e.g. demo or hf:FOLDER.")] = None,
    score: Annotated[str, typer.Option(help="Metric score: probability, cosine or logit.")
                     ] = "probability",
    steps: Annotated[int, typer.Option(help="Insertion/deletion steps (pixel-level).")] = 20,
    fill: Annotated[str, typer.Option(help="Hidden pixels: black, blur or mean.")] = "black",
    division: Annotated[Optional[str], typer.Option(help="SMDL division (default slico).")] = None,
    regions: Annotated[Optional[int], typer.Option(help="SMDL sub-regions (default 49).")] = None,
    search: Annotated[Optional[str], typer.Option(help="SMDL search strategy.")] = None,
    vocabulary: Annotated[Optional[str], typer.Option(help="Class names for probabilities.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N manifest lines.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Images per forward pass.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    seed: Annotated[Optional[int], typer.Option(
        help="Seed for sampled methods and ROAD noise.")] = None,
    config: Annotated[Optional[Path], typer.Option(
        help="YAML explain settings (configs/explain.yaml).")] = None,
    option: Annotated[Optional[list[str]], typer.Option(
        "--option", "-O", metavar="COMPONENT.NAME=VALUE",
        help="A divider, search or method option for every method run, e.g. -O rise.masks=2000 "
             "(repeatable; `mmattr options` lists them).")] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots.")] = False,
    num_processes: Annotated[int, typer.Option(
        "--num-processes", help="Shard the images over N processes (accelerate).")] = 1,
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
        from ..runs.progress import ProgressLines

        yield ProgressLines("evaluate", interval=10.0, unit="explanations")
        return
    with progress_bar("evaluate", enabled=enabled) as progress:
        yield progress


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
