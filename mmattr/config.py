"""Explanation settings: YAML data validated into a dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError
from .objective import SMDLWeights


@dataclass(frozen=True)
class ExplainConfig:
    """Every setting of one explanation; written into explanation.json."""

    model: str = "demo"
    method: str = "smdl"
    division: str = "slico"
    regions: int = 49
    score: str = "cosine"
    confidence: str = "entropy"
    weights: SMDLWeights = field(default_factory=SMDLWeights)
    search: str = "lazy"
    vocabulary: str | None = None
    attribution: str = "rank"
    batch_size: int = 64
    device: str = "auto"
    dtype: str = "auto"
    top_k: int = 5
    seed: int = 0
    #: prior:<method> division: the baseline map is pooled to prior_grid² cells, prior_group a region
    prior_grid: int = 10
    prior_group: int = 4
    sam_checkpoint: str | None = None
    sam_model: str = "vit_b"
    #: CAM methods: the layer to hook (a module path); None picks one automatically
    layer: str | None = None
    #: stochastic search: sample (N/k)·ln(1/ε) candidates per step
    search_epsilon: float = 0.01
    #: lazy search: stale candidates re-evaluated per batch
    search_batch: int = 2
    #: bidirectional search: lowest-scoring candidates re-checked for the back list
    search_shortlist: int = 8
    #: images with a longer side are divided and searched on a copy downscaled to this side;
    #: the map is returned at the input's resolution (models see 224-384 px anyway)
    max_side: int = 1024

    def replace(self, **changes: Any) -> "ExplainConfig":
        """A copy with the given settings changed; None values are ignored."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_TYPES: dict[str, type] = {"search_batch": int, "search_shortlist": int,
                           "regions": int, "batch_size": int, "top_k": int, "prior_grid": int,
                           "prior_group": int, "max_side": int}
_CHOICES = {"attribution": ("rank", "gain"), "dtype": ("auto", "fp32", "fp16", "bf16")}


def from_dict(data: dict[str, Any]) -> ExplainConfig:
    """Validate a mapping (from YAML or overrides) into an ExplainConfig, one-line errors."""
    if not isinstance(data, dict):
        raise InputError("a config must be a mapping of setting: value")
    known = {f.name for f in fields(ExplainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"unknown config setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = dict(data)
    weights = values.get("weights", {})
    if isinstance(weights, SMDLWeights):
        weights = asdict(weights)
    if isinstance(weights, (list, tuple)):
        if len(weights) != 4:
            raise InputError("weights must be four numbers: confidence, effectiveness, consistency, collaboration")
        weights = dict(zip(("confidence", "effectiveness", "consistency", "collaboration"), weights))
    if not isinstance(weights, dict):
        raise InputError("weights must be a mapping or a list of four numbers")
    wk = {f.name for f in fields(SMDLWeights)}
    if set(weights) - wk:
        raise InputError(f"unknown weight(s): {', '.join(sorted(set(weights) - wk))}; known: {', '.join(sorted(wk))}")
    try:
        values["weights"] = SMDLWeights(**{k: float(v) for k, v in weights.items()})
    except (TypeError, ValueError):
        raise InputError("weights must be numbers") from None
    for name, typ in _TYPES.items():
        if name in values:
            try:
                values[name] = typ(values[name])
            except (TypeError, ValueError):
                raise InputError(f"setting {name} must be an integer, got {values[name]!r}") from None
            if values[name] < 1:
                raise InputError(f"setting {name} must be at least 1, got {values[name]}")
    for name, choices in _CHOICES.items():
        if name in values and values[name] not in choices:
            raise InputError(f"setting {name} must be one of {', '.join(choices)}, got {values[name]!r}")
    if "search_epsilon" in values:
        try:
            values["search_epsilon"] = float(values["search_epsilon"])
        except (TypeError, ValueError):
            raise InputError(f"setting search_epsilon must be a number, got {values['search_epsilon']!r}") from None
        if not 0.0 < values["search_epsilon"] < 1.0:
            raise InputError(f"setting search_epsilon must be in (0, 1), got {values['search_epsilon']}")
    if "seed" in values:
        try:
            values["seed"] = int(values["seed"])
        except (TypeError, ValueError):
            raise InputError(f"setting seed must be an integer, got {values['seed']!r}") from None
    for name in ("model", "method", "division", "score", "confidence", "search", "device", "sam_model"):
        if name in values and not isinstance(values[name], str):
            raise InputError(f"setting {name} must be a string, got {values[name]!r}")
    return dataclasses.replace(ExplainConfig(), **values)


def load_config(path: str | Path) -> ExplainConfig:
    """Read a YAML config file (see configs/explain.yaml)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"config file {p} is not valid YAML: {first}") from None
    return from_dict(data)
