"""Gradient baselines: Saliency and Integrated Gradients, through Captum; on a text, gradient ×
input and Integrated Gradients on the token embeddings.

The score is the cosine similarity between the image embedding and the target embedding (a
softmax over one prompt is constantly 1 and has no gradient). Gradients are taken with respect
to the original image in [0, 1] through the differentiable preprocessing, so the map is at the
input resolution and pixels outside the model's crop get zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..adapters.base import Adapter
from ..errors import InputError, ModelError
from ..options import option
from ._common import ElementResult, MapExplainer, MapResult, cosine, image_tensor
from .base import ProgressFn, register_explainer


def _captum():
    try:
        import captum.attr as attr
    except ImportError:  # pragma: no cover - captum is a dependency
        raise ModelError("gradient methods need Captum: pip install captum") from None
    return attr


def score_fn(adapter: Adapter, target_emb: torch.Tensor):
    """Differentiable (B, 3, H, W) pixels in [0, 1] → (B,) cosine to the target."""
    pre = adapter.preprocess

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        return cosine(adapter.forward_images(pre.normalize(pre.geometry(pixels))), target_emb)

    return forward


def token_attributions(elements, target_emb: torch.Tensor, adapter: Adapter, steps: int,
                       baseline: bool, batch: int = 64) -> tuple[np.ndarray, int]:
    """Per word: (input − baseline) · gradient of the target cosine on the token embeddings,
    summed over the word's tokens and the prompt templates (the text is encoded as a text target
    is: templates averaged). `baseline` False is gradient × input (one pass per template); True
    is Integrated Gradients from the pad token's embedding at the word's positions (the ``pad``
    removal), `steps` midpoints of the straight path. Returns (values, passes)."""
    layer = adapter.text_embedding_layer()
    pad = adapter.text_pad_id
    if layer is None:
        raise ModelError(f"model {adapter.spec!r} gives no access to its token embeddings: "
                         "gradient methods cannot explain its text (use smdl, occlusion, lime "
                         "or kernelshap)")
    if baseline and pad is None:  # (CLIP: its pad token is its end-of-text token)
        raise ModelError(f"model {adapter.spec!r} has no pad token for the Integrated "
                         "Gradients baseline: use gradxinput, smdl, occlusion, lime or "
                         "kernelshap to explain its text")
    seqs = elements.templated()
    t, length = len(seqs), max(int(q.ids.shape[0]) for q in seqs)
    dev = adapter.device
    fill = int(pad) if pad is not None else 0
    ids = torch.full((t, length), fill, dtype=torch.long)
    mask = torch.zeros((t, length), dtype=torch.long)
    owner = torch.full((t, length), -1, dtype=torch.long)
    for i, q in enumerate(seqs):
        ids[i, : q.ids.shape[0]] = q.ids
        mask[i, : q.ids.shape[0]] = 1
        owner[i, : q.ids.shape[0]] = q.owner
    ids, mask, owner = ids.to(dev), mask.to(dev), owner.to(dev)
    # the rows as the model pads a typed prompt (SigLIP: to its limit), so the hooked
    # embeddings below have the length the text tower will be called with
    ids, mask = adapter.pad_token_rows(ids, mask)
    owner = F.pad(owner, (0, ids.shape[1] - owner.shape[1]), value=-1)
    length = int(ids.shape[1])
    with torch.no_grad():
        emb = layer(ids).float()
        if baseline:  # IG: the pad token's embedding at the explained tokens, the rest kept
            start = emb.clone()
            moved = owner >= 0
            start[moved] = layer.weight[fill].float().to(start.dtype)
        else:  # gradient × input: (x − 0) · ∂f/∂x (a start equal to x would give all zeros)
            start = torch.zeros_like(emb)
    alphas = ([(k + 0.5) / steps for k in range(steps)] if baseline else [1.0])
    grads = torch.zeros_like(emb)
    replaced: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda module, inputs, output: replaced["x"])
    target = target_emb.float().to(dev)
    try:
        with torch.enable_grad():
            for a in range(0, len(alphas), max(1, batch // t)):
                part = torch.tensor(alphas[a:a + max(1, batch // t)], device=dev)
                x = (start[None] + part[:, None, None, None] * (emb - start)[None])
                x = x.reshape(-1, length, emb.shape[-1]).detach().requires_grad_(True)
                replaced["x"] = x
                out = adapter.encode_token_ids(ids.repeat(part.shape[0], 1),
                                               mask.repeat(part.shape[0], 1)).float()
                out = F.normalize(out, dim=-1).reshape(part.shape[0], t, -1).sum(1)
                score = (F.normalize(out, dim=-1) @ target).sum()
                (g,) = torch.autograd.grad(score, x)
                grads += g.reshape(part.shape[0], t, length, -1).sum(0)
    finally:
        handle.remove()
    per_token = ((emb - start) * grads / len(alphas)).sum(-1)  # (T, L)
    values = torch.zeros(elements.n, device=dev)
    inside = owner >= 0
    values.index_add_(0, owner[inside], per_token[inside])
    return values.detach().cpu().numpy().astype(np.float32), len(alphas) * t


@register_explainer("saliency")
class SaliencyExplainer(MapExplainer):
    """|∂ cos(F(x), t) / ∂x|, max over colour channels.

    Ref. Simonyan et al., "Deep Inside Convolutional Networks: Visualising Image Classification
    Models and Saliency Maps", ICLR workshop 2014.
    """

    name = "saliency"

    def attribute(self, image: np.ndarray, target_emb: torch.Tensor, adapter: Adapter,
                  progress: ProgressFn | None = None) -> MapResult:
        attr = _captum()
        x = image_tensor(image, adapter.device).requires_grad_(True)
        with torch.enable_grad():
            grads = attr.Saliency(score_fn(adapter, target_emb)).attribute(x, abs=True)
        sal = grads[0].amax(0)
        return MapResult(sal.detach().cpu().numpy(), forward_passes=1,
                         settings={"score": "cosine", "reduce": "abs, max over channels",
                                   "implementation": "captum.attr.Saliency"})


@register_explainer("ig")
class IntegratedGradientsExplainer(MapExplainer):
    """Integrated Gradients from the fill (Captum's baseline; black by default), 50 steps by
    default (Captum's Gauss-Legendre rule), summed over colour channels.

    Ref. Sundararajan et al., "Axiomatic Attribution for Deep Networks", ICML 2017.
    """

    name = "ig"
    modalities = ("image", "text")

    @dataclass(frozen=True)
    class Options:
        steps: int = option(50, "integration steps (forward and backward passes)", min=1)

    def attribute_elements(self, elements, target_emb: torch.Tensor, adapter: Adapter,
                           progress: ProgressFn | None = None) -> ElementResult:
        """On a text: Integrated Gradients on the token embeddings, from the pad token's
        embedding at each explained token (the template's tokens stay), summed per word."""
        if elements.name != "text":
            raise InputError(f"the ig method explains image and text, not {elements.name}")
        values, passes = token_attributions(elements, target_emb, adapter, self.opts.steps,
                                            baseline=True, batch=self.config.batch_size)
        return ElementResult(values, passes, {"score": "cosine", "steps": self.opts.steps,
                                              "baseline": "pad token embedding",
                                              "space": "token embeddings"})

    def attribute(self, image: np.ndarray, target_emb: torch.Tensor, adapter: Adapter,
                  progress: ProgressFn | None = None) -> MapResult:
        attr = _captum()
        steps = self.opts.steps
        x = image_tensor(image, adapter.device)
        fill = self.fill_for(image, adapter.device)
        baseline = torch.zeros_like(x) if fill is None else fill[None]
        ig = attr.IntegratedGradients(score_fn(adapter, target_emb))
        with torch.enable_grad():
            maps, delta = ig.attribute(x, baselines=baseline, n_steps=steps,
                                       internal_batch_size=self.config.batch_size,
                                       return_convergence_delta=True)
        return MapResult(maps[0].sum(0).detach().cpu().numpy(), forward_passes=steps,
                         settings={"score": "cosine", "steps": steps,
                                   "baseline": self.config.fill,
                                   "reduce": "sum over channels",
                                   "convergence_delta": float(delta.abs().max()),
                                   "implementation": "captum.attr.IntegratedGradients"})


@register_explainer("gradxinput")
class GradientXInputExplainer(MapExplainer):
    """Gradient × input on a text's token embeddings: ∂ cos(F(text), t) / ∂e · e per token,
    summed over each word's tokens and the prompt templates.

    Ref. Shrikumar et al., "Not Just a Black Box: Learning Important Features Through
    Propagating Activation Differences", arXiv 1605.01713, 2016; Denil et al., "Extraction of
    Salient Sentences from Labelled Documents", arXiv 1412.6815, 2014 (on word embeddings).
    """

    name = "gradxinput"
    modalities = ("text",)

    def attribute(self, image: np.ndarray, target_emb: torch.Tensor, adapter: Adapter,
                  progress: ProgressFn | None = None) -> MapResult:
        raise InputError("the gradxinput method explains text only (--explain text); for an "
                         "image use saliency or ig")

    def attribute_elements(self, elements, target_emb: torch.Tensor, adapter: Adapter,
                           progress: ProgressFn | None = None) -> ElementResult:
        values, passes = token_attributions(elements, target_emb, adapter, 1, baseline=False,
                                            batch=self.config.batch_size)
        return ElementResult(values, passes, {"score": "cosine", "space": "token embeddings"})
