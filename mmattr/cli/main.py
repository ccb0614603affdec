"""`mmattr` commands. Each one declares its options and makes one call into the library."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import __version__
from ..adapters import ADAPTERS
from ..division import list_dividers
from ..objective import SCORE_MODES
from ._common import console, one_line_errors, progress_bar

app = typer.Typer(name="mmattr", add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="Explain which image regions make a multimodal model match a target.")
demo_model_app = typer.Typer(no_args_is_help=True, help="Build the embedded demo model.")
dataset_app = typer.Typer(no_args_is_help=True, help="Make datasets in the manifest format.")
app.add_typer(demo_model_app, name="demo-model")
app.add_typer(dataset_app, name="dataset")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mmattr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    pass


def _choice(value: Optional[str], choices: list[str], option: str) -> Optional[str]:
    if value is not None and value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=option)
    return value


@app.command()
@one_line_errors
def explain(
    image: Path = typer.Argument(..., help="Image file to explain."),
    text: str = typer.Option(..., "--text", "-t", help="Target prompt, e.g. \"a red circle\"."),
    model: Optional[str] = typer.Option(None, help=f"Model spec: {', '.join(ADAPTERS.names() or ['demo', 'hf:PATH'])} (default demo)."),
    division: Optional[str] = typer.Option(None, help=f"Sub-region division: {', '.join(list_dividers())}."),
    regions: Optional[int] = typer.Option(None, help="About this many sub-regions, never more (default 49)."),
    score: Optional[str] = typer.Option(None, help="Consistency/collaboration score: cosine or probability."),
    vocabulary: Optional[str] = typer.Option(None, help="Class names for probabilities: a file (one per line) or 'shapes'."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default explanations/IMAGE_STEM)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per forward pass."),
    config: Optional[Path] = typer.Option(None, help="YAML settings (see configs/explain.yaml)."),
    overwrite: bool = typer.Option(False, help="Redo an output folder that is already complete."),
) -> None:
    """Explain IMAGE for the target TEXT and write attribution.npy, regions.npy, overlay.png,
    curves.png and explanation.json."""
    from ..api import explain_to_dir
    from ..config import ExplainConfig, load_config

    _choice(division, list_dividers(), "--division")
    _choice(score, list(SCORE_MODES), "--score")
    cfg = (load_config(config) if config else ExplainConfig()).replace(
        model=model, division=division, regions=regions, score=score, vocabulary=vocabulary,
        device=device, batch_size=batch_size)
    with progress_bar("SMDL search") as progress:
        result, out_dir = explain_to_dir(image, text, out, config=cfg, overwrite=overwrite,
                                         progress=progress)
    if result is None:
        console.print(f"{out_dir} already holds this explanation; --overwrite redoes it")
        return
    _summary(result, out_dir)


def _summary(e, out_dir: Path) -> None:
    top = ", ".join(str(r) for r in e.order[:5])
    console.print(
        f"[bold]{e.target['label']}[/] · model {e.model['spec']} · {e.settings['division']} "
        f"{e.n_regions} regions\n"
        f"top regions {top}\n"
        f"insertion AUC {e.insertion_auc:.4f} · deletion AUC {e.deletion_auc:.4f} ({e.curve_score})\n"
        f"{e.forward_passes} forward passes in {e.seconds:.1f} s → {out_dir}", highlight=False)


@app.command()
@one_line_errors
def models() -> None:
    """List the model families, their spec syntax and whether they are installed."""
    from rich.console import Console
    from rich.table import Table

    from ..adapters import list_model_families

    table = Table("family", "spec", "extra", "installed", "what")
    for row in list_model_families():
        table.add_row(row["name"], row["syntax"], row["extra"] or "-",
                      "yes" if row["installed"] else "no", row["help"])
    Console().print(table)


@demo_model_app.command("train")
@one_line_errors
def demo_model_train(
    out: Path = typer.Option(None, help="Output folder (default: the packaged demo model folder)."),
    seed: int = typer.Option(0, help="Random seed."),
    steps: Optional[int] = typer.Option(None, help="Training steps (default: the shipped model's)."),
) -> None:
    """Train the embedded demo CLIP on the synthetic shapes world (CPU, a few minutes)."""
    from ..demo_model import DEMO_MODEL_DIR
    from ..demo_model.train import train

    kwargs = {"steps": steps} if steps else {}
    train(out or DEMO_MODEL_DIR, seed=seed, **kwargs)


@dataset_app.command("shapes")
@one_line_errors
def dataset_shapes(
    out: Path = typer.Argument(..., help="Folder to write images/, masks/ and manifest.jsonl into."),
    n: int = typer.Option(100, "--n", min=1, help="Number of scenes."),
    seed: int = typer.Option(0, help="Random seed."),
    size: int = typer.Option(224, min=16, help="Image side in pixels."),
) -> None:
    """Export a seeded synthetic shapes dataset in the manifest format."""
    from ..datasets.shapes import export_dataset

    path = export_dataset(out, n_scenes=n, seed=seed, size=size)
    console.print(f"{n} scenes → {path}")


def main() -> None:
    app()
