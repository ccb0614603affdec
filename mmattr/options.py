"""Typed per-component options: each divider, search and method declares its own.

A component declares a nested ``Options``: a frozen dataclass whose fields are made with
`option` (default, help, bounds, choices)::

    @dataclass(frozen=True)
    class Options:
        masks: int = option(4000, "random masks N", min=1)

`parse_options` turns a mapping (YAML, ``-O COMPONENT.NAME=VALUE`` strings, Python keyword
arguments) into that dataclass with one-line `InputError`s (unknown option with a did-you-mean,
wrong type, out of range); `describe` lists the fields for ``mmattr options`` and the docs. The
CLI, the YAML section ``options:`` and explanation.json all read the declaration, so a new
option is one line in the component's file.

A leaf: only the standard library and mmattr.errors, so every layer can use it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import InputError

#: the value types an option may have (each may also be ``| None``)
SCALARS: tuple[type, ...] = (bool, int, float, str)
_NOUNS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_NULL_WORDS = ("none", "null", "~", "")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


@dataclass(frozen=True)
class NoOptions:
    """The options of a component that has none."""


def option(default: Any, help: str, *, min: float | None = None, max: float | None = None,
           above: float | None = None, below: float | None = None,
           choices: Sequence[Any] | None = None) -> Any:
    """One declared option: its default, one line of help and its constraints.

    `min` / `max` are inclusive bounds, `above` / `below` exclusive ones, `choices` the allowed
    values. The constraints are checked by `parse_options`, never by the component itself.
    """
    meta = {"help": help, "min": min, "max": max, "above": above, "below": below,
            "choices": tuple(choices) if choices is not None else None}
    return field(default=default, metadata={"mmattr": meta})


@dataclass(frozen=True)
class OptionInfo:
    """What `describe` says about one option (``mmattr options``, docs/OPTIONS.md)."""

    name: str
    type: str
    default: Any
    help: str
    constraint: str


def _types(cls: type) -> dict[str, tuple[type, bool]]:
    """Field name → (scalar type, may be None), from the dataclass's annotations."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[type, bool]] = {}
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        args = typing.get_args(typ)
        nullable = False
        if typing.get_origin(typ) in (typing.Union, types.UnionType) and type(None) in args:
            rest = [a for a in args if a is not type(None)]
            if len(rest) == 1:
                typ, nullable = rest[0], True
        if typ not in SCALARS:
            raise TypeError(f"{cls.__qualname__}.{f.name}: an option is bool, int, float or str "
                            f"(or one of those | None), not {typ!r}")
        out[f.name] = (typ, nullable)
    return out


def _meta(f: dataclasses.Field) -> dict[str, Any]:
    return f.metadata.get("mmattr", {"help": "", "min": None, "max": None, "above": None,
                                     "below": None, "choices": None})


