"""The Python API that the CLI and evaluation harnesses call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .adapters import Adapter, load_adapter
from .config import ExplainConfig, load_config
from .explainers import EXPLAINERS
from .explanation import Explanation
from .image import ImageLike, load_image
from .targets import Target


def explain(image: ImageLike, text: str | list[str] | None = None,
            model: str | Adapter | None = None, *, target: Target | None = None,
            class_name: str | int | None = None, target_image: str | Path | None = None,
            target_embedding: str | Path | Any = None,
            config: ExplainConfig | str | Path | None = None, progress=None,
            **settings: Any) -> Explanation:
    """Explain which regions of `image` make `model` match a target.

    The target is `text` (a prompt, or a list of prompts averaged), `class_name`, a
    `target_image`, a `target_embedding` (.npy path or array), or a ready `Target`.
    `model` is a spec (``demo``, ``hf:FOLDER``) or an already loaded `Adapter`; loaded models
    are cached, so repeated calls reuse them. `settings` override the config's fields
    (``division="grid"``, ``regions=25``, ``score="probability"``, ...).

    >>> e = explain("scene.png", text="a red circle")
    >>> e.order[:3], e.insertion_auc
    """
    if config is None:
        cfg = ExplainConfig()
    elif isinstance(config, ExplainConfig):
        cfg = config
    else:
        cfg = load_config(config)
    spec = (model.spec or type(model).__name__) if isinstance(model, Adapter) else model
    cfg = cfg.replace(**settings, model=spec)
    if target is None:
        target = Target.from_options(text, class_name, target_image, target_embedding)
    pixels = load_image(image)
    explainer_cls = validate(cfg)
    adapter = model if isinstance(model, Adapter) else load_adapter(cfg.model, cfg.device, cfg.dtype)
    from .scale import explain_at_max_side

    return explain_at_max_side(explainer_cls(cfg), pixels, target, adapter, cfg.max_side,
                               progress=progress)


def validate(cfg: ExplainConfig):
    """Check the registry names of a config before any model is loaded; returns the explainer."""
    from .division import DIVIDERS
    from .search import SEARCHES

    SEARCHES.get(cfg.search)
    name, _, prior = cfg.division.partition(":")
    DIVIDERS.get(name)
    if prior:  # prior:<method>: the method must exist before any model is loaded
        EXPLAINERS.get(prior)
    return EXPLAINERS.get(cfg.method)


def default_out_dir(image: str | Path, target: Target | None = None,
                    config: ExplainConfig | None = None) -> Path:
    """``scenes/cat.png`` → ``explanations/cat.smdl.a-cat-1f2e3d``: one folder per image,
    method and target (see `mmattr.outdir.default_out_dir`)."""
    from .outdir import default_out_dir as _default

    cfg = config or ExplainConfig()
    return _default(image, target, cfg.method, cfg.division)


def explain_to_dir(image: str | Path, target: Target, out_dir: str | Path | None = None,
                   *, config: ExplainConfig | None = None, overwrite: bool = False,
                   progress=None) -> tuple[Explanation | None, Path]:
    """Explain an image file and write every result file into `out_dir`.

    `out_dir` must be new, empty or an earlier mmattr result (else `InputError`, checked before
    any work). A folder already holding a complete result for the same image content, target
    and settings is left as it is and (None, out_dir) is returned, so reruns skip finished work.
    """
    from .explanation import RESULT_FILES
    from .outdir import check_out_dir, clean_stray, file_sha256, is_complete, result_key

    cfg = config or ExplainConfig()
    out = Path(out_dir) if out_dir is not None else default_out_dir(image, target, cfg)
    check_out_dir(out, RESULT_FILES)
    path = Path(image)
    sha = file_sha256(path) if path.is_file() else None
    key = result_key(sha, target, cfg.to_dict()) if sha else None
    if out.is_dir():
        clean_stray(out)  # what an interrupted run left
        if not overwrite and key and is_complete(out, key):
            return None, out
    explanation = explain(image, target=target, config=cfg, progress=progress)
    explanation.source = str(path.resolve())
    explanation.image_sha256 = sha
    explanation.save(out, top_k=cfg.top_k, key=key)
    return explanation, out
