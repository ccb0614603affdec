"""The audit report's sections: one small base class, one registry, one file per section.

A section *computes* plain data from the audit (`compute`, required: JSON-able, it lands in
audit.json under the section's `key`) and *shows* it with its own template
(``audit/templates/sections/<id>.html.j2``), which receives that data as ``data`` and, from
the optional `view`, anything only the page needs (thumbnails as data URIs) as ``view``. A new
section is one file: a subclass with `id`, `title`, `how`, `order` and `compute`, registered
with ``@register_section``, plus its template.

Sections are computed in `compute_order` (the findings read the others' data, so they come
last) and shown in `order` (the findings first).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from ...registry import Registry

SECTIONS: Registry[type["Section"]] = Registry("report section")


def register_section(name: str) -> Callable[[type["Section"]], type["Section"]]:
    def decorator(cls: type["Section"]) -> type["Section"]:
        cls.id = name
        return SECTIONS.register(name)(cls)

    return decorator


@dataclass
class ReportContext:
    """Everything a section may read. Sections never change it, except through `computed`
    (each section's data, by id, as it is computed)."""

    adapter: Any
    settings: Any                      # AuditSettings
    data: Any                          # runner.Dataset
    items: list                        # the audited items (row i ↔ every array below)
    vectors: np.ndarray                # (N, D) image embeddings
    names: list[str]                   # the classes
    result: Any                        # core.Analysis
    skipped: list                      # runner.BadItem
    notes: list[str]
    why: dict                          # item key → {task: explanation record}
    chosen: list[tuple[int, str]]      # explained images: (index, reason)
    occlusion: dict | None
    naming: Any                        # naming.Vocabulary or None
    pngs: dict[str, bytes | None]
    summary: dict                      # audit.json's common part
    out: Path
    computed: dict[str, dict] = field(default_factory=dict)


class Section(ABC):
    """One part of report.html and of audit.json."""

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    #: one sentence on how to read it, shown under the title
    how: ClassVar[str] = ""
    #: position on the page (smaller first)
    order: ClassVar[int] = 50
    #: position in the computation (smaller first; the findings read everything else)
    compute_order: ClassVar[int] = 50
    #: the key of its data in audit.json (None: not stored there), and which field of the
    #: data goes there (None: all of it)
    key: ClassVar[str | None] = None
    stores: ClassVar[str | None] = None

    @abstractmethod
    def compute(self, ctx: ReportContext) -> dict | None:
        """The section's data (JSON-able), or None to leave the section out."""

    def view(self, data: dict, ctx: ReportContext) -> dict:
        """What only the page needs besides `data` (thumbnails, plots as data URIs)."""
        return {}

    #: the template's text, for a section that brings its own (a plugin, a test); None: the
    #: file ``audit/templates/sections/<id>.html.j2``
    template_source: ClassVar[str | None] = None

    @property
    def template(self) -> str:
        return f"sections/{self.id}.html.j2"

    def heading(self, data: dict) -> str:
        return self.title


def sections_in_order() -> list[type[Section]]:
    """Every registered section class, in page order."""
    return sorted((SECTIONS.get(n) for n in SECTIONS.names()), key=lambda c: (c.order, c.id))
