"""`mmattr` commands. Each one declares its options and makes one call into the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from typer.core import TyperGroup

from .._version import __version__
from ._common import (console, one_line_errors, progress_bar, relaunch_if_asked, stdout,
                      usage_error)


#: Typer's own parsing errors (newer Typer vendors click: its exceptions derive from this)
PARSE_ERRORS: tuple[type[Exception], ...] = tuple(
    e for e in (getattr(typer, "TyperException", None),) if e is not None)


class LazyGroup(TyperGroup):
    """Commands whose modules import heavy libraries (torch) are attached on first use, so
    `mmattr --help` and `--version` start at once. `lazy`: name → (module with a
    ``register(app)`` function, the one-line help the listing shows)."""

    lazy: dict[str, tuple[str, str]] = {
        "evaluate": ("mmattr.cli.evaluate", "Run methods × metrics over a dataset folder."),
        "audit": ("mmattr.cli.audit", "Audit a model on an image set: accuracy, calibration, "
                                      "failure slices and why; one HTML report."),
        "represent": ("mmattr.cli.represent", "Representative Interpretations: the common "
                                              "decision logic over groups of similar images."),
    }
    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return super().list_commands(ctx) + [n for n in self.lazy if n not in self.commands]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module, short = self.lazy[name]
            if self._listing:  # the listing shows one line: no need to import the command
                return click.Command(name, help=short, short_help=short)
            import importlib

            sub = typer.Typer()
            importlib.import_module(module).register(sub)
            self.commands[name] = typer.main.get_command(sub)
        return super().get_command(ctx, name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Click's and Typer's parsing errors (a bad value, an unknown option, a missing
        argument) of every command are one line and exit 2, like mmattr's own errors, instead
        of Typer's boxed report."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (click.ClickException, *PARSE_ERRORS) as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `mmattr audit` alone: its help
                exc.show()
                sys.exit(exc.exit_code)
            usage_error(exc)
        except (click.exceptions.Abort, typer.Abort):
            console.print("aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(name="mmattr", cls=LazyGroup, add_completion=False, no_args_is_help=True,
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
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False
          ) -> None:
    pass


#: ``-O COMPONENT.NAME=VALUE``: every component option, generated from the declarations
OptionFlag = Annotated[Optional[list[str]], typer.Option(
    "--option", "-O", metavar="COMPONENT.NAME=VALUE",
    help="A divider, search or method option, e.g. -O rise.masks=2000 -O lazy.batch=8 "
         "(repeatable; `mmattr options` lists them with types, defaults and bounds).")]


@app.command()
@one_line_errors
def explain(
    image: Annotated[Optional[Path], typer.Argument(help="Image file: explained, or the target of --explain text|audio.", show_default=False)] = None,
    image_option: Annotated[Optional[Path], typer.Option("--image", help="The image file, as a flag (same as IMAGE).")] = None,
    text: Annotated[Optional[str], typer.Option("--text", "-t", help="Target prompt, e.g. \"a red circle\"; with --explain text, the text whose words are explained.")] = None,
    audio: Annotated[Optional[Path], typer.Option("--audio", help="A WAV clip: the target (ImageBind-style models), or with --explain audio the clip whose segments are explained.")] = None,
    explain_what: Annotated[Optional[str], typer.Option("--explain", help="What to explain: image (its regions, default), text (the words of --text against IMAGE or --audio) or audio (the segments of --audio against IMAGE or --text).")] = None,
    class_name: Annotated[Optional[str], typer.Option("--class", help="Target class, by name or index.")] = None,
    target_image: Annotated[Optional[Path], typer.Option("--target-image", help="Explain the similarity to this image.")] = None,
    target_embedding: Annotated[Optional[Path], typer.Option("--target-embedding", help="Target embedding, a (D,) .npy file.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model spec, e.g. demo or hf:FOLDER (see `mmattr models`).")] = None,
    method: Annotated[Optional[str], typer.Option(help="Attribution method (default smdl).")] = None,
    division: Annotated[Optional[str], typer.Option(help="Sub-region division, e.g. slico, grid, or labels:FILE (your own label map: .npy or a gray image).")] = None,
    regions: Annotated[Optional[int], typer.Option(help="About this many sub-regions, never more (default 49).")] = None,
    search: Annotated[Optional[str], typer.Option(help="SMDL search: lazy (default, guarded), exact, beam, stochastic or bidirectional (see configs/explain.yaml).")] = None,
    score: Annotated[Optional[str], typer.Option(help="Consistency/collaboration score: auto (default: probability over the vocabulary for a named target when there is one, else cosine), cosine or probability.")] = None,
    attribution: Annotated[Optional[str], typer.Option(help="SMDL map and heat map: rank (default; the unimportant tail faded) or gain (each region's marginal gain).")] = None,
    vocabulary: Annotated[Optional[str], typer.Option(help="Class names for probabilities: a file (one per line), 'imagenet' or 'shapes'.")] = None,
    templates: Annotated[Optional[str], typer.Option(help="Prompt templates: none (default for --text), default, imagenet80 or a file; demo models keep their own.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder: new, empty or an earlier mmattr result (default explanations/IMAGE.METHOD.TARGET).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="auto, fp32, fp16 or bf16 (autocast on GPU).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Images per forward pass.")] = None,
    fill: Annotated[Optional[str], typer.Option(help="What hidden pixels become (the baseline): black (default), mean, blur, a gray level in [0, 1] or an image file.")] = None,
    option: OptionFlag = None,
    sam_checkpoint: Annotated[Optional[Path], typer.Option("--sam-checkpoint", help="Short for -O sam.checkpoint=FILE (--division sam).")] = None,
    sam_model: Annotated[Optional[str], typer.Option("--sam-model", help="Short for -O sam.model=NAME: vit_b, vit_l or vit_h.")] = None,
    layer: Annotated[Optional[str], typer.Option(help="CAM methods: the layer to use (module path); short for -O gradcam.layer=PATH (and gradcampp, scorecam).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for sampled methods and searches.")] = None,
    max_side: Annotated[Optional[int], typer.Option("--max-side", help="Divide and search larger images on a copy with this long side (default 1024); maps come back full size.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML settings (see configs/explain.yaml).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Redo a complete result in --out, or replace one made with another target or settings.")] = False,
    num_processes: Annotated[int, typer.Option("--num-processes", help="Split each search step over N processes (accelerate).")] = 1,
) -> None:
    """Explain IMAGE for a target and write attribution.npy, regions.npy, overlay.png,
    curves.png and explanation.json. With --explain text, the words of --text against IMAGE;
    with --explain audio, the segments of --audio against IMAGE or --text."""
    relaunch_if_asked(num_processes)
    from ..api import explain_to_dir, explained_and_target
    from ..config import ExplainConfig, load_config
    from ..errors import InputError
    from ..options import parse_assignments
    from ..targets import Target

    if image is not None and image_option is not None:
        raise InputError("give the image once: IMAGE or --image, not both")
    image = image if image is not None else image_option
    # The flags win over the file; -O options merge into the file's, option by option.
    cfg = (load_config(config) if config else ExplainConfig()).replace(
        explain=explain_what,
        model=model, method=method, division=division, regions=regions, search=search,
        score=score, attribution=attribution, vocabulary=vocabulary, device=device, dtype=dtype,
        batch_size=batch_size,
        sam_checkpoint=str(sam_checkpoint) if sam_checkpoint else None, sam_model=sam_model,
        layer=layer, seed=seed, max_side=max_side, templates=templates, fill=fill,
        options=parse_assignments(option or []))
    from ..api import validate

    validate(cfg)  # --explain and --method names before anything is read
    source = None
    if cfg.explain == "image":
        if image is None:
            raise InputError("missing IMAGE: the image to explain (or --explain text|audio)")
        target = (Target.from_audio(audio) if audio is not None and text is None
                  and class_name is None and target_image is None and target_embedding is None
                  else Target.from_options(text, class_name, target_image, target_embedding))
        if audio is not None and target.kind != "audio":
            raise InputError("give one target, not --audio and another")
    else:
        if cfg.explain == "audio" and audio is not None and not audio.is_file():
            raise InputError(f"audio file not found: {audio}")
        source, target = explained_and_target(
            cfg.explain, image=str(image) if image is not None else None, text=text,
            audio=str(audio) if audio is not None else None, class_name=class_name,
            target_image=str(target_image) if target_image else None,
            target_embedding=target_embedding)
        if cfg.explain == "audio":
            source = str(audio)
    from ..api import default_out_dir
    from ..distributed import is_main_process, process_out_dir

    # Under `accelerate launch` every process runs this; each search step is split across
    # them and only the main process writes and prints.
    main_process = is_main_process()
    from ..explanation import RESULT_FILES
    from ..outdir import explain_settings, legacy_result
    from ..runs.folder import OutputFolder

    out = out or default_out_dir(image, target, cfg, source=source)
    # The folder rules before any work, on every process alike (the main one locks it later).
    OutputFolder(out, "explain", explain_settings(target, cfg.to_dict(), source), overwrite=overwrite,
                 files=RESULT_FILES, recognise=legacy_result, lock=False).close()
    with progress_bar(f"{cfg.method} explanation", enabled=main_process) as progress, \
            process_out_dir(out) as where:
        result, out_dir = explain_to_dir(image, target, where, config=cfg, overwrite=overwrite,
                                         progress=progress, source=source)
    if not main_process:
        return
    if result is None:
        stdout.print(f"{out_dir} already holds this explanation; --overwrite redoes it",
                     highlight=False, soft_wrap=True)
        return
    _summary(result, out_dir)


def _summary(e, out_dir: Path) -> None:
    from rich.markup import escape

    # Pixel-map baselines have no region ordering; say what they are instead of "0 regions".
    where = (f"{e.settings.get('division')} {e.n_regions} regions" if e.order else "pixel map")
    top = f"top regions {', '.join(str(r) for r in e.order[:5])}\n" if e.order else ""
    if e.modality != "image":
        noun = {"text": "words", "audio": "segments"}.get(e.modality, "elements")
        where = f"{e.modality}: {e.n_regions} {noun}"
        top = escape(f"top {noun} {', '.join(e.elements[i]['label'] for i in e.order[:5])}") + "\n"
    label = e.target["label"] if len(e.target["label"]) <= 60 else e.target["label"][:59] + "…"
    stdout.print(
        f"[bold]{escape(label)}[/] · {e.method} · model {e.model['spec']} · {where}\n{top}"
        f"insertion AUC {e.insertion_auc:.4f} · deletion AUC {e.deletion_auc:.4f} ({e.curve_score})\n"
        f"{e.forward_passes} forward passes in {e.seconds:.1f} s → {out_dir}", highlight=False)


@app.command("options")
@one_line_errors
def options_command(
    component: Annotated[Optional[str], typer.Argument(
        help="A divider, search or method (e.g. rise, lazy, sam); all of them when left out.")] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="A Markdown table (docs/OPTIONS.md).")] = False,
) -> None:
    """List the options of each divider, search and method: name, type, default, bounds, help.
    Set them with -O COMPONENT.NAME=VALUE or in a config's options: section."""
    from ..options import options_markdown, options_text
    from ..registry import declared_options

    rows = declared_options(component)
    typer.echo(options_markdown(rows) if markdown else options_text(rows), nl=False)


