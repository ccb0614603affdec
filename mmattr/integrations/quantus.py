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

The randomisation checks run too: the classifier registers the adapter's torch modules as its
own, so Quantus counts their parameters, copies the classifier (``copy.deepcopy`` copies the
adapter with its modules) and resets their layers one by one (``quantus.MPRT``, Adebayo et al.'s
model-parameter randomisation test); `explain_func` explains the copy it is handed, and class
embeddings are recomputed once its parameters change.

    >>> quantus.MPRT(return_last_correlation=True)(model=model, x_batch=x, y_batch=y,
    ...     explain_func=explain_func, explain_func_kwargs={"method": "saliency"})

Install with ``pip install 'mmattr[quantus]'`` (see the Makefile for keeping cv2.ximgproc).
Ref. Hedström et al., "Quantus: An Explainable AI Toolkit for Responsible Evaluation of Neural
Network Explanations and Beyond", JMLR 2023; Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..adapters import Adapter, load_adapter
from ..api import explain_batch
from ..errors import InputError
from ..targets import Target
from ..zeroshot import predict


class ZeroShotClassifier(nn.Module):
    """An adapter as a classifier over `class_names`: (B, 3, H, W) pixels in [0, 1] →
    (B, K) zero-shot logits; preprocessing runs inside, on the adapter's device.

    `model`: a spec (``demo``), an `Adapter`, or a torch ``nn.Module`` classifier (wrapped as
    `mmattr.from_module` does). The adapter's modules are registered as this module's
    (`towers`), so ``parameters()``, ``state_dict()``, ``copy.deepcopy`` and Quantus's layer
    randomisation see and change the model that `forward` and `explain_func` run.
    """

    def __init__(self, model: str | Adapter | nn.Module, class_names: Sequence[str],
                 device: str = "auto", batch_size: int = 64) -> None:
        super().__init__()
        if len(class_names) < 2:
            raise InputError("a zero-shot classifier needs at least two class names")
        adapter = load_adapter(model, device)
        #: the adapter's own torch modules (outermost only), registered as ours
        self.towers = nn.ModuleDict(outer_modules(adapter))
        self.adapter = adapter
        self.class_names = [str(c) for c in class_names]
        self.batch_size = int(batch_size)
        self._classes: torch.Tensor | None = None
        self._classes_for: tuple[int, ...] | None = None
        self.eval()  # nothing trains here; Quantus asks for evaluation mode

    def class_embeddings(self) -> torch.Tensor:
        """(K, D) class embeddings of the current weights: recomputed when any parameter has
        changed in place since (a randomised layer, a loaded state dict)."""
        key = tuple(int(getattr(p, "_version", 0)) for p in self.parameters())
        if self._classes is None or key != self._classes_for:
            self._classes = self.adapter.class_embeddings(self.class_names)
            self._classes_for = key
        return self._classes

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(pixels)
        return predict(self.adapter, x, self.class_embeddings(), batch_size=self.batch_size).logits


def outer_modules(adapter: Adapter) -> dict[str, nn.Module]:
    """The adapter's attributes that are torch modules and not inside another one (a
    classifier's head lives in its model), by attribute name."""
    found = {name: value for name, value in vars(adapter).items() if isinstance(value, nn.Module)}
    inner = {id(m) for outer in found.values() for m in outer.modules() if m is not outer}
    return {name: m for name, m in found.items() if id(m) not in inner}


def explain_func(model: Any, inputs: np.ndarray, targets: Any, **kwargs: Any) -> np.ndarray:
    """Quantus's explanation function: (B, C, H, W) inputs in [0, 1], (B,) class indices →
    (B, 1, H, W) float32 maps. `model` is a `ZeroShotClassifier` (or anything with
    ``adapter`` and ``class_names``): the one Quantus hands over, so a randomised copy is
    explained as it is. `kwargs` go to `mmattr.explain_batch` (``method``, ``regions``,
    ``division``, ``fill``, ...); Quantus's own keys (``device``, ``channel_first``, ...) are
    dropped."""
    adapter = getattr(model, "adapter", None)
    names = getattr(model, "class_names", None)
    if not isinstance(adapter, Adapter) or names is None:
        raise InputError("explain_func needs the model to be a mmattr ZeroShotClassifier")
    idx = np.asarray(targets).reshape(-1).astype(int)
    options = {k: v for k, v in kwargs.items()
               if k not in ("device", "channel_first", "model", "inputs", "targets",
                            "softmax", "abs", "normalise", "explain_func")}
    # A classifier's class is a class target (its head row); an open-vocabulary model's a prompt.
    wanted = [Target(kind="class", class_name=names[i]) if adapter.class_names is not None
              else Target.from_text(names[i]) for i in idx]
    maps = explain_batch(inputs, wanted, model=adapter, return_tensors="np", **options)
    return maps[:, None].astype(np.float32)
