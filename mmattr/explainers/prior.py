"""The ``prior:<method>`` division: a baseline's map pooled into ranked regions.

It lives with the explainers because it runs one; `mmattr.division` stays below them.
"""

from __future__ import annotations

import math

import numpy as np

from ..division import DivisionContext, Divider, prior_labels, register_divider
from ..errors import InputError
from ._common import MapExplainer, cached_attribute, target_embedding
from .base import EXPLAINERS


@register_divider("prior")
class PriorDivider(Divider):
    """A baseline's map pooled to G×G cells, cells sorted by saliency, every m consecutive
    cells one region; regions numbered most salient first.

    G and m default to the reference's CUB setting (10×10, m = 4: 25 regions); m grows when
    G²/m would exceed `regions`.

    Ref. Chen et al., ICLR 2024 ("w/ ours" rows of Table 1).
    """

    needs_context = True

    def __init__(self, regions: int = 49, method: str = "hsic", grid: int = 10,
                 group: int = 4) -> None:
        if not (method in EXPLAINERS and issubclass(EXPLAINERS.get(method), MapExplainer)):
            EXPLAINERS.get(method)  # unknown names: the registry's one-line error
            raise InputError(f"prior:{method}: the prior must be a baseline method, e.g. prior:hsic")
        if grid < 1 or group < 1:
            raise InputError("prior_grid and prior_group must be at least 1")
        # max(regions, 1): a count below 1 gets the base class's one-line InputError below,
        # not a ZeroDivisionError here
        group = max(int(group), math.ceil(grid * grid / max(int(regions), 1)))
        super().__init__(regions, method=method, grid=int(grid), group=group)
        self.forward_passes = 0

    def _labels(self, image: np.ndarray) -> np.ndarray:
        raise InputError(f"prior:{self.options['method']} needs the model and the target")

    def _labels_in_context(self, image: np.ndarray, context: DivisionContext) -> np.ndarray:
        method = self.options["method"]
        cfg = context.config.replace(method=method)
        if cfg.division.startswith("prior"):
            cfg = cfg.replace(division="slico")
        result = cached_attribute(EXPLAINERS.get(method)(cfg), image,
                                  target_embedding(context.adapter, context.target),
                                  context.adapter)
        self.forward_passes = int(result.forward_passes)
        return prior_labels(np.asarray(result.attribution, np.float64),
                            int(self.options["grid"]), int(self.options["group"]))
