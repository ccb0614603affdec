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

    def __init__(self, config: ExplainConfig) -> None:
        self.config = config
        self.opts = parse_options(type(self).Options, config.options_for(self.name),
                                  component=self.name, kind="method")

    def resolved_options(self) -> dict[str, dict[str, Any]]:
        """The options of this method (and of components it ran), by component name: what
        explanation.json records under ``settings.options``."""
        return {self.name: as_dict(self.opts)}

    @abstractmethod
    def explain(self, image: np.ndarray, target: Target, adapter: Adapter,
                progress: ProgressFn | None = None) -> Explanation:
        """(H, W, 3) uint8 image → Explanation with an (H, W) attribution map."""
