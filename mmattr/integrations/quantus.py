"""Quantus integration: mmattr's maps as Quantus's ``explain_func``, and a zero-shot model
Quantus can perturb and score.

Quantus calls ``model(x)`` for class scores and ``explain_func(model, inputs, targets,
**kwargs)`` for maps, with integer class targets. `ZeroShotClassifier` turns an adapter and a
list of class names into such a model (logits = `mmattr.zeroshot.predict` over the names), and
`explain_func` explains each image for the class name its target indexes.

    >>> import quantus
    >>> from mmattr.integrations.quantus import ZeroShotClassifier, explain_func
    >>> model = ZeroShotClassifier("demo", ["a red circle", "a blue square"])
    >>> quantus.PointingGame()(model=model, x_batch=x, y_batch=y, s_batch=masks,
    ...                        explain_func=explain_func, explain_func_kwargs={"method": "smdl"})

Install with ``pip install 'mmattr[quantus]'`` (see the Makefile for keeping cv2.ximgproc).
Ref. Hedström et al., "Quantus: An Explainable AI Toolkit for Responsible Evaluation of Neural
Network Explanations and Beyond", JMLR 2023.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..adapters import Adapter, load_adapter
from ..api import explain_batch
from ..errors import InputError
from ..zeroshot import predict


class ZeroShotClassifier(nn.Module):
    """An adapter as a classifier over `class_names`: (B, 3, H, W) pixels in [0, 1] →
    (B, K) zero-shot logits; preprocessing runs inside, on the adapter's device."""

    def __init__(self, model: str | Adapter, class_names: Sequence[str], device: str = "auto",
                 batch_size: int = 64) -> None:
        super().__init__()
        if len(class_names) < 2:
            raise InputError("a zero-shot classifier needs at least two class names")
        self.adapter = model if isinstance(model, Adapter) else load_adapter(model, device)
        self.class_names = [str(c) for c in class_names]
        self.batch_size = int(batch_size)
        self._classes = self.adapter.class_embeddings(self.class_names)
        self.eval()  # nothing trains here; Quantus asks for evaluation mode

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(pixels)
        return predict(self.adapter, x, self._classes, batch_size=self.batch_size).logits


def explain_func(model: Any, inputs: np.ndarray, targets: Any, **kwargs: Any) -> np.ndarray:
    """Quantus's explanation function: (B, C, H, W) inputs in [0, 1], (B,) class indices →
    (B, 1, H, W) float32 maps. `model` is a `ZeroShotClassifier` (or anything with
    ``adapter`` and ``class_names``); `kwargs` go to `mmattr.explain_batch` (``method``,
    ``regions``, ``division``, ...); Quantus's own keys (``device``, ``channel_first``, ...)
    are dropped."""
    adapter = getattr(model, "adapter", None)
    names = getattr(model, "class_names", None)
    if not isinstance(adapter, Adapter) or names is None:
        raise InputError("explain_func needs the model to be a mmattr ZeroShotClassifier")
    idx = np.asarray(targets).reshape(-1).astype(int)
    options = {k: v for k, v in kwargs.items()
               if k not in ("device", "channel_first", "model", "inputs", "targets",
                            "softmax", "abs", "normalise", "explain_func")}
    maps = explain_batch(inputs, [names[i] for i in idx], model=adapter, **options)
    return maps[:, None].astype(np.float32)
