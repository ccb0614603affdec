"""ψ and G: a model cut at layer ψ into its feature map and the head after it.

`LayerHead` reads ψ(x) with a forward hook on the layer of the adapter's vision module, and
evaluates the head G(t) for any feature map t by running the model with that layer's output
replaced by t (a forward hook that returns t), so G is exactly the network's own code after ψ:
a CNN's later stages and fully connected layers, a ViT's last blocks and classifier, or a CLIP
tower's last blocks, projection and scaled cosine to the class text embeddings. Hooks are
always removed, even on errors.

Ref. Lam et al., "Finding Representative Interpretations on Convolutional Neural Networks",
ICCV 2021 (ψ and G, section 3.1).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..adapters.base import Adapter
from ..errors import InputError, ModelError
from ..explainers.cam import _BLOCK_NORM, capture, get_layer

#: relative error above which G(ψ(x)) is not the model's own output F(x)
CUT_TOLERANCE = 1e-3


@contextmanager
def replaced_output(layer: nn.Module, value: torch.Tensor) -> Iterator[None]:
    """While inside, `layer` returns `value` (its tuple's first item for tuple outputs)."""

    def hook(_module, _inputs, output):
        # a copy: later in-place ops of the model (residual `+=`) must not touch `value`
        if isinstance(output, (tuple, list)):
            return (value.to(output[0].dtype).clone(),) + tuple(output[1:])
        return value.to(output.dtype).clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def class_names_of(adapter: Adapter, vocabulary: str | Sequence[str] | None) -> list[str]:
    """The classes G scores: a classifier's own, else the vocabulary (zero-shot heads)."""
    from ..vocabulary import load_vocabulary

    if vocabulary is not None and not isinstance(vocabulary, str):
        names = [str(v) for v in vocabulary]
    elif vocabulary is not None:
        names = load_vocabulary(vocabulary)
    elif adapter.class_names:
        names = list(adapter.class_names)
    elif adapter.default_vocabulary:
        names = load_vocabulary(adapter.default_vocabulary)
    else:
        raise InputError(f"model {adapter.spec!r} has no class list: give the classes of its "
                         "zero-shot head with --vocabulary (a file, 'shapes' or 'imagenet')")
    if len(names) < 2:
        raise InputError("Representative Interpretations need at least two classes")
    return names


def to_pixels(adapter: Adapter, images: Sequence[np.ndarray]) -> torch.Tensor:
    """(H, W, 3) uint8 images → (B, 3, h, w) model input; same-size images in one call."""
    pre, dev = adapter.preprocess, adapter.device
    if len({im.shape for im in images}) == 1:
        return pre(torch.from_numpy(np.stack(images)).to(dev))
    return torch.cat([pre(torch.from_numpy(np.ascontiguousarray(im))[None].to(dev))
                      for im in images])


class LayerHead:
    """The model as F = G ∘ ψ, cut at the module `layer` of `adapter.vision_module()`.

    `features(pixels)` gives (ψ(x), F(x)); `logits(t)` gives G(t), differentiable in t.
    Logits are the classifier's own, or logit_scale · cosine to the class text embeddings of
    `class_names` for contrastive models.
    """

    def __init__(self, adapter: Adapter, layer: str, class_names: Sequence[str]) -> None:
        module = adapter.vision_module()
        if module is None:
            raise ModelError(f"model {adapter.spec!r} exposes no vision module (torch module): "
                             "Representative Interpretations read and replace one of its layers")
        self.adapter = adapter
        self.module = module
        self.layer_name = layer
        self.layer = get_layer(module, layer)
        self.class_names = list(class_names)
        with torch.inference_mode():
            vocab = adapter.class_embeddings(self.class_names)
        self.vocab = vocab.clone()  # a normal tensor: autograd may save it for backward

    def pixels(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        return to_pixels(self.adapter, images)

    # -- ψ and G -----------------------------------------------------------------------------
    def features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ψ(x) float32, F(x) logits) for a batch of model inputs."""
        with torch.inference_mode(), capture(self.layer, clone=True) as seen:
            emb = self.adapter.encode_images(pixels)
            if not seen:
                raise ModelError(f"layer {self.layer_name!r} was not called by the model's "
                                 "forward pass; name a layer of the image tower")
            psi = seen[-1]
        if not torch.is_tensor(psi):
            raise ModelError(f"layer {self.layer_name!r} returns {type(psi).__name__}, not a "
                             "tensor; pick a block or stage whose output is a feature map")
        return psi.float(), self.adapter.logits(emb, self.vocab).float()

    def logits(self, psi: torch.Tensor) -> torch.Tensor:
        """G(t): (B, *ψ shape) → (B, K) logits; the layers before ψ see a black input."""
        h, w = self.adapter.preprocess.output_hw
        dummy = torch.zeros(psi.shape[0], 3, h, w, device=self.adapter.device)
        with replaced_output(self.layer, psi):
            emb = self.adapter.forward_images(dummy)
        return self.adapter.logits(emb, self.vocab).float()

    def check_cut(self, psi: torch.Tensor, logits: torch.Tensor) -> None:
        """G(ψ(x)) must equal F(x): else the output also depends on the input through another
        path (a residual connection around the layer) and G is not a function of ψ."""
        with torch.inference_mode():
            again = self.logits(psi)
        err = float((again - logits).abs().max() / (logits.abs().max() + 1e-6))
        if not err < CUT_TOLERANCE:
            raise ModelError(f"layer {self.layer_name!r} does not cut the model in two: its "
                             "output alone does not determine the prediction (a residual path "
                             "bypasses it); pick a block or stage output")

    def grid(self, t: torch.Tensor) -> torch.Tensor:
        """ψ-shaped tensors (B, C, h, w) or ViT tokens (B, T, C) → (B, C, gh, gw) spatial maps
        (prefix tokens dropped, the grid from the model's config)."""
        if t.dim() == 4:
            return t
        if t.dim() == 3:
            grid = self.adapter.token_grid()
            if grid is None:
                raise ModelError(f"layer {self.layer_name!r} gives tokens but model "
                                 f"{self.adapter.spec!r} has no known token grid")
            gh, gw, prefix = grid
            if t.shape[1] != prefix + gh * gw:
                raise ModelError(f"layer {self.layer_name!r} has {t.shape[1]} tokens, not the "
                                 f"{prefix} + {gh}×{gw} of the model's grid")
            return t[:, prefix:].reshape(t.shape[0], gh, gw, t.shape[2]).permute(0, 3, 1, 2)
        raise ModelError(f"layer {self.layer_name!r} gives a {t.dim()}-D output "
                         f"{tuple(t.shape)}; pick a convolutional stage or a transformer block")


def candidate_layers(adapter: Adapter, probe: torch.Tensor) -> list[str]:
    """Layers worth trying as ψ, latest first.

    Transformers: the block outputs before the last block (psi at the last block output
    leaves only the class token in G, and an empty heat map). CNNs: every module with a
    spatial (B, C, h, w) output in execution order, the outermost of modules returning the
    same tensor (a stage rather than its last activation).
    """
    module = adapter.vision_module()
    if module is None:
        raise ModelError(f"model {adapter.spec!r} exposes no vision module (torch module): "
                         "Representative Interpretations read and replace one of its layers")
    paths = {_block_path(name) for name, _ in module.named_modules()
             if "text" not in name and _BLOCK_NORM.search(name)}
    if paths:
        ordered = sorted(paths, key=lambda p: int(p.rsplit(".", 1)[1]))
        return list(reversed(ordered[:-1]))
    seen: list[tuple[str, torch.Tensor]] = []

    def record(name: str):
        def hook(_m, _i, out):
            out = out[0] if isinstance(out, (tuple, list)) and out else out
            if torch.is_tensor(out) and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1:
                seen.append((name, out))
        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in module.named_modules() if name]
    try:
        with torch.inference_mode():
            adapter.encode_images(probe)
    finally:
        for handle in handles:
            handle.remove()
    # A parent fires after its children: keep the last name seen for each output tensor.
    last: dict[int, int] = {}
    for i, (_, out) in enumerate(seen):
        last[id(out)] = i
    order = [seen[i][0] for i in sorted(last.values())]
    return list(reversed(order))


def _block_path(norm_name: str) -> str:
    """``encoder.layers.3.layer_norm1`` → ``encoder.layers.3``."""
    return norm_name.rsplit(".", 1)[0]
