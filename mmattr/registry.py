"""Decorator registries: one per concept, so the CLI and the configs take their choices from them."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, TypeVar

from .errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of factories (classes or functions) for one concept."""

    def __init__(self, kind: str, providers: tuple[str, ...] = ()) -> None:
        self.kind = kind
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
            self._items[name] = obj
            doc = help or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            self._help[name] = doc
            return obj

        return decorator

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

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items