@app.command()
@one_line_errors
def models() -> None:
    """List the model families, their spec syntax and whether they are installed."""
    from rich.console import Console

    from ..adapters import list_model_families

    console_ = Console()
    rows = list_model_families()
    if console_.width >= MODELS_TABLE_WIDTH:
        console_.print(_models_table(rows))
    else:  # a five-column table folds every cell at 80 columns: one block per family
        typer.echo(models_blocks(rows, console_.width), nl=False)


#: the console width from which `mmattr models` is a table; narrower ones get blocks
MODELS_TABLE_WIDTH = 120


def _models_table(rows: list[dict]):
    from rich.markup import escape
    from rich.table import Table

    # Specs are single long words: fold them at any character, never cut them with "…".
    table = Table("family", "spec", "extra", "installed", "what")
    for column in table.columns:
        column.overflow = "fold"
    # Family names are what users type after --model: never folded.
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max(len(r["name"]) for r in rows)
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in (  # spec syntax holds [optional] parts
            row["name"], row["syntax"], row["extra"] or "-",
            "yes" if row["installed"] else f"no: {row.get('install') or 'see docs'}", row["help"])))
    return table


def models_blocks(rows: list[dict], width: int = 80) -> str:
    """The families as blocks that read at any width: the name and whether it is installed,
    then the spec, the extra and what it is, indented and wrapped at word boundaries (never
    inside a spec's word)."""
    import textwrap

    out = []
    for row in rows:
        state = "installed" if row["installed"] else (
            f"not installed: {row.get('install') or 'see docs'}")
        out.append(textwrap.fill(f"{row['name']}  ({state})", width,
                                 subsequent_indent="    ", break_long_words=False,
                                 break_on_hyphens=False))
        fields = [("spec", row["syntax"]), ("extra", row["extra"]), ("what", row["help"])]
        for label, text in fields:
            if text:
                out.append(textwrap.fill(text, width, initial_indent=f"  {label:<7}",
                                         subsequent_indent=" " * 9, break_long_words=False,
                                         break_on_hyphens=False))
        out.append("")
    return "\n".join(out)


