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

from ..adapters.demo import KINDS, MODEL_DIRS

__all__ = ["MODEL_DIRS", "KINDS"]