def _coerce(value: Any, typ: type, nullable: bool, label: str) -> Any:
    """A value of the declared type; strings (from the command line) are parsed."""
    if value is None or (nullable and isinstance(value, str)
                         and value.strip().lower() in _NULL_WORDS):
        if nullable:
            return None
        raise InputError(f"{label} must be {_NOUNS[typ]}, got none")
    wrong = InputError(f"{label} must be {_NOUNS[typ]}{' or none' if nullable else ''}, "
                       f"got {value!r}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise wrong
    if typ is int:
        if isinstance(value, bool):
            raise wrong
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise wrong from None
        raise wrong
    if typ is float:
        if isinstance(value, bool):
            raise wrong
        try:
            out = float(value) if isinstance(value, (int, float, str)) else None
        except ValueError:
            out = None
        if out is None or not math.isfinite(out):
            raise wrong
        return out
    if isinstance(value, os.PathLike):  # a checkpoint path given as a Path
        return os.fspath(value)
    if not isinstance(value, str):
        raise wrong
    return value


def _bounds(meta: Mapping[str, Any]) -> tuple[tuple[str, float] | None, tuple[str, float] | None]:
    """(bracket, value) of the lower and upper bound: min → "[", above → "(", ..."""
    lower = (("[", meta["min"]) if meta.get("min") is not None
             else ("(", meta["above"]) if meta.get("above") is not None else None)
    upper = (("]", meta["max"]) if meta.get("max") is not None
             else (")", meta["below"]) if meta.get("below") is not None else None)
    return lower, upper


def _check_range(value: Any, meta: Mapping[str, Any], label: str) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise InputError(f"{label} must be one of {', '.join(map(str, choices))}, got {value!r}")
    lower, upper = _bounds(meta)
    low_ok = lower is None or (value >= lower[1] if lower[0] == "[" else value > lower[1])
    high_ok = upper is None or (value <= upper[1] if upper[0] == "]" else value < upper[1])
    if low_ok and high_ok:
        return
    if lower is not None and upper is not None:
        raise InputError(f"{label} must be in {_interval(meta)}, got {value}")
    if not low_ok:
        raise InputError(f"{label} must be {'at least' if lower[0] == '[' else 'greater than'} "
                         f"{lower[1]}, got {value}")
    raise InputError(f"{label} must be {'at most' if upper[0] == ']' else 'less than'} "
                     f"{upper[1]}, got {value}")


def _interval(meta: Mapping[str, Any]) -> str:
    """The bounds as a user reads them: ``in (0, 1)``, ``>= 1``, ``< 1``; "" when none."""
    lower, upper = _bounds(meta)
    if lower is not None and upper is not None:
        return f"{lower[0]}{lower[1]}, {upper[1]}{upper[0]}"
    if lower is not None:
        return f"{'>=' if lower[0] == '[' else '>'} {lower[1]}"
    if upper is not None:
        return f"{'<=' if upper[0] == ']' else '<'} {upper[1]}"
    return ""


def check_value(cls: type, name: str, value: Any, label: str) -> Any:
    """One option's value, coerced to its declared type and checked against its bounds."""
    typ, nullable = _types(cls)[name]
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    out = _coerce(value, typ, nullable, label)
    _check_range(out, _meta(f), label)
    return out


def default_label(component: str, kind: str) -> Callable[[str], str]:
    """How errors name an option: ``the rise method's masks``."""
    return lambda name: f"the {component} {kind}'s {name}"


def parse_options(cls: type, data: Mapping[str, Any] | Any = None, *, component: str,
                  kind: str = "component", label: Callable[[str], str] | None = None) -> Any:
    """A mapping of option: value (or an instance of `cls`) → a validated `cls` instance.

    Missing options take their defaults. Errors are one line: an unknown option (with a
    did-you-mean and the options the component takes), a wrong type, a value out of range.
    """
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InputError(f"the options of {component} must be a mapping of option: value, "
                         f"got {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise InputError(unknown_option(component, kind, str(unknown[0]), names))
    name_of = label or default_label(component, kind)
    return cls(**{k: check_value(cls, k, v, name_of(k)) for k, v in data.items()})


def unknown_option(component: str, kind: str, name: str, known: Sequence[str]) -> str:
    """The one-line message for an option a component does not declare."""
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    takes = ", ".join(known) if known else "none"
    return f"the {component} {kind} has no option {name!r}{hint}; it takes {takes}"


def as_dict(options: Any) -> dict[str, Any]:
    """An Options instance as a plain dict (explanation.json, settings)."""
    return dataclasses.asdict(options)


def defaults_of(cls: type) -> dict[str, Any]:
    """Every option of `cls` with its declared default."""
    return {f.name: f.default for f in dataclasses.fields(cls)}


def describe(cls: type) -> list[OptionInfo]:
    """Name, type, default, help and constraint of every option of `cls`."""
    kinds = _types(cls)
    out = []
    for f in dataclasses.fields(cls):
        typ, nullable = kinds[f.name]
        meta = _meta(f)
        out.append(OptionInfo(f.name, typ.__name__ + (" | None" if nullable else ""), f.default,
                              meta.get("help", ""), _constraint(meta)))
    return out


def _constraint(meta: Mapping[str, Any]) -> str:
    parts = []
    if meta.get("choices") is not None:
        parts.append("one of " + ", ".join(map(str, meta["choices"])))
    interval = _interval(meta)
    if interval:
        parts.append(("in " if interval[0] in "[(" else "") + interval)
    return ", ".join(parts)


def parse_assignments(items: Iterable[str], flag: str = "-O") -> dict[str, dict[str, str]]:
    """``["rise.masks=2000", "lazy.batch=8"]`` → ``{"rise": {"masks": "2000"}, ...}``.

    Values stay strings: `parse_options` converts them to the declared types.
    """
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        component, dot, name = key.strip().partition(".")
        if not eq or not dot or not component or not name:
            raise InputError(f"{flag} {item!r}: write COMPONENT.NAME=VALUE, e.g. rise.masks=2000 "
                             "(`mmattr options` lists them)")
        out.setdefault(component, {})[name] = value.strip()
    return out


def merge(base: Mapping[str, Mapping[str, Any]],
          more: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-component options of `more` over those of `base`, option by option."""
    out = {c: dict(v) for c, v in base.items()}
    for component, values in more.items():
        out.setdefault(component, {}).update(values)
    return out


def options_text(rows: Iterable[tuple[str, str, type]]) -> str:
    """``mmattr options``: per component, one line per option (COMPONENT.NAME, type,
    default, bounds, help); components without options are listed as such."""
    lines: list[str] = []
    for kind, component, cls in rows:
        infos = describe(cls)
        lines.append(f"{component} ({kind})" + ("" if infos else ": no options"))
        width = max((len(f"{component}.{i.name}") for i in infos), default=0)
        for i in infos:
            bounds = f" [{i.constraint}]" if i.constraint else ""
            lines.append(f"  {component}.{i.name:<{width - len(component) - 1}}  {i.type} = "
                         f"{_show(i.default)}{bounds}  {i.help}")
    return "\n".join(lines) + "\n"


def options_markdown(rows: Iterable[tuple[str, str, type]]) -> str:
    """The same as a Markdown table (docs/OPTIONS.md is this output)."""
    lines = ["| option | kind | type | default | constraint | what |",
             "|---|---|---|---|---|---|"]
    for kind, component, cls in rows:
        for i in describe(cls):
            cells = [f"`{component}.{i.name}`", kind, f"`{i.type}`", f"`{_show(i.default)}`",
                     i.constraint, i.help]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    """A default as a user would write it (YAML / -O)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
