"""Gradient baselines: Saliency and Integrated Gradients, through Captum.

The score is the cosine similarity between the image embedding and the target embedding (a
softmax over one prompt is constantly 1 and has no gradient). Gradients are taken with respect
to the original image in [0, 1] through the differentiable preprocessing, so the map is at the
input resolution and pixels outside the model's crop get zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..adapters.base import Adapter
from ..errors import ModelError
from ..options import option
from ._common import MapExplainer, MapResult, cosine, image_tensor
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

    @dataclass(frozen=True)
    class Options:
        steps: int = option(50, "integration steps (forward and backward passes)", min=1)

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
