"""`mmattr audit`: zero-shot model auditing of an image set with a self-contained report.

Modules: `measures` (accuracy, intervals, confusion, calibration), `stats` (tests, false
discovery), `label_issues` (label errors told apart from model errors), `slices` (failure slices
in embedding space), `metadata` (slices from the dataset's columns and image properties),
`naming` (slice names from text space, permutation-tested), `why` and `evidence`
(explanations, occlusion), `sections` (the report's registered sections), `report` (outputs),
`core` (the pipeline).
"""

from .core import AuditResult, AuditSettings, analyse, audit
from .slices import SliceSettings, find_slices, list_slicers, register_slicer

__all__ = ["AuditResult", "AuditSettings", "SliceSettings", "analyse", "audit", "find_slices",
           "list_slicers", "register_slicer", "register_section"]


def register_section(name: str):
    """Register a report section class (see `mmattr.audit.sections.base`)."""
    from .sections import register_section as register

    return register(name)


class _CallablePackage(__import__("types").ModuleType):
    """`mmattr.audit(...)` is the API function, yet `mmattr.audit` is also this package: once
    any `mmattr.audit.*` submodule is imported, Python binds the package to that attribute. A
    callable package keeps `mmattr.audit(...)` working either way."""

    def __call__(self, *args, **kwargs):
        return audit(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallablePackage
