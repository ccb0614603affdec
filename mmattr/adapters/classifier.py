"""Image classifiers (transformers ViT, ConvNeXt, ResNet, ... or any torch module with a linear
head) as adapters: the head's input is the embedding, the head's weight rows are the classes.

Ref. Dosovitskiy et al., "An Image is Worth 16x16 Words" (ViT), ICLR 2021; Liu et al., "A
ConvNet for the 2020s" (ConvNeXt), CVPR 2022; He et al., "Deep Residual Learning" (ResNet),
CVPR 2016.
"""

from __future__ import annotations

import difflib
import inspect
import weakref
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError, arg
from ..targets import Target
from .base import register_adapter
from ..preprocess import Preprocess
from .base import Adapter, autocast_dtype
from .hf import load_pretrained

#: plain ViT-style classifiers whose patch tokens follow one class token
_VIT_TYPES = ("vit", "deit", "beit", "data2vec-vision", "dinov2", "vit_msn", "vit_mae")
#: the homogeneous coordinate appended to the features (see `LinearHeadAdapter`)
_EPS = 1e-4


def last_linear(module: nn.Module, out_features: int | None = None) -> nn.Linear:
    """The classification head: the last ``nn.Linear`` (with `out_features` outputs if given)."""
    found = None
    for m in module.modules():
        if isinstance(m, nn.Linear) and (out_features is None or m.out_features == out_features):
            found = m
    if found is None:
        raise ModelError(f"{type(module).__name__} has no linear classification head"
                         + (f" with {out_features} outputs" if out_features else ""))
    return found


class _HookOwner:
    """Held by an adapter and its shallow views (`api.with_templates`): when the last of them
    is collected, its head hook is removed."""


class HeadInput:
    """A forward pre-hook on a classifier's head that keeps the head's input, only while its
    own adapter runs the model (`catch`). It holds no reference to the adapter, so a module
    wrapped many times (``explain(model=module)`` in a loop) keeps no adapter alive and collects
    nothing for adapters that are not running; a deep copy of the module and adapter together
    (Quantus's randomisation tests) copies the hook with them."""

    def __init__(self) -> None:
        self.active = False
        self.value: torch.Tensor | None = None

    def __call__(self, _module: nn.Module, args: tuple) -> None:
        if self.active:
            self.value = args[0]

    def attach(self, head: nn.Module) -> _HookOwner:
        """Hook `head`; keep the returned owner on the adapter: the hook goes with it."""
        owner = _HookOwner()
        weakref.finalize(owner, head.register_forward_pre_hook(self).remove)
        return owner

    def catch(self, run: Callable[[], object]) -> torch.Tensor | None:
        """Run the model; the head's input, or None when the head was not called."""
        self.active, self.value = True, None
        try:
            run()
            return self.value
        finally:
            self.active, self.value = False, None


