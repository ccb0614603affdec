"""Any ``torch.nn.Module`` as an adapter: a classifier with a linear head, or an image encoder
(optionally with a text encoder), with its preprocessing.

Spec ``torch:<module>:<factory>`` imports `module` (a dotted name or a ``.py`` file) and calls
``factory()``, which returns an `Adapter` (e.g. built with `from_module`) or a bare module
(taken as a classifier with ImageNet preprocessing at 224 px). A module names its classes with
a ``class_names`` attribute (a list, index → name), read by `from_module` and by the spec
alike. From Python, `from_module` wraps a module directly (``mmattr.explain(...,
model=module)`` does it for you):

>>> adapter = from_module(torchvision.models.resnet18(weights=...), size=224)
>>> mmattr.explain("cat.png", class_name="tabby cat", model=adapter)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import InputError, ModelError
from .base import register_adapter
from ..preprocess import Preprocess
from .base import Adapter, autocast_dtype
from .classifier import HeadInput, LinearHeadAdapter, last_linear

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def make_preprocess(size: int | tuple[int, int] = 224, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD, resize: int | None = None,
                    resample: str = "bilinear") -> Preprocess:
    """Resize the short side to `resize` (default: `size`), centre-crop to `size`, normalise."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    return Preprocess(shortest_edge=int(resize or min(hw)), resize_hw=None, crop_hw=hw,  # type: ignore[arg-type]
                      mean=tuple(mean), std=tuple(std), resample=resample)  # type: ignore[arg-type]


def module_token_grid(module: nn.Module, input_hw: tuple[int, int]) -> tuple[int, int, int] | None:
    """(rows, cols, prefix tokens) of a ViT module's patch tokens: timm's ``patch_embed.grid_size``
    and ``num_prefix_tokens``, or a transformers ``config.patch_size``; None for CNNs."""
    grid = getattr(getattr(module, "patch_embed", None), "grid_size", None)
    if grid is not None:
        return int(grid[0]), int(grid[1]), int(getattr(module, "num_prefix_tokens", 1))
    config = getattr(module, "config", None)
    patch = getattr(getattr(config, "vision_config", config), "patch_size", None)
    if not patch:
        return None
    ph, pw = (patch, patch) if isinstance(patch, int) else tuple(patch)
    return input_hw[0] // ph, input_hw[1] // pw, 1


class TorchClassifierAdapter(LinearHeadAdapter):
    """A torch classifier; the input of its linear head (`head`, default the last
    ``nn.Linear``) is the embedding."""

    def __init__(self, module: nn.Module, preprocess: Preprocess, device: torch.device,
                 head: nn.Linear | str | None = None, class_names: Sequence[str] | None = None,
                 dtype: str = "auto", name: str = "") -> None:
        self.autocast_dtype = autocast_dtype(dtype, device)
        self.preprocess = preprocess
        self.device = device
        self.module = module.to(device).eval().requires_grad_(False)
        if isinstance(head, str):
            head = self.module.get_submodule(head)  # type: ignore[assignment]
        head = head if head is not None else last_linear(self.module)
        if not isinstance(head, nn.Linear):
            raise ModelError(f"the head of {type(module).__name__} must be an nn.Linear")
        if class_names is None:  # a module may name its classes itself
            class_names = module_class_names(module)
        self._setup_head(head, class_names, f"torch:{name or type(module).__name__} classes")
        self._head_input = HeadInput()
        self._hook = self._head_input.attach(head)

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        f = self._head_input.catch(lambda: self.module(pixels))
        if f is None:
            raise ModelError(f"the head of {type(self.module).__name__} was not called by its forward")
        return f.reshape(f.shape[0], -1)

    def vision_module(self) -> nn.Module:
        return self.module

    def token_grid(self) -> tuple[int, int, int] | None:
        return module_token_grid(self.module, self.preprocess.output_hw)


