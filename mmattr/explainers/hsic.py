"""HSIC-Attribution: the dependence between each grid cell being shown and the target score.

Ref. Novello et al., "Making Sense of Dependence: Efficient Black-box Explanations Using
Dependence Measure", NeurIPS 2022 (defaults as Xplique's HsicAttributionMethod).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..adapters.base import Adapter
from ..division import grid_labels
from ..options import option
from ._common import MapExplainer, MapResult, seeded_generator
from .base import ProgressFn, register_explainer
from .perturbation import _region_scores


def binary_lhs(n: int, d: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, d) binary Latin-hypercube design: each column a stratified uniform sample < 0.5."""
    perm = torch.rand(d, n, generator=gen, device=device).argsort(1).T.double()
    u = (perm + torch.rand(n, d, generator=gen, device=device, dtype=torch.float64)) / n
    return (u < 0.5).float()


def hsic_scores(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """HSIC of each binary column of x (n, d) with the outputs y (n,): Dirac input kernel,
    RBF output kernel of width the median of y; biased estimator tr(K H L H) / n, as Xplique.

    With K_i = x_i x_iᵀ + (1 - x_i)(1 - x_i)ᵀ and HLH centred, tr(K_i HLH) = 2 x_iᵀ HLH x_i.
    """
    x, y = x.double(), y.double()
    n = y.shape[0]
    width = y.median().abs().clamp(min=1e-12)
    L = torch.exp(-((y[:, None] - y[None, :]) ** 2) / (2 * width ** 2))
    Lc = L - L.mean(0, keepdim=True) - L.mean(1, keepdim=True) + L.mean()
    return 2 * ((Lc @ x) * x).sum(0) / n


@register_explainer("hsic")
class HsicExplainer(MapExplainer):
    """7×7 grid, 1,536 binary Latin-hypercube designs (the defaults), perturbed input x·M
    (cells on the fill, black by default); the grid's HSIC map is resized bicubically to the
    image.
    """

    name = "hsic"

    @dataclass(frozen=True)
    class Options:
        grid: int = option(7, "grid side: grid × grid cells switched on and off", min=1)
        designs: int = option(1536, "binary Latin-hypercube designs (forward passes)", min=2)

    def attribute(self, image: np.ndarray, target_emb: torch.Tensor, adapter: Adapter,
                  progress: ProgressFn | None = None) -> MapResult:
        H, W = image.shape[:2]
        g = min(self.opts.grid, H, W)
        designs = self.opts.designs
        labels = grid_labels(H, W, g, g)
        dev = adapter.device
        x = binary_lhs(designs, g * g, seeded_generator(self.config.seed, dev), dev)
        y, passes = _region_scores(image, labels, adapter, target_emb, x, self.config.batch_size,
                                   self.fill_for(image, dev), self.context)
        values = hsic_scores(x, y).float()
        sal = F.interpolate(values.view(1, 1, g, g), size=(H, W), mode="bicubic",
                            align_corners=False)[0, 0]
        return MapResult(sal.cpu().numpy(), passes, regions=labels,
                         region_values=values.cpu().numpy(),
                         settings={"grid": g, "designs": designs, "sampler": "binary LHS",
                                   "input_kernel": "dirac", "output_kernel": "rbf, width median",
                                   "fill": self.config.fill, "score": "cosine"})
