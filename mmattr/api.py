"""The Python API that the CLI and evaluation harnesses call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .adapters import Adapter, load_adapter
from .config import ExplainConfig, load_config
from .explainers import EXPLAINERS
from .explanation import Explanation
from .image import ImageLike, load_image
from .targets import Target


def explain(image: ImageLike, text: str | list[str] | None = None, model: str | Adapter | None = None,
            *, config: ExplainConfig | str | Path | None = None, progress=None,
            **settings: Any) -> Explanation:
    """Explain which regions of `image` make `model` match `text`.

    `model` is a spec (``demo``, ``hf:FOLDER``) or an already loaded `Adapter`; loaded models are
    cached, so repeated calls reuse them. `settings` override the config's fields
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
    if isinstance(model, Adapter):
        cfg = cfg.replace(**settings, model=model.spec or type(model).__name__)
    else:
        cfg = cfg.replace(**settings, model=model)
    target = Target.from_text(text if text is not None else "")
    pixels = load_image(image)
    explainer_cls = EXPLAINERS.get(cfg.method)
    adapter = model if isinstance(model, Adapter) else load_adapter(cfg.model, cfg.device, cfg.dtype)
    with torch.inference_mode():
        return explainer_cls(cfg).explain(pixels, target, adapter, progress=progress)


def default_out_dir(image: str | Path) -> Path:
    """``scenes/cat.png`` → ``explanations/cat``."""
    return Path("explanations") / Path(image).stem


def explain_to_dir(image: str | Path, text: str | list[str], out_dir: str | Path | None = None,
                   *, config: ExplainConfig | None = None, overwrite: bool = False,
                   progress=None) -> tuple[Explanation | None, Path]:
    """Explain an image file and write every result file into `out_dir`, atomically.

    A folder already holding a complete result made with the same settings is left as it is
    and (None, out_dir) is returned, so reruns skip finished work.
    """
    import json

    from .explanation import is_complete

    cfg = config or ExplainConfig()
    out = Path(out_dir) if out_dir is not None else default_out_dir(image)
    target = Target.from_text(text)
    if not overwrite and is_complete(out):
        try:
            done = json.loads((out / "explanation.json").read_text())
        except (OSError, ValueError):
            done = {}
        same = (done.get("target", {}).get("texts") == list(target.texts)
                and done.get("image") == str(Path(image).resolve())
                and {k: v for k, v in done.get("settings", {}).items() if k in cfg.to_dict()}
                == cfg.to_dict())
        if same:
            return None, out
    explanation = explain(image, text=list(target.texts), config=cfg, progress=progress)
    explanation.source = str(Path(image).resolve())
    explanation.save(out, top_k=cfg.top_k)
    return explanation, out
