"""The embedded models (:mod:`mmattr.demo_model.zoo`), trained on the synthetic shapes world.

Each is a plain transformers checkpoint folder loaded by the same adapter as any hub checkpoint
of its family: nothing below is demo-specific except where the folder lies.
"""

from __future__ import annotations

import torch

from pathlib import Path

from ..errors import ModelError
from ..errors import arg as setting
from .base import register_adapter
from .base import Adapter

# The checkpoints live in the demo_model package; their paths are set here, so the adapters never
# import demo_model (which imports the adapters to evaluate its models).
_WEIGHTS = Path(__file__).resolve().parents[1] / "demo_model"
#: spec name → checkpoint folder inside the package
MODEL_DIRS: dict[str, Path] = {
    "demo": _WEIGHTS / "weights",
    "demo-biased": _WEIGHTS / "weights_biased",
    "demo-classifier": _WEIGHTS / "weights_classifier",
}
#: spec name → how it was trained (the ``kind`` of :func:`mmattr.demo_model.train.train`)
KINDS: dict[str, str] = {"demo": "clip", "demo-biased": "biased", "demo-classifier": "classifier"}


def _folder(name: str, arg: str):
    if arg:
        raise ModelError(f"the {name} model takes no argument: use {setting('model', name)}")
    folder = MODEL_DIRS[name]
    if not (folder / "model.safetensors").is_file():
        raise ModelError(f"the {name} model is missing from {folder}; rebuild it with "
                         f"`mmattr demo-model train --model {name} --out DIR`")
    return folder


@register_adapter("demo", syntax="demo", requires=("transformers",),
                  help="tiny ALIGN dual encoder (convolutional image tower) trained on the "
                       "synthetic shapes world")
def _demo(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    from .hf import HFAdapter

    return HFAdapter(str(_folder("demo", arg)), device=device, dtype=dtype,
                     default_vocabulary="shapes")


@register_adapter("demo-biased", syntax="demo-biased", requires=("transformers",),
                  help="demo's architecture with a planted flaw: stars only on stripes (for audits)")
def _demo_biased(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    from .hf import HFAdapter

    return HFAdapter(str(_folder("demo-biased", arg)), device=device, dtype=dtype,
                     default_vocabulary="shapes")


@register_adapter("demo-classifier", syntax="demo-classifier", requires=("transformers",),
                  help="small RegNet-X classifier over the 36 shapes classes")
def _demo_classifier(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    from .classifier import HFClassifierAdapter

    return HFClassifierAdapter(str(_folder("demo-classifier", arg)), device=device, dtype=dtype)
