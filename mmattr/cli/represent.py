"""`mmattr represent`: Representative Interpretations over a dataset (see mmattr.representative)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import console, one_line_errors, progress_bar


def parse_delta(value: str) -> int | None:
    """``auto`` → None (δ = τ(x)); a count ≥ 0 → that count."""
    from ..errors import InputError

    if value.strip().lower() == "auto":
        return None
    try:
        delta = int(value)
    except ValueError:
        raise InputError(f"--delta must be auto or a count ≥ 0, got {value!r}") from None
    if delta < 0:
        raise InputError(f"--delta must be auto or a count ≥ 0, got {value!r}")
    return delta


@one_line_errors
def represent(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder holding manifest.jsonl (the reference images).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (new, empty, or an earlier run of the same settings): one sub-folder per interpretation and summary.json.")],
    model: Annotated[str, typer.Option(help="Model spec, e.g. demo-classifier or hf-classifier:FOLDER.")] = "demo-classifier",
    image: Annotated[Optional[Path], typer.Option(help="Explain this image (default: k-means representatives of DATASET).")] = None,
    layer: Annotated[Optional[str], typer.Option(help="ψ: a module path of the image tower (default: picked automatically).")] = None,
    boundaries: Annotated[int, typer.Option(help="|Q|: linear boundaries sampled.")] = 50,
    delta: Annotated[str, typer.Option(help="δ: other-class reference images a region may cover, or auto (τ(x)).")] = "auto",
    sampler: Annotated[str, typer.Option(help="gradient (linearise at reference images) or walk (at ties, the authors' code).")] = "gradient",
    representatives: Annotated[int, typer.Option("--representatives", "-k", help="Without --image: how many k-means representatives to explain.")] = 8,
    vocabulary: Annotated[Optional[str], typer.Option(help="Zero-shot models: class names (a file, 'shapes' or 'imagenet').")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="The cache folder every dataset command shares (default $MMATTR_CACHE or ~/.cache/mmattr/embeddings); fits are kept there.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed for the boundary sample and k-means.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier run in --out made with other settings.")] = False,
) -> None:
    """Fit Representative Interpretations on DATASET (cached), then explain IMAGE or k-means
    representatives: overlay.png, gallery.png and interpretation.json per interpretation."""
    from ..representative.run import represent_dataset

    with progress_bar("representative interpretations") as progress:
        result = represent_dataset(dataset, out, model=model, image=image, layer=layer,
                                   boundaries=boundaries, delta=parse_delta(delta),
                                   sampler=sampler, representatives=representatives,
                                   vocabulary=vocabulary, cache_dir=cache_dir, device=device,
                                   batch_size=batch_size, seed=seed, progress=progress,
                                   overwrite=overwrite)
    for note in result["notes"]:
        console.print(f"note: {note}", highlight=False)
    for row in result["interpretations"]:
        console.print(f"{row['folder']}: {row['predicted']} · {len(row['boundaries'])} boundaries "
                      f"· covers {row['coverage']} reference images "
                      f"(model accuracy {row['accuracy_model']:.2f})", highlight=False)
    console.print(f"layer {result['layer']} · fit {'from cache' if result['cached'] else 'new'} "
                  f"· {result['reference_images']} reference images → {out}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("represent")(represent)
