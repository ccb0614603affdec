"""The embedded model zoo: three small models trained on the synthetic shapes world.

- ``demo``: a CLIP-style dual encoder (transformers ALIGN: an EfficientNet-style convolutional
  image tower and a BERT-style text tower), trained on the clean world.
- ``demo-biased``: the same architecture trained on the biased world (every star on stripes,
  stripes nowhere else), a planted flaw that an audit must find.
- ``demo-classifier``: a transformers RegNet-X image classifier over the 36 captions, the setting of
  Representative Interpretations.

Every checkpoint is a plain transformers folder read by ``AutoModel`` /
``AutoModelForImageClassification``; the adapters load it exactly as they load a hub checkpoint.
"""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).parent

#: spec name → checkpoint folder inside the package
MODEL_DIRS: dict[str, Path] = {
    "demo": _ROOT / "weights",
    "demo-biased": _ROOT / "weights_biased",
    "demo-classifier": _ROOT / "weights_classifier",
}
#: spec name → how it was trained (the ``kind`` of :func:`mmattr.demo_model.train.train`)
KINDS: dict[str, str] = {"demo": "clip", "demo-biased": "biased", "demo-classifier": "classifier"}

__all__ = ["MODEL_DIRS", "KINDS"]
