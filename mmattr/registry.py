"""Decorator registries: one per concept, so the CLI and the configs take their choices from them.

Dividers, searches and methods are *components*: each declares typed ``Options``
(mmattr.options) and is named in ``-O COMPONENT.NAME=VALUE`` and the YAML ``options:`` section,
so a component name is unique across those registries (`find_component` looks it up).
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, TypeVar

from .errors import InputError
from .options import NoOptions

T = TypeVar("T")

#: the registries of configurable components (division, search, method), in creation order;
#: each adds itself when its module creates it (`Registry(..., components=True)`)
_COMPONENT_REGISTRIES: list["Registry"] = []
#: the modules that create them. They live above this module, so they are imported by name on
#: the first lookup, the route `providers` takes for the ``prior`` division (a plugin, not an
#: import edge: config validation never makes division, search or explainers import config)
COMPONENT_MODULES: tuple[str, ...] = ("mmattr.division", "mmattr.search", "mmattr.explainers",
                                      "mmattr.elements")


class Registry(Generic[T]):
    """A named table of factories (classes or functions) for one concept."""

    def __init__(self, kind: str, providers: tuple[str, ...] = (), *,
                 components: bool = False) -> None:
        self.kind = kind
        self.components = components
        if components:
            _COMPONENT_REGISTRIES.append(self)
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}
        #: modules holding built-in entries that live above this registry's module (the
        #: ``prior`` division runs an explainer); imported on the first lookup, as plugins
        self._providers = list(providers)

    def _load(self) -> None:
        while self._providers:
            import importlib

            importlib.import_module(self._providers.pop())

    def register(self, name: str, *, help: str = "") -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if self.components:  # COMPONENT.NAME must say which one
                for other in _COMPONENT_REGISTRIES:
                    if other is not self and name in other._items:
                        raise ValueError(f"{self.kind} {name!r}: a {other.kind} has that name; "
                                         "component names are unique")
            self._items[name] = obj
            doc = help or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            self._help[name] = doc
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Remove an entry (a plugin unloaded, a test's throwaway component); absent is fine."""
        self._items.pop(name, None)
        self._help.pop(name, None)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise InputError(f"unknown {self.kind} {name!r}{hint}; choose from "
                             f"{', '.join(self.names())}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def help(self, name: str) -> str:
        self._load()
        return self._help.get(name, "")

    def options(self, name: str) -> type:
        """The entry's declared ``Options`` dataclass (`NoOptions` when it declares none)."""
        return getattr(self.get(name), "Options", NoOptions)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items


def component_registries() -> list[Registry]:
    """Every component registry (division, search, method, modality), their modules imported
    first."""
    import importlib

    for module in COMPONENT_MODULES:
        importlib.import_module(module)
    # a fixed order (listing, docs/OPTIONS.md), whichever module happened to be imported first
    order = ("division", "search", "method", "modality")
    return sorted(_COMPONENT_REGISTRIES,
                  key=lambda r: order.index(r.kind) if r.kind in order else len(order))


def find_component(name: str) -> Registry:
    """The registry holding the component `name` (a divider, search or method), or a one-line
    error with a did-you-mean over every component name."""
    registries = component_registries()
    for registry in registries:
        if name in registry:
            return registry
    known = sorted(n for r in registries for n in r.names())
    close = difflib.get_close_matches(str(name), known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise InputError(f"unknown component {name!r} in options{hint}; a division, search, "
                     f"method or modality: {', '.join(known)}")


def declared_options(component: str | None = None) -> list[tuple[str, str, type]]:
    """(kind, name, Options class) of every component, or of one (``mmattr options NAME``)."""
    if component is not None:
        registry = find_component(component)
        return [(registry.kind, component, registry.options(component))]
    return [(r.kind, name, r.options(name)) for r in component_registries() for name in r.names()]
