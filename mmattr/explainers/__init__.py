"""Explainers: each returns an `Explanation` for one image and one target."""

from __future__ import annotations

from .base import EXPLAINERS, Explainer, list_explainers, register_explainer
from . import smdl  # noqa: F401  (registers "smdl")
from . import cam, gradient, hsic, perturbation  # noqa: F401,E402  (register the baselines)
from . import prior  # noqa: F401,E402  (registers the "prior" division)

__all__ = ["EXPLAINERS", "Explainer", "list_explainers", "register_explainer"]