@demo_model_app.command("train")
@one_line_errors
def demo_model_train(
    model: Annotated[str, typer.Option("--model", help="demo, demo-biased or demo-classifier.")
                     ] = "demo",
    out: Annotated[Optional[Path], typer.Option(
        help="Output folder: new, empty or an earlier training of the same settings "
             "(default demo-models/MODEL).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    steps: Annotated[Optional[int], typer.Option(
        help="Training steps, at least 1 (default: the shipped model's).")] = None,
    threads: Annotated[int, typer.Option(help="CPU threads, at least 1 (1 is fastest on a busy "
                                              "machine).")] = 1,
    overwrite: Annotated[bool, typer.Option(
        help="Replace an earlier training in --out made with other settings.")] = False,
    replace_shipped: Annotated[bool, typer.Option(
        "--replace-shipped", help="Allow --out to be the packaged checkpoint folder.")] = False,
) -> None:
    """Train one embedded model on the synthetic shapes world (CPU, 15-30 minutes). Every
    setting and --out are checked first; the checkpoint is written into a temporary folder
    and moved into place at the end, so a failed or interrupted run writes nothing."""
    import json

    from ..demo_model.zoo import KINDS, MODEL_DIRS
    from ..errors import InputError
    from ..runs.folder import OutputFolder

    if model not in KINDS:
        raise InputError(f"--model {model!r}: choose from {', '.join(KINDS)}")
    if steps is not None and steps < 1:
        raise InputError(f"--steps must be at least 1, got {steps}")
    if threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    target = (out or Path("demo-models") / model).expanduser()
    shipped_dirs = {d.resolve() for d in MODEL_DIRS.values()}
    shipped = target.resolve() in shipped_dirs
    if shipped and not replace_shipped:
        raise InputError(f"{target} holds a shipped checkpoint; add --replace-shipped to "
                         "overwrite it, or pick another --out")
    shipped_info = MODEL_DIRS[model] / "training.json"
    default_steps = (json.loads(shipped_info.read_text()).get("steps")
                     if shipped_info.is_file() else None)
    steps = steps if steps is not None else default_steps
    settings = {"model": model, "seed": seed, "steps": steps}
    # The shipped folder (with --replace-shipped) is mmattr's own: replaced file by file.
    folder = OutputFolder(target, "demo-model train", settings, overwrite=overwrite or shipped,
                          recognise=(lambda p: True) if shipped else None)
    from ..demo_model.train import train

    def fill(tmp: Path) -> list[str]:
        train(tmp, kind=KINDS[model], seed=seed, threads=threads, shown_out=target,
              **({"steps": steps} if steps else {}))
        return sorted(p.name for p in tmp.iterdir())

    with folder:
        folder.write_files(fill)
        folder.finish()
    console.print(f"{model} → {target}")


