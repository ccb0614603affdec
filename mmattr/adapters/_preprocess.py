"""Moved to `mmattr.preprocess` (a leaf module, so the demo model's training needs no adapter);
kept so the old import path works."""

from ..preprocess import Preprocess, _naflex_hw  # noqa: F401

__all__ = ["Preprocess"]
