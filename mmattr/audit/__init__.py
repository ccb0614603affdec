"""`mmattr audit`: zero-shot model auditing of an image set with a self-contained report.

Modules: `measures` (accuracy, intervals, confusion, calibration), `label_issues` (confident
learning), `slices` (failure slices in embedding space), `naming` (slice names from text
space), `why` (explanations and occlusion), `report` (outputs), `core` (the pipeline).
"""

from .core import AuditResult, AuditSettings, analyse, audit
from .slices import SliceSettings, find_slices, list_slicers, register_slicer

__all__ = ["AuditResult", "AuditSettings", "SliceSettings", "analyse", "audit", "find_slices",
           "list_slicers", "register_slicer"]
