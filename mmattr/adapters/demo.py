"""The embedded models (:mod:`mmattr.demo_model.zoo`), trained on the synthetic shapes world.

Each is a plain transformers checkpoint folder loaded by the same adapter as any hub checkpoint
of its family: nothing below is demo-specific except where the folder lies.
"""

from __future__ import annotations

import torch

from ..demo_model.zoo import MODEL_DIRS
from ..errors import ModelError
from .base import register_adapter
from .base import Adapter


def _folder(name: str, arg: str):
    if arg:
        raise ModelError(f"the {name} model takes no argument: use --model {name}")
    folder = MODEL_DIRS[name]
    if not (folder / "model.safetensors").is_file():
        raise ModelError(f"the {name} model is missing from {folder}; rebuild it with "
                         f"`mmattr demo-model train --model {name} --out DIR`")
    return folder


@register_adapter("demo", syntax="demo", requires=("transformers",),
                  help="tiny CLIP-style model (ALIGN, convolutional image tower) shipped with "
                       "mmattr, trained on the synthetic shapes world")
def _demo(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    from .hf import HFAdapter

    return HFAdapter(str(_folder("demo", arg)), device=device, dtype=dtype,
                     default_vocabulary="shapes")


@register_adapter("demo-biased", syntax="demo-biased", requires=("transformers",),
                  help="the demo architecture trained with a planted flaw: every star on stripes, "
                       "stripes nowhere else (for auditing)")
def _demo_biased(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    from .hf import HFAdapter

    return HFAdapter(str(_folder("demo-biased", arg)), device=device, dtype=dtype,
                     default_vocabulary="shapes")


@register_adapter("demo-classifier", syntax="demo-classifier", requires=("transformers",),
                  help="small ResNet classifier over the 36 shapes classes, shipped with mmattr")
def _demo_classifier(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    from .classifier import HFClassifierAdapter

    return HFClassifierAdapter(str(_folder("demo-classifier", arg)), device=device, dtype=dtype)
