"""The explainer concept and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar

import numpy as np

from ..adapters.base import Adapter
from ..config import ExplainConfig
from ..explanation import Explanation
from ..options import NoOptions, as_dict, parse_options
from ..registry import Registry
from ..runs.context import RunContext
from ..targets import Target

EXPLAINERS: Registry[type["Explainer"]] = Registry("method", components=True)
ProgressFn = Callable[[int, int], None]


def register_explainer(name: str):
    return EXPLAINERS.register(name)


def list_explainers() -> list[str]:
    return EXPLAINERS.names()


class Explainer(ABC):
    """Attributes an adapter's match between an image and a target to image regions.

    A method's own hyper-parameters are its ``Options`` dataclass (mmattr.options), declared
    in its class; they are read from ``config.options[name]`` and validated once, here, into
    `opts`. The cross-cutting settings (batch size, seed, vocabulary, ...) stay in `config`.
    """

    #: registry name, set by each subclass (the COMPONENT of ``-O COMPONENT.NAME=VALUE``)
    name: ClassVar[str] = ""
    #: the method's declared options
    Options: ClassVar[type] = NoOptions

    #: whether the method divides the image with ``config.division`` (SMDL, LIME, Kernel SHAP)
    uses_division: ClassVar[bool] = False
    #: whether it runs ``config.search`` (SMDL)
    uses_search: ClassVar[bool] = False
    #: what it can explain (``config.explain``, `mmattr.elements.MODALITIES`)
    modalities: ClassVar[tuple[str, ...]] = ("image",)

    @classmethod
    def components(cls, config: ExplainConfig) -> set[str]:
        """The components a run with `config` uses: the method, and its division (a prior's
        method too) and search when it has them. Options for any other are not read."""
        used = {cls.name}
        if cls.uses_search:
            used.add(config.search)
        if config.explain != "image":  # the modality's own options replace the division's
            return used | {config.explain}
        if cls.uses_division:
            name, _, prior = config.division.partition(":")
            used.add(name)
            if name == "prior":
                used.add(prior)
        return used

    def __init__(self, config: ExplainConfig, context: RunContext | None = None) -> None:
        self.config = config
        #: what the run hands this explainer explicitly: how many processes share a search
        #: step, a map cache (`mmattr.runs.context`); a plain call gets the defaults
        self.context = context or RunContext()
        self.opts = parse_options(type(self).Options, config.options_for(self.name),
                                  component=self.name, kind="method")

    def fill_for(self, image: np.ndarray, device: Any) -> Any:
        """What `image`'s hidden pixels become (``config.fill``, see `mmattr.fill`) as
        (3, H, W) pixels in [0, 1] on `device`; None for black, so every masking path keeps
        its plain (and bit-identical) black route."""
        if self.config.fill == "black":
            return None
        import torch

        from ..fill import fill_image

        img = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)
        return fill_image(img.float() / 255.0, self.config.fill, self.config.arrays.fill)

    def resolved_options(self) -> dict[str, dict[str, Any]]:
        """The options of this method (and of components it ran), by component name: what
        explanation.json records under ``settings.options``."""
        return {self.name: as_dict(self.opts)}

    @abstractmethod
    def explain(self, image: np.ndarray, target: Target, adapter: Adapter,
                progress: ProgressFn | None = None) -> Explanation:
        """(H, W, 3) uint8 image → Explanation with an (H, W) attribution map."""
