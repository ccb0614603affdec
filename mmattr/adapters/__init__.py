"""Adapters: every model family behind one interface, chosen by a spec such as ``hf:FOLDER``."""

from __future__ import annotations

from collections import OrderedDict

import torch

from ..errors import InputError, arg
from .base import (ADAPTERS, Adapter, AdapterFamily, list_adapters, register_adapter,
                   resolve_device, split_spec)


class AdapterCache:
    """Loaded adapters by (family, argument, device, dtype), least recently used dropped first.

    An explicit object with a bound: `load_adapter` uses the module's `DEFAULT_CACHE` (at most
    `maxsize` models in memory, 2 by default); pass ``cache=AdapterCache(...)`` to own one, or
    ``cache=None`` to load afresh. A cached adapter is returned as it is: the cache never
    changes its attributes.
    """

    def __init__(self, maxsize: int = 2) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        self.maxsize = int(maxsize)
        self._items: OrderedDict[tuple, Adapter] = OrderedDict()

    def get_or_load(self, key: tuple, load) -> Adapter:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        adapter = load()
        if self.maxsize:
            self._items[key] = adapter
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return adapter

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


#: the cache `load_adapter` uses unless given another; bounded, see `AdapterCache`
DEFAULT_CACHE = AdapterCache(maxsize=2)
_DEFAULT = object()


def load_adapter(spec: str | Adapter = "demo", device: str | torch.device = "auto",
                 dtype: str = "auto", *, cache: AdapterCache | None = _DEFAULT) -> Adapter:  # type: ignore[assignment]
    """Load the adapter a spec names; the bounded `DEFAULT_CACHE` (or `cache`) reuses models.

    >>> adapter = load_adapter("demo")            # the embedded demo CLIP
    >>> adapter = load_adapter("hf:/models/clip")  # any transformers CLIP folder or hub id
    """
    if isinstance(spec, Adapter):
        return spec
    if isinstance(spec, torch.nn.Module):  # wrapped as `from_module` does (never cached)
        return module_adapter(spec, device, dtype)
    if not isinstance(spec, str):
        raise InputError(f"{arg('model')} takes a spec (demo, hf:FOLDER, ...), an mmattr Adapter "
                         f"or a torch nn.Module, not a {type(spec).__name__}")
    name, spec_arg = split_spec(spec)
    if name not in ADAPTERS and ("/" in name or "\\" in name):
        raise InputError(f"unknown model family in {spec!r}: a hub id or a folder needs its family "
                         f"first, e.g. {arg('model', 'hf:' + spec)} (or hf-classifier:{spec} for "
                         "a classifier)")
    family = ADAPTERS.get(name)
    dev = resolve_device(device)
    key = (name, spec_arg, str(dev), dtype)

    def load() -> Adapter:
        adapter = family.factory(spec_arg, device=dev, dtype=dtype)
        adapter.spec = spec  # named at construction only; a cached adapter is never changed
        return adapter

    if cache is _DEFAULT:
        cache = DEFAULT_CACHE
    return load() if cache is None else cache.get_or_load(key, load)


from . import classifier, demo, hf, imagebind, openclip, torch_module  # noqa: E402,F401  (register the built-in families)
from .torch_module import from_module  # noqa: E402


def module_adapter(module: torch.nn.Module, device: str | torch.device = "auto",
                   dtype: str = "auto") -> Adapter:
    """A bare ``nn.Module`` given as the model: a classifier wrapped as `from_module` does
    (class names from its ``class_names`` attribute, ImageNet preprocessing at 224 px); anything
    else is one line that names `from_module`."""
    from ..errors import ModelError

    try:
        return from_module(module, device=device, dtype=dtype)
    except ModelError as exc:
        raise ModelError(f"{arg('model')} got a {type(module).__name__} module that cannot be "
                         f"taken as a classifier ({exc}); wrap it with mmattr.from_module(module, "
                         "kind='encoder', size=..., mean=..., std=...) and pass the adapter "
                         "instead") from None

__all__ = ["Adapter", "AdapterCache", "AdapterFamily", "ADAPTERS", "DEFAULT_CACHE",
           "register_adapter", "list_adapters", "load_adapter", "resolve_device",
           "list_model_families", "from_module", "split_spec"]


def list_model_families() -> list[dict]:
    """One row per registered family: name, spec syntax, extra, installed, help."""
    import importlib.util

    rows = []
    for name in ADAPTERS.names():
        fam = ADAPTERS.get(name)
        installed = all(importlib.util.find_spec(m) is not None for m in fam.requires)
        rows.append({"name": name, "syntax": fam.syntax, "extra": fam.extra,
                     "installed": installed, "help": fam.help,
                     "install": (None if installed else fam.install or (
                                 f"pip install 'mmattr[{fam.extra}]'" if fam.extra else None))})
    return rows
