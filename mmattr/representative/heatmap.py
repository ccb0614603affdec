"""Heat maps of a decision region (eq. 5), with channel weights reusable on covered images.

Each boundary of P(x) is oriented so that x lies on its positive side; its channel weights are
α_k = mean over the spatial positions of W^k (for ViT tokens: over the patch-token grid); its
map is ReLU(Σ_k α_k ψ^k), finished like Grad-CAM (per-image min-max, bilinear resize to the
model input, min-max again); the region's map is the mean over its boundaries. The same α are
reused for every image the region covers.

Ref. Lam et al., "Finding Representative Interpretations on Convolutional Neural Networks",
ICCV 2021 (eq. 5); Selvaraju et al., "Grad-CAM", ICCV 2017 (finishing steps).
"""

from __future__ import annotations

import numpy as np
import torch

from ..explainers.cam import finish_cam


def channel_weights(W_grid: torch.Tensor, sides: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(P, C, h, w) boundary normals as maps, (P,) x's side → (P, C) oriented α."""
    sign = torch.as_tensor(np.asarray(sides), device=W_grid.device).float() * 2 - 1
    return sign[:, None] * W_grid.float().mean(dim=(2, 3))


def region_heatmap(psi_grid: torch.Tensor, alpha: torch.Tensor,
                   input_hw: tuple[int, int]) -> torch.Tensor:
    """(B, C, h, w) feature maps, (P, C) channel weights → (B, H, W) maps at the model input."""
    b, _, gh, gw = psi_grid.shape
    p = alpha.shape[0]
    if p == 0:
        return psi_grid.new_zeros(b, *input_hw)
    raw = torch.einsum("pc,bchw->bphw", alpha.to(psi_grid), psi_grid.float())
    maps = finish_cam(raw.reshape(b * p, gh, gw), input_hw).reshape(b, p, *input_hw)
    return maps.mean(dim=1)