@dataset_app.command("shapes")
@one_line_errors
def dataset_shapes(
    out: Annotated[Path, typer.Argument(
        help="Folder to write images/, masks/ and manifest.jsonl into: new, empty or an "
             "earlier export of the same settings.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of scenes.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    size: Annotated[int, typer.Option(min=16, help="Image side in pixels.")] = 224,
    world: Annotated[str, typer.Option(
        help="clean, or biased: every star on stripes and stripes nowhere else (the world "
             "demo-biased was trained on).")] = "clean",
    objects: Annotated[str, typer.Option(help="Objects per scene, N or MIN-MAX.")] = "1-3",
    overwrite: Annotated[bool, typer.Option(
        help="Replace an earlier export in OUT made with other settings.")] = False,
) -> None:
    """Export a seeded synthetic shapes dataset in the manifest format."""
    from ..datasets.shapes import WORLDS, export_dataset
    from ..errors import InputError
    from ..outdir import dataset_folder
    from ..runs.folder import OutputFolder

    lo, _, hi = objects.partition("-")
    try:
        n_objects = (int(lo), int(hi or lo))
    except ValueError:
        raise InputError(f"--objects {objects!r}: give N or MIN-MAX, e.g. 1-3") from None
    if not 1 <= n_objects[0] <= n_objects[1] <= 36:
        raise InputError(f"--objects {objects!r}: counts must satisfy 1 <= MIN <= MAX <= 36")
    if world not in WORLDS:
        raise InputError(f"--world {world!r}: choose from {', '.join(WORLDS)}")
    settings = {"n": n, "seed": seed, "size": size, "world": world, "objects": list(n_objects)}
    # never writes over a file or into a folder of someone else's
    with OutputFolder(out, "dataset shapes", settings, overwrite=overwrite, what="OUT",
                      recognise=dataset_folder) as folder:
        if folder.is_complete():
            console.print(f"{out} already holds this dataset; --overwrite with other settings "
                          "replaces it")
            return

        def fill(tmp: Path) -> list[str]:
            export_dataset(tmp, n_scenes=n, seed=seed, size=size, n_objects=n_objects,
                           world=world)
            return ["images", "masks", "manifest.jsonl"]

        folder.write_files(fill)
        folder.finish()
    console.print(f"{n} scenes → {Path(out) / 'manifest.jsonl'}")


# `mmattr evaluate`, `audit` and `represent` are attached lazily: see LazyGroup.lazy.


def main() -> None:
    code: object = 1
    try:
        app()
        code = 0
    except SystemExit as exc:  # how Click ends every command, successful or not
        code = exc.code or 0
        raise
    finally:
        # Only a clean finish waits for the peers: after an error one may never arrive.
        # A run that never imported torch (--help, --version) joined no process group.
        if "torch" in sys.modules:
            from ..distributed import shutdown

            shutdown(synchronize=code == 0)