class TorchEncoderAdapter(Adapter):
    """A torch image encoder ``module(pixels) -> (B, D)``; `encode_texts`, if given, maps a
    list of prompts to (P, D) embeddings in the same space."""

    def __init__(self, module: nn.Module, preprocess: Preprocess, device: torch.device,
                 encode_texts: Callable[[list[str]], torch.Tensor] | None = None,
                 dtype: str = "auto", logit_scale: float = 100.0) -> None:
        self.autocast_dtype = autocast_dtype(dtype, device)
        self.preprocess = preprocess
        self.device = device
        self.module = module.to(device).eval().requires_grad_(False)
        self._text = encode_texts
        self.logit_scale = logit_scale

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            out = self.module(pixels.to(self.device))
        if not torch.is_tensor(out) or out.ndim != 2:
            raise ModelError(f"{type(self.module).__name__} must return (B, D) embeddings, got "
                             f"{getattr(out, 'shape', type(out).__name__)}")
        return out.float()

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward_images(pixels)

    @torch.inference_mode()
    def encode_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        if self._text is None:
            return super().encode_texts(prompts)
        with self.autocast():
            return torch.as_tensor(self._text(list(prompts))).to(self.device).float()

    def vision_module(self) -> nn.Module:
        return self.module

    def token_grid(self) -> tuple[int, int, int] | None:
        return module_token_grid(self.module, self.preprocess.output_hw)


def module_class_names(module: nn.Module) -> list[str] | None:
    """The class names a module declares in a ``class_names`` attribute (index → name)."""
    names = getattr(module, "class_names", None)
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(n, (str, int)) for n in names):
        raise ModelError(f"{type(module).__name__}.class_names must be a list of names, one "
                         "per output of its head")
    return [str(n) for n in names]


def from_module(module: nn.Module, preprocess: Preprocess | None = None, *,
                kind: str = "classifier", size: int | tuple[int, int] = 224,
                mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                head: nn.Linear | str | None = None, class_names: Sequence[str] | None = None,
                encode_texts: Callable[[list[str]], torch.Tensor] | None = None,
                device: str | torch.device = "auto", dtype: str = "auto") -> Adapter:
    """Wrap any `module` as an adapter; the Python-API hook of the ``torch`` family.

    `kind` ``classifier``: the input of its linear head (`head`, a module or its dotted name;
    default the last ``nn.Linear``) is the embedding, `class_names` name its outputs (default:
    the module's own ``class_names`` attribute, else the indices).
    `kind` ``encoder``: ``module(pixels)`` is the (B, D) embedding; `encode_texts` adds a
    text tower. Preprocessing: `preprocess`, or resize + centre crop to `size` with `mean`
    and `std`.
    """
    from .base import resolve_device

    dev = resolve_device(device)
    pre = preprocess or make_preprocess(size, mean, std)
    if kind == "classifier":
        adapter: Adapter = TorchClassifierAdapter(module, pre, dev, head=head,
                                                  class_names=class_names, dtype=dtype)
    elif kind == "encoder":
        adapter = TorchEncoderAdapter(module, pre, dev, encode_texts=encode_texts, dtype=dtype)
    else:
        raise InputError(f"unknown module kind {kind!r}; use classifier or encoder")
    adapter.spec = f"torch:{type(module).__name__}"
    return adapter


def _import(module: str):
    path = Path(module).expanduser()
    if module.endswith(".py"):
        if not path.is_file():
            raise ModelError(f"module file not found: {path}")
        name = f"_mmattr_user_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)  # type: ignore[union-attr]
        except Exception as exc:  # the user's code: any failure is theirs, reported in one line
            raise ModelError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
        return mod
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(f"cannot import module {module!r}: {exc}") from None


@register_adapter("torch", syntax="torch:<module or file.py>:<factory>", requires=("torch",),
                  help="any nn.Module classifier or encoder: factory() returns an Adapter "
                       "(mmattr.from_module) or a module (its class_names attribute names "
                       "its classes)")
def _torch(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    module, sep, factory = arg.rpartition(":")
    if not sep or not module or not factory:
        raise InputError(f"the torch spec needs a module and a factory, e.g. "
                         f"torch:mypkg.models:build or torch:model.py:build, got torch:{arg}")
    fn = getattr(_import(module), factory, None)
    if not callable(fn):
        raise ModelError(f"{module!r} has no callable {factory!r}")
    try:
        made = fn()
    except Exception as exc:  # the user's factory
        raise ModelError(f"{module}:{factory}() failed: {type(exc).__name__}: {exc}") from None
    if isinstance(made, Adapter):
        made.device = made.device if made.device.type == device.type else device
        if isinstance(made, (TorchClassifierAdapter, TorchEncoderAdapter)):
            made.module.to(made.device)
            made.autocast_dtype = autocast_dtype(dtype, made.device)
        return made
    if isinstance(made, nn.Module):
        return TorchClassifierAdapter(made, make_preprocess(), device, dtype=dtype,
                                      name=f"{module}:{factory}")
    raise ModelError(f"{module}:{factory}() returned {type(made).__name__}; return an "
                     "mmattr Adapter (mmattr.adapters.from_module) or an nn.Module")
