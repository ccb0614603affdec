"""The audit report's registered sections (see `base`); importing this package registers the
built-in ones."""

from . import (calibration, confusion, findings, label_issues, metadata, mistakes, settings,  # noqa: F401
               skipped, slices, summary)
from .base import SECTIONS, ReportContext, Section, register_section, sections_in_order

__all__ = ["SECTIONS", "ReportContext", "Section", "register_section", "sections_in_order"]