class LinearHeadAdapter(Adapter):
    """A classifier ending in a linear head z = W·f + b, seen as an embedding model.

    The image embedding is the head's input f, extended by a constant ε: e = [f, ε]. The
    region stack unit-normalises embeddings; f stays recoverable as e[:D]·ε/e[D], so
    `logits` gives the classifier's exact logits (and its softmax is the classifier's own
    probability), while cosines to a class row [W_k, 0] differ from cos(f, W_k) by a factor
    |f|/√(|f|²+ε²), under 1e-6 for features of any practical norm. Class k's target embedding
    is its weight row, unit-normalised; its vocabulary row is [W_k, b_k/ε] (not unit-norm: use
    `logits`, not a dot product, to compare with it).
    """

    head: nn.Linear

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) → (B, D) head input, differentiable."""
        raise NotImplementedError

    def _setup_head(self, head: nn.Linear, class_names: Sequence[str] | None, vocab_key: str) -> None:
        self.head = head
        k = head.out_features
        names = [str(n) for n in class_names] if class_names else [str(i) for i in range(k)]
        if len(names) != k:
            raise ModelError(f"{len(names)} class names for a head with {k} outputs")
        self.class_names = names
        self._lower = {n.lower(): i for i, n in enumerate(names)}
        self._synonyms: dict[str, int] = {}
        for i, n in enumerate(names):  # ImageNet labels list synonyms: "tench, Tinca tinca"
            for part in n.split(","):
                self._synonyms.setdefault(part.strip().lower(), i)
        # its own class list is its default vocabulary: `load_vocabulary` reads `class_names`
        self.default_vocabulary = vocab_key

    # -- embeddings -------------------------------------------------------------------------
    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            f = self._features(pixels.to(self.device)).float()
        return torch.cat([f, torch.full_like(f[:, :1], _EPS)], dim=1)

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward_images(pixels)

    def logits(self, emb: torch.Tensor, vocabulary: torch.Tensor) -> torch.Tensor:
        emb = emb.float()
        return (emb @ vocabulary.T.float()) * (_EPS / emb[:, -1:])

    def class_logits(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, D+1) embeddings → (B, K) logits of every class (the model's own output)."""
        return self.logits(emb, self._rows(range(len(self.class_names))))

    def _rows(self, indices) -> torch.Tensor:
        idx = torch.as_tensor(list(indices), dtype=torch.long, device=self.head.weight.device)
        w = self.head.weight.detach().float()[idx]
        b = (self.head.bias.detach().float()[idx] if self.head.bias is not None
             else torch.zeros(len(idx), device=w.device))
        return torch.cat([w, (b / _EPS)[:, None]], dim=1).to(self.device)

    # -- classes ----------------------------------------------------------------------------
    def class_index(self, cls: str | int) -> int:
        """A class by index or name (exact, case-insensitive, or one of its comma-separated
        synonyms); an unknown name is one line with the closest names."""
        k = len(self.class_names)
        if isinstance(cls, int) or (isinstance(cls, str) and cls.strip().isdigit()):
            i = int(cls)
            if not 0 <= i < k:
                raise ModelError(f"class index {i} is out of range: model {self.spec!r} has "
                                 f"{k} classes (0 to {k - 1})")
            return i
        name = str(cls).strip()
        for table, key in ((self._lower, name.lower()), (self._synonyms, name.lower())):
            if key in table:
                return table[key]
        # a name and its lower-cased synonym match alike: each class is suggested once
        table = {**self._synonyms, **self._lower}
        close = difflib.get_close_matches(name.lower(), list(table), n=10, cutoff=0.5)
        classes = list(dict.fromkeys(table[c] for c in close))[:3]
        hint = (f"; did you mean {', '.join(repr(self.class_names[i]) for i in classes)}?"
                if classes else "")
        raise ModelError(f"class {name!r} is not one of the {k} classes of model "
                         f"{self.spec!r}{hint} (a class index 0 to {k - 1} works too)")

    def vocabulary_label(self, target: Target) -> str:
        if target.kind == "class" and target.class_name is not None:
            return self.class_names[self.class_index(target.class_name)]
        return target.label

    @torch.inference_mode()
    def class_embeddings(self, classes: Sequence[str | Sequence[str]], chunk: int = 256,
                         templates: Sequence[str] | None = None) -> torch.Tensor:
        """(K, D+1) head rows [W_k, b_k/ε] of the named classes, for `logits`."""
        idx = []
        for cls in classes:
            if not isinstance(cls, (str, int)):
                raise ModelError(f"model {self.spec!r} is a classifier: a vocabulary entry is one "
                                 "class name, not a list of prompts")
            idx.append(self.class_index(cls))
        return self._rows(idx)

    @torch.inference_mode()
    def encode_target(self, target: Target) -> torch.Tensor:
        if target.kind == "text":
            raise ModelError(f"model {self.spec!r} is an image classifier without a text encoder: "
                             f"give {arg('class_name', 'NAME|INDEX')} (one of its "
                             f"{len(self.class_names)} classes), {arg('target_image')} or "
                             f"{arg('target_embedding')} instead of {arg('text')}")
        if target.kind == "class":
            row = self._rows([self.class_index(target.class_name)])[0]
            return F.normalize(torch.cat([row[:-1], row.new_zeros(1)]), dim=0)
        if target.kind == "embedding":
            vec = torch.as_tensor(target.embedding, dtype=torch.float32, device=self.device)
            d = self.head.in_features
            if vec.shape[0] == d:  # a vector in the head's feature space
                vec = torch.cat([vec, vec.new_zeros(1)])
            if vec.shape[0] != d + 1:
                raise ModelError(f"the target embedding has {vec.shape[0]} dimensions, the "
                                 f"features of model {self.spec!r} have {d}")
            return F.normalize(vec, dim=0)
        return super().encode_target(target)

    def describe(self) -> dict:
        return {**super().describe(), "templates": [], "classes": len(self.class_names),
                "embedding": f"head input ({self.head.in_features}) + homogeneous coordinate"}


class HFClassifierAdapter(LinearHeadAdapter):
    """Any transformers ``AutoModelForImageClassification``; classes from ``config.id2label``."""

    def __init__(self, ident: str, device: torch.device, dtype: str = "auto") -> None:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        if not ident:
            raise ModelError("the hf-classifier spec needs a hub id or a folder, "
                             "e.g. hf-classifier:google/vit-base-patch16-224")
        self.autocast_dtype = autocast_dtype(dtype, device)
        model = load_pretrained(AutoModelForImageClassification, ident, "the classifier",
                                family="hf-classifier")
        processor = load_pretrained(AutoImageProcessor, ident, "the image processor",
                                    family="hf-classifier")
        self.preprocess = Preprocess.from_config(processor.to_dict())
        self.device = device
        self.model = model.to(device).eval().requires_grad_(False)
        cfg = model.config
        k = int(cfg.num_labels)
        id2label = getattr(cfg, "id2label", None) or {}
        names = [str(id2label.get(i, id2label.get(str(i), i))) for i in range(k)]
        self._setup_head(last_linear(model, k), names, f"hf-classifier:{ident} classes")
        self._head_input = HeadInput()
        self._hook = self._head_input.attach(self.head)
        self._kwargs: dict = {}
        size = getattr(cfg, "image_size", None)
        params = inspect.signature(model.forward).parameters
        if (isinstance(size, int) and "interpolate_pos_encoding" in params
                and tuple(self.preprocess.output_hw) != (size, size)):
            self._kwargs["interpolate_pos_encoding"] = True

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        f = self._head_input.catch(lambda: self.model(pixel_values=pixels, **self._kwargs))
        if f is None:
            raise ModelError(f"the head of {type(self.model).__name__} was not called by its forward")
        return f.reshape(f.shape[0], -1)

    def vision_module(self) -> nn.Module:
        return self.model

    def token_grid(self) -> tuple[int, int, int] | None:
        patch = getattr(self.model.config, "patch_size", None)
        if not isinstance(patch, int) or self.model.config.model_type not in _VIT_TYPES:
            return None
        h, w = self.preprocess.output_hw
        # DeiT's distilled variant carries a distillation token after the class token.
        prefix = 2 if "Teacher" in type(self.model).__name__ else 1
        return h // patch, w // patch, prefix


@register_adapter("hf-classifier", syntax="hf-classifier:<hub id or folder>",
                  requires=("transformers",),
                  help="any transformers image classifier (ViT, ConvNeXt, ResNet, ...); "
                       "targets by class index or label name")
def _hf_classifier(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    return HFClassifierAdapter(arg, device=device, dtype=dtype)
