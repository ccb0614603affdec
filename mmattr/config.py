"""Explanation settings: YAML data validated into a dataclass.

The cross-cutting settings (model, method, division, search, regions, score, ...) are fields;
what belongs to one divider, search or method is that component's declared options
(mmattr.options), held in ``options: {component: {option: value}}`` and validated against the
component's declaration. `FLAT_OPTIONS` keeps the flat settings of earlier versions working.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import InputError
from .objective import SCORE_CHOICES, SMDLWeights
from .options import check_value, defaults_of, merge, parse_options
from .registry import find_component


@dataclass(frozen=True, eq=False)
class GivenArrays:
    """Arrays a Python caller gives for settings a file names by path or name: a label map
    (``division=<array>``, the config says ``labels:<digest>``) and a fill image
    (``fill=<array>``, the config says ``image:<digest>``). They travel with the config but are
    never serialised; the digests in the settings keep results and caches apart."""

    labels: Any = None
    fill: Any = None


@dataclass(frozen=True)
class ExplainConfig:
    """Every setting of one explanation; written into explanation.json."""

    model: str = "demo"
    method: str = "smdl"
    #: what is explained (`mmattr.elements.MODALITIES`): ``image`` (its regions, against a
    #: text, class, image, audio or embedding target), ``text`` (the words of --text, against
    #: the image or an audio clip) or ``audio`` (the time segments of --audio, against the
    #: image or a text)
    explain: str = "image"
    division: str = "slico"
    regions: int = 49
    #: auto (probability over the vocabulary for a named target when one exists, else
    #: cosine; `objective.resolve_score`), cosine or probability
    score: str = "auto"
    confidence: str = "entropy"
    weights: SMDLWeights = field(default_factory=SMDLWeights)
    search: str = "lazy"
    vocabulary: str | None = None
    #: prompt templates: none, default, imagenet80 or a file; None keeps the model's own
    #: (no template for a text target, unless the checkpoint was trained with some)
    templates: str | None = None
    attribution: str = "rank"
    batch_size: int = 64
    device: str = "auto"
    dtype: str = "auto"
    top_k: int = 5
    seed: int = 0
    #: images with a longer side are divided and searched on a copy downscaled to this side;
    #: the map is returned at the input's resolution (models see 224-384 px anyway)
    max_side: int = 1024
    #: what hidden pixels become (Captum's baseline): black, mean, blur, a gray level in
    #: [0, 1] or an image file (mmattr.fill); SMDL's masked images, the perturbation
    #: baselines, IG's start point and every insertion / deletion curve use it
    fill: str = "black"
    #: each component's options as given, {component: {option: value}}, e.g.
    #: {"rise": {"masks": 2000}}; the rest take the defaults the component declares
    #: (``mmattr options`` lists them). Components not used by a run are ignored by it.
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: arrays given from Python for `division` / `fill` (never serialised; see GivenArrays)
    arrays: GivenArrays = field(default_factory=GivenArrays, compare=False, repr=False)

    def replace(self, **changes: Any) -> "ExplainConfig":
        """A copy with the given settings changed; None values are ignored. ``options`` are
        merged into the current ones option by option (a YAML file's, then the command
        line's); the flat names of `FLAT_OPTIONS` are accepted too. The arrays stay unless
        ``arrays`` is given."""
        changes = {k: v for k, v in changes.items() if v is not None}
        arrays = changes.pop("arrays", self.arrays)
        data = self.to_dict()
        if "options" in changes:
            more = changes.pop("options")
            if not isinstance(more, Mapping) or not all(isinstance(v, Mapping)
                                                        for v in more.values()):
                raise InputError("options must be a mapping of component: {option: value}")
            data["options"] = merge(data["options"], more)
        return dataclasses.replace(from_dict({**data, **changes}), arrays=arrays)

    def to_dict(self) -> dict[str, Any]:
        """Every setting, JSON-ready (the arrays are named by the digests in their settings).
        ``explain`` is left out when it is ``image``: an image explanation's settings, and so
        its result keys, are those of the versions before other modalities existed."""
        return {f.name: asdict(v) if dataclasses.is_dataclass(v) else copy.deepcopy(v)
                for f in fields(self) if f.name != "arrays"
                and not (f.name == "explain" and self.explain == "image")
                for v in (getattr(self, f.name),)}

    def options_for(self, component: str) -> dict[str, Any]:
        """The options given for one component (the component applies its defaults)."""
        return dict(self.options.get(component, {}))


#: the flat settings of earlier versions → the component options each one sets. YAML keys,
#: Python keyword arguments and the --layer / --sam-checkpoint / --sam-model flags go through
#: this one table; new options are only ever component options.
FLAT_OPTIONS: dict[str, tuple[str, ...]] = {
    "search_epsilon": ("stochastic.epsilon",),
    "search_batch": ("lazy.batch",),
    "search_shortlist": ("bidirectional.shortlist",),
    "prior_grid": ("prior.grid",),
    "prior_group": ("prior.group",),
    "sam_checkpoint": ("sam.checkpoint",),
    "sam_model": ("sam.model",),
    "layer": ("gradcam.layer", "gradcampp.layer", "scorecam.layer"),
}


def _fold_flat(options: Mapping[str, Mapping[str, Any]], flat: Mapping[str, Any]
               ) -> dict[str, dict[str, Any]]:
    """`FLAT_OPTIONS` settings written into the per-component options (None: not given)."""
    more: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        if value is None:
            continue
        for target in FLAT_OPTIONS[name]:
            component, _, option = target.partition(".")
            more.setdefault(component, {})[option] = value
    return merge(options, more)


def _accept_flat_settings(init):
    """``ExplainConfig(search_epsilon=0.2)`` still works: flat names become options."""

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        flat = {k: kwargs.pop(k) for k in list(kwargs) if k in FLAT_OPTIONS}
        init(self, *args, **kwargs)
        if flat:  # frozen: set once, here, as the generated __init__ does
            object.__setattr__(self, "options", _fold_flat(self.options, flat))

    return __init__


ExplainConfig.__init__ = _accept_flat_settings(ExplainConfig.__init__)  # type: ignore[method-assign]


_TYPES: dict[str, type] = {"regions": int, "batch_size": int, "top_k": int, "max_side": int}
_CHOICES = {"attribution": ("rank", "gain"), "dtype": ("auto", "fp32", "fp16", "bf16"),
            "score": SCORE_CHOICES}


def from_dict(data: dict[str, Any]) -> ExplainConfig:
    """Validate a mapping (from YAML or overrides) into an ExplainConfig, one-line errors."""
    if not isinstance(data, dict):
        raise InputError("a config must be a mapping of setting: value")
    known = {f.name for f in fields(ExplainConfig)} - {"arrays"}  # arrays come from Python only
    unknown = sorted(set(data) - known - set(FLAT_OPTIONS))
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise InputError(f"unknown config setting(s): {', '.join(unknown)}{hint}; known: "
                         f"{', '.join(sorted(known))}; a component's options go under "
                         "options: (see `mmattr options`)")
    values = {k: v for k, v in data.items() if k not in FLAT_OPTIONS}
    values["options"] = validate_options(values.get("options") or {},
                                         {k: v for k, v in data.items() if k in FLAT_OPTIONS})
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
    if values.get("templates") is not None:
        from .vocabulary import load_templates

        load_templates(str(values["templates"]))  # a name or a readable file, checked now
        values["templates"] = str(values["templates"])
    if "fill" in values:
        from .fill import check_fill

        values["fill"] = check_fill(values["fill"])
    for name in ("model", "method", "explain", "division", "score", "confidence", "search",
                 "device"):
        if name in values and not isinstance(values[name], str):
            raise InputError(f"setting {name} must be a string, got {_shown(values[name])}")
    return dataclasses.replace(ExplainConfig(), **values)


def _shown(value: Any) -> str:
    """A value in a message: its repr when short, else its type (a module's repr is its whole
    tree)."""
    text = repr(value)
    return text if len(text) <= 60 and "\n" not in text else f"a {type(value).__name__}"


def validate_options(options: Any, flat: Mapping[str, Any] | None = None
                     ) -> dict[str, dict[str, Any]]:
    """``{component: {option: value}}`` (and `FLAT_OPTIONS` settings) checked against each
    component's declared options: values come back in their declared types, one-line errors
    name the option (or the flat setting) and say what is wrong."""
    if not isinstance(options, Mapping):
        raise InputError("options must be a mapping of component: {option: value}, e.g. "
                         "options: {rise: {masks: 2000}}")
    out: dict[str, dict[str, Any]] = {}
    for component, values in options.items():
        if not isinstance(values, Mapping):
            raise InputError(f"options of {component!r} must be a mapping of option: value, "
                             f"e.g. options: {{{component}: {{name: value}}}}")
        registry = find_component(str(component))
        parsed = parse_options(registry.options(component), values, component=component,
                               kind=registry.kind)
        out[str(component)] = {k: getattr(parsed, k) for k in values}
    for name, value in (flat or {}).items():
        if value is None:
            continue
        for target in FLAT_OPTIONS[name]:
            component, _, option = target.partition(".")
            registry = find_component(component)
            label = f"setting {name} (the {component} {registry.kind}'s {option})"
            out.setdefault(component, {})[option] = check_value(
                registry.options(component), option, value, label)
    # Only values that differ from the declared defaults are kept: a file that spells out a
    # default is the same config (and the same result key) as one that leaves it out.
    kept = {}
    for component, values in sorted(out.items()):
        defaults = defaults_of(find_component(component).options(component))
        changed = {k: v for k, v in sorted(values.items()) if v != defaults[k]}
        if changed:
            kept[component] = changed
    return kept


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
