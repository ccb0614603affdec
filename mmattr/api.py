"""The Python API that the CLI and evaluation harnesses call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .adapters import Adapter, load_adapter
from .config import ExplainConfig, load_config
from .errors import InputError
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
    (``division="grid"``, ``regions=25``, ``score="probability"``, ...); a divider's, search's
    or method's own options go in ``options={"rise": {"masks": 2000}}`` (merged into the
    config's, option by option; ``mmattr options`` lists them).

    >>> e = explain("scene.png", text="a red circle")
    >>> e.order[:3], e.insertion_auc
    >>> e = explain("scene.png", text="a red circle", method="rise", options={"rise": {"masks": 500}})
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
    adapter = with_templates(adapter, cfg.templates)
    from .scale import explain_at_max_side

    return explain_at_max_side(explainer_cls(cfg), pixels, target, adapter, cfg.max_side,
                               progress=progress)


def with_templates(adapter: Adapter, templates: str | None) -> Adapter:
    """The adapter with its prompt templates set to `templates` (a name or file) for both text
    targets and class names; a shallow copy sharing the model, so a cached adapter never
    changes. None returns it as it is."""
    import copy

    if templates is None:
        return adapter
    from .vocabulary import load_templates

    chosen = load_templates(templates)
    if chosen == adapter.templates and chosen == adapter.text_templates:
        return adapter
    view = copy.copy(adapter)
    view.templates = view.text_templates = chosen
    return view


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


def explain_batch(images: Any, targets: Any, model: str | Adapter | None = None, *,
                  method: str = "smdl", config: ExplainConfig | str | Path | None = None,
                  **settings: Any):
    """Explain a batch for an evaluation harness; returns a (B, H, W) float32 numpy array.

    `images`: (B, H, W, 3) uint8, or (B, 3, H, W) / (B, H, W, 3) float in [0, 1] (numpy or
    torch). `targets`: one per image: a prompt, a `Target`, or a list of prompts; a single
    value is used for every image. `model`, `method`, `config` and `settings` as in `explain`;
    the model is loaded once for the batch.

    >>> maps = explain_batch(x, ["a red circle", "a blue square"], model="demo", method="gradcam")
    """
    import numpy as np

    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.ndim != 4:
        raise InputError(f"images must be a batch (B, H, W, 3) or (B, 3, H, W), got {arr.shape}")
    if arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if isinstance(targets, (str, Target)) or targets is None:
        targets = [targets] * len(arr)
    targets = list(targets)
    if len(targets) != len(arr):
        raise InputError(f"{len(targets)} targets for {len(arr)} images")
    cfg = config if isinstance(config, ExplainConfig) else (
        load_config(config) if config is not None else ExplainConfig())
    cfg = cfg.replace(method=method, **settings)
    if model is None:
        model = cfg.model
    adapter = model if isinstance(model, Adapter) else load_adapter(model, cfg.device, cfg.dtype)
    maps = []
    for image, t in zip(arr, targets):
        target = t if isinstance(t, Target) else Target.from_options(t)
        maps.append(explain(np.ascontiguousarray(image), target=target, model=adapter,
                            config=cfg).attribution.astype(np.float32))
    return np.stack(maps)
