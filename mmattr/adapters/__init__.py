"""Adapters: every model family behind one interface, chosen by a spec such as ``hf:FOLDER``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import InputError
from ..registry import Registry
from .base import Adapter


@dataclass(frozen=True)
class AdapterFamily:
    """A registered model family: how to build an adapter from the part of the spec after ':'."""

    name: str
    factory: Callable[..., Adapter]
    syntax: str
    extra: str | None
    requires: tuple[str, ...]
    help: str
    #: the command that installs what `requires` names, when it is not a pip extra of mmattr
    install: str | None = None


ADAPTERS: Registry[AdapterFamily] = Registry("model family")
_CACHE: dict[tuple, Adapter] = {}


def register_adapter(name: str, *, syntax: str, help: str, extra: str | None = None,
                     requires: tuple[str, ...] = (), install: str | None = None) -> Callable:
    """Register a factory ``f(arg: str, device: torch.device, dtype: str) -> Adapter``."""

    def decorator(factory: Callable[..., Adapter]) -> Callable[..., Adapter]:
        ADAPTERS.register(name, help=help)(AdapterFamily(name, factory, syntax, extra, requires,
                                                         help, install))
        return factory

    return decorator


def list_adapters() -> list[str]:
    return ADAPTERS.names()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA device is available")
    if device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise InputError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def split_spec(spec: str) -> tuple[str, str]:
    """``hf:/a/b`` → (``hf``, ``/a/b``); ``demo`` → (``demo``, ``'')."""
    if not spec or not spec.strip():
        raise InputError("the model spec is empty; try --model demo")
    name, _, arg = spec.partition(":")
    return name.strip(), arg.strip()


def load_adapter(spec: str | Adapter = "demo", device: str | torch.device = "auto",
                 dtype: str = "auto") -> Adapter:
    """Load (once; later calls reuse it) the adapter a spec names.

    >>> adapter = load_adapter("demo")            # the embedded demo CLIP
    >>> adapter = load_adapter("hf:/models/clip")  # any transformers CLIP folder or hub id
    """
    if isinstance(spec, Adapter):
        return spec
    name, arg = split_spec(spec)
    if name not in ADAPTERS and ("/" in name or "\\" in name):
        raise InputError(f"unknown model family in {spec!r}: a hub id or a folder needs its family "
                         f"first, e.g. --model hf:{spec} (or hf-classifier:{spec} for a classifier)")
    family = ADAPTERS.get(name)
    dev = resolve_device(device)
    key = (name, arg, str(dev), dtype)
    if key not in _CACHE:
        adapter = family.factory(arg, device=dev, dtype=dtype)
        adapter.spec = spec
        _CACHE[key] = adapter
    return _CACHE[key]


from . import classifier, demo, hf, imagebind, openclip, torch_module  # noqa: E402,F401  (register the built-in families)
from .torch_module import from_module  # noqa: E402

__all__ = ["Adapter", "AdapterFamily", "ADAPTERS", "register_adapter", "list_adapters",
           "load_adapter", "resolve_device", "list_model_families", "from_module"]


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
