"""The ``prior:<method>`` division: a baseline's map pooled into ranked regions.

It lives with the explainers because it runs one; `mmattr.division` stays below them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..division import DivisionContext, Divider, prior_labels, register_divider
from ..errors import InputError
from ..options import as_dict, option
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

    name = "prior"
    needs_context = True

    @dataclass(frozen=True)
    class Options:
        grid: int = option(10, "the map is pooled to grid × grid cells (also prior_grid)", min=1)
        group: int = option(4, "cells per region, most salient first; grows when grid²/group "
                               "would exceed --regions (also prior_group)", min=1)

    def __init__(self, regions: int = 49, method: str = "hsic", **options: Any) -> None:
        if not (method in EXPLAINERS and issubclass(EXPLAINERS.get(method), MapExplainer)):
            EXPLAINERS.get(method)  # unknown names: the registry's one-line error
            raise InputError(f"prior:{method}: the prior must be a baseline method, e.g. prior:hsic")
        super().__init__(regions, **options)
        grid = self.options["grid"]
        # `method` comes from the spec (prior:<method>), not an option; recorded with them
        self.options = {"method": method, "grid": grid,
                        "group": max(self.options["group"], math.ceil(grid * grid / regions))}
        self.forward_passes = 0
        self._prior_options: dict[str, Any] = {}

    def resolved_options(self) -> dict[str, dict[str, Any]]:
        """The prior division's options and those of the method it ran."""
        own = {k: v for k, v in self.options.items() if k != "method"}
        return {self.name: own, **self._prior_options}

    def _labels(self, image: np.ndarray) -> np.ndarray:
        raise InputError(f"prior:{self.options['method']} needs the model and the target")

    def _labels_in_context(self, image: np.ndarray, context: DivisionContext) -> np.ndarray:
        method = self.options["method"]
        cfg = context.config.replace(method=method)
        if cfg.division.startswith("prior"):
            cfg = cfg.replace(division="slico")
        explainer = EXPLAINERS.get(method)(cfg, context=context.run)
        result = cached_attribute(explainer, image,
                                  target_embedding(context.adapter, context.target),
                                  context.adapter)
        self.forward_passes = int(result.forward_passes)
        self._prior_options = {method: as_dict(explainer.opts)}
        return prior_labels(np.asarray(result.attribution, np.float64),
                            int(self.options["grid"]), int(self.options["group"]))
