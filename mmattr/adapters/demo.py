"""The embedded demo model: a tiny CLIP trained on the synthetic shapes world."""

from __future__ import annotations

import torch

from ..demo_model import DEMO_MODEL_DIR
from ..errors import ModelError
from .base import register_adapter
from .base import Adapter
from .hf import HFAdapter


@register_adapter("demo", syntax="demo", requires=("transformers",),
                  help="tiny CLIP shipped with mmattr, trained on the synthetic shapes world")
def _demo(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    if arg:
        raise ModelError("the demo model takes no argument: use --model demo")
    if not (DEMO_MODEL_DIR / "model.safetensors").is_file():
        raise ModelError(f"the demo model is missing from {DEMO_MODEL_DIR}; "
                         "rebuild it with `mmattr demo-model train`")
    # Same code path as any transformers checkpoint folder: nothing demo-specific below.
    return HFAdapter(str(DEMO_MODEL_DIR), device=device, dtype=dtype, default_vocabulary="shapes")
