"""Perturbation baselines: LIME, Kernel SHAP and occlusion over sub-regions (or the words of a
text, the segments of a clip), RISE over random masks.

All score batches of perturbed images under inference mode, composed on the device and chunked
by ``batch_size``; the samples are drawn up front from ``seed``, so results do not depend on
the batch size. Hidden regions take the configured fill (black by default: 0 in pixel space),
as in SMDL's masked images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..adapters.base import Adapter
from ..division import divider_from_config
from ..options import option
from ..regions import RegionStack
from ._common import (ElementResult, MapExplainer, MapResult, element_cosines, image_tensor,
                      score_masked, seeded_generator, to_image_space)
from .base import ProgressFn, register_explainer


def _feature_labels(config, image: np.ndarray
                    ) -> tuple[np.ndarray, str, dict[str, dict[str, Any]]]:
    """LIME / Kernel SHAP features: the configured division (a prior division would need this
    very method, so it falls back to SLICO), and that division's resolved options."""
    cfg = config if not config.division.startswith("prior") else config.replace(division="slico")
    divider = divider_from_config(cfg)
    return divider.divide(image), cfg.division, divider.resolved_options()


def _feature_components(method: str, config) -> set[str]:
    """LIME's / Kernel SHAP's components: the method and its feature division."""
    name = config.division.partition(":")[0]
    return {method, "slico" if name == "prior" else name}


class _ElementFeatures(MapExplainer):
    """A method over features switched on and off: on an image the configured division's
    regions (its components: the method and that division), on a text its words, on a clip its
    segments (the modality's own options replace the division's)."""

    modalities = ("image", "text", "audio")

    @classmethod
    def components(cls, config) -> set[str]:
        if config.explain != "image":
            return super().components(config)
        return _feature_components(cls.name, config)


def _region_scores(image: np.ndarray, labels: np.ndarray, adapter: Adapter,
                   target_emb: torch.Tensor, subsets: torch.Tensor, batch_size: int,
                   fill: torch.Tensor | None = None, context: Any = None
                   ) -> tuple[torch.Tensor, int]:
    """Cosine to the target of each (M, N) subset shown on the fill (None: black); `context`
    is the explainer's `RunContext`."""
    stack = RegionStack(image, labels, adapter, batch_size=batch_size, fill=fill,
                        context=context)
    emb, _ = stack.embed(subsets, masked_out=False)
    return emb @ target_emb.to(emb.dtype), stack.forward_passes


def lime_kernel(z: torch.Tensor, kernel_width: float = 0.25) -> torch.Tensor:
    """lime's weights: sqrt(exp(-d²/w²)), d = cosine distance of each row to the all-ones row
    (a row of zeros is at distance 1, as in sklearn's pairwise cosine distance)."""
    z = z.double()
    norm = z.norm(dim=1) * math.sqrt(z.shape[1])
    d = torch.where(norm > 0, 1 - z.sum(1) / norm.clamp(min=1e-12), torch.ones_like(norm))
    return torch.sqrt(torch.exp(-(d ** 2) / kernel_width ** 2))


def weighted_ridge(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, alpha: float = 1.0
                   ) -> tuple[torch.Tensor, float]:
    """sklearn's Ridge(alpha).fit(z, y, sample_weight=w): coefficients and intercept."""
    z, y, w = z.double(), y.double(), w.double()
    mz = (w[:, None] * z).sum(0) / w.sum()
    my = (w * y).sum() / w.sum()
    zc, yc = z - mz, y - my
    a = zc.T @ (w[:, None] * zc) + alpha * torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
    coef = torch.linalg.solve(a, zc.T @ (w * yc))
    return coef, float(my - mz @ coef)


def shapley_samples(n: int, n_samples: int, gen: torch.Generator, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Coalitions (M, n) and their regression weights, excluding the empty and full ones.

    Every coalition with its Shapley kernel weight when they number at most `n_samples` - 2
    (then the regression gives the exact Shapley values); otherwise coalition sizes drawn with
    probability ∝ (n-1)/(k(n-k)), members uniform, unit weights.
    """
    if n < 2:
        return torch.zeros(0, n, device=device), torch.zeros(0, device=device), True
    if n <= 20 and 2 ** n - 2 <= n_samples - 2:
        codes = torch.arange(1, 2 ** n - 1, device=device)
        z = ((codes[:, None] >> torch.arange(n, device=device)) & 1).float()
        k = z.sum(1).double()
        binom = torch.exp(math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1))
        weights = (n - 1) / (binom * k * (n - k))
        return z, weights, True
    sizes = torch.arange(1, n, device=device, dtype=torch.float64)
    p = (n - 1) / (sizes * (n - sizes))
    m = n_samples - 2
    k = torch.multinomial(p / p.sum(), m, replacement=True, generator=gen) + 1
    ranks = torch.rand(m, n, generator=gen, device=device).argsort(1).argsort(1)
    z = (ranks < k[:, None]).float()
    return z, torch.ones(m, dtype=torch.float64, device=device), False


def kernel_shap_values(z: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, v_empty: float,
                       v_full: float) -> torch.Tensor:
    """Weighted least squares with the efficiency constraint Σφ = v(full) - v(empty), solved by
    eliminating the last feature (as the shap package does)."""
    n = z.shape[1]
    total = v_full - v_empty
    if n == 1:
        return torch.tensor([total], dtype=torch.float64)
    z, y, w = z.double(), y.double(), weights.double()
    target = y - v_empty - z[:, -1] * total
    x = z[:, :-1] - z[:, -1:]
    sw = w.sqrt()[:, None]
    phi = torch.linalg.lstsq(x * sw, target[:, None] * sw).solution[:, 0]
    return torch.cat([phi, (total - phi.sum())[None]])


@register_explainer("lime")
class LimeExplainer(_ElementFeatures):
    """A weighted ridge model of the target cosine over sub-regions switched on and off.

    1,000 samples by default (the first with every region on), kernel width 0.25 on the cosine
    distance of the binary vectors, ridge α = 1; features are the configured division's regions.

    Ref. Ribeiro et al., "'Why Should I Trust You?': Explaining the Predictions of Any
    Classifier", KDD 2016.
    """

    name = "lime"

    @dataclass(frozen=True)
    class Options:
        samples: int = option(1000, "perturbed samples (forward passes)", min=1)
        kernel_width: float = option(0.25, "width of the exponential kernel on the cosine "
                                           "distance", above=0)
        alpha: float = option(1.0, "ridge regularisation α", min=0)

    def attribute(self, image: np.ndarray, target_emb: torch.Tensor, adapter: Adapter,
                  progress: ProgressFn | None = None) -> MapResult:
        o = self.opts
        labels, division, used = _feature_labels(self.config, image)
        n = int(labels.max()) + 1
        gen = seeded_generator(self.config.seed, adapter.device)
        z = torch.randint(0, 2, (o.samples, n), generator=gen, device=adapter.device).float()
        z[0] = 1
        y, passes = _region_scores(image, labels, adapter, target_emb, z, self.config.batch_size,
                                   self.fill_for(image, adapter.device), self.context)
        coef, _ = weighted_ridge(z, y, lime_kernel(z, o.kernel_width), o.alpha)
        values = coef.float().cpu().numpy()
        return MapResult(values[labels], passes, regions=labels, region_values=values,
                         settings={"samples": o.samples, "kernel_width": o.kernel_width,
                                   "alpha": o.alpha, "features": f"{division} ({n} regions)",
                                   "fill": self.config.fill, "score": "cosine"}, options=used)

    def attribute_elements(self, elements, target_emb: torch.Tensor, adapter: Adapter,
                           progress: ProgressFn | None = None) -> ElementResult:
        """The same ridge model over the words of a text or the segments of a clip."""
        o = self.opts
        gen = seeded_generator(self.config.seed, adapter.device)
        z = torch.randint(0, 2, (o.samples, elements.n), generator=gen,
                          device=adapter.device).float()
        z[0] = 1
        with torch.inference_mode():
            y = element_cosines(elements, target_emb, z)
        coef, _ = weighted_ridge(z, y, lime_kernel(z, o.kernel_width), o.alpha)
        return ElementResult(coef.float().cpu().numpy(), elements.forward_passes,
                             {"samples": o.samples, "kernel_width": o.kernel_width,
                              "alpha": o.alpha, "score": "cosine"})


@register_explainer("kernelshap")
class KernelShapExplainer(_ElementFeatures):
    """Shapley values of the sub-regions for the target cosine, by Kernel SHAP regression.

    1,000 coalitions by default plus the empty and full ones (exact enumeration when there are
    fewer);
    features are the configured division's regions.

    Ref. Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017.
    """

    name = "kernelshap"

    @dataclass(frozen=True)
    class Options:
        samples: int = option(1000, "coalitions sampled (forward passes)", min=3)

    def attribute(self, image: np.ndarray, target_emb: torch.Tensor, adapter: Adapter,
                  progress: ProgressFn | None = None) -> MapResult:
        labels, division, used = _feature_labels(self.config, image)
        n = int(labels.max()) + 1
        dev = adapter.device
        z, weights, exact = shapley_samples(n, self.opts.samples,
                                            seeded_generator(self.config.seed, dev), dev)
        ends = torch.stack([torch.zeros(n, device=dev), torch.ones(n, device=dev)])
        y, passes = _region_scores(image, labels, adapter, target_emb, torch.cat([ends, z]),
                                   self.config.batch_size, self.fill_for(image, dev),
                                   self.context)
        phi = kernel_shap_values(z.cpu(), y[2:].cpu(), weights.cpu(), float(y[0]), float(y[1]))
        values = phi.float().numpy()
        return MapResult(values[labels], passes, regions=labels, region_values=values,
                         settings={"samples": int(z.shape[0]) + 2, "exact": exact,
                                   "features": f"{division} ({n} regions)",
                                   "fill": self.config.fill, "score": "cosine"}, options=used)

    def attribute_elements(self, elements, target_emb: torch.Tensor, adapter: Adapter,
                           progress: ProgressFn | None = None) -> ElementResult:
        """Shapley values of the words of a text or the segments of a clip (exact when the
        coalitions fit the budget: 2^N - 2 ≤ samples - 2)."""
        n, dev = elements.n, adapter.device
        z, weights, exact = shapley_samples(n, self.opts.samples,
                                            seeded_generator(self.config.seed, dev), dev)
        ends = torch.stack([torch.zeros(n, device=dev), torch.ones(n, device=dev)])
        with torch.inference_mode():
            y = element_cosines(elements, target_emb, torch.cat([ends, z]))
        phi = kernel_shap_values(z.cpu(), y[2:].cpu(), weights.cpu(), float(y[0]), float(y[1]))
        return ElementResult(phi.float().numpy(), elements.forward_passes,
                             {"samples": int(z.shape[0]) + 2, "exact": exact, "score": "cosine"})


@register_explainer("occlusion")
class OcclusionExplainer(_ElementFeatures):
    """Leave one out: each element's value is the drop of the target cosine when it alone is
    removed (a region filled, a word removed, a segment silenced); N + 1 forward passes.

    Ref. Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014
    (occlusion); Li et al., "Understanding Neural Networks through Representation Erasure",
    arXiv 1612.08220, 2016 (leaving words out).
    """

    name = "occlusion"

    @staticmethod
    def _leave_one_out(n: int, device: torch.device) -> torch.Tensor:
        """Row 0: every element; row i + 1: every element but i."""
        rows = torch.ones(n + 1, n, device=device)
        rows[torch.arange(1, n + 1, device=device), torch.arange(n, device=device)] = 0.0
        return rows

    def attribute(self, image: np.ndarray, target_emb: torch.Tensor, adapter: Adapter,
                  progress: ProgressFn | None = None) -> MapResult:
        labels, division, used = _feature_labels(self.config, image)
        n = int(labels.max()) + 1
        y, passes = _region_scores(image, labels, adapter, target_emb,
                                   self._leave_one_out(n, adapter.device),
                                   self.config.batch_size, self.fill_for(image, adapter.device),
                                   self.context)
        values = (y[0] - y[1:]).float().cpu().numpy()
        return MapResult(values[labels], passes, regions=labels, region_values=values,
                         settings={"features": f"{division} ({n} regions)",
                                   "fill": self.config.fill, "score": "cosine"}, options=used)

    def attribute_elements(self, elements, target_emb: torch.Tensor, adapter: Adapter,
                           progress: ProgressFn | None = None) -> ElementResult:
        with torch.inference_mode():
            y = element_cosines(elements, target_emb,
                                self._leave_one_out(elements.n, adapter.device))
        return ElementResult((y[0] - y[1:]).float().cpu().numpy(), elements.forward_passes,
                             {"score": "cosine"})


#: RISE masks composed and summed per block: a fixed size, so the map does not depend on the
#: batch size (each block is still encoded `batch_size` images at a time)
_RISE_BLOCK = 256


def rise_masks(grid: torch.Tensor, shifts: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(B, s, s) binary grids → (B, H, W) smooth masks: bilinear upsample to (s+1)·cell, then a
    crop shifted by (dy, dx) per mask."""
    H, W = hw
    s = grid.shape[-1]
    ch, cw = math.ceil(H / s), math.ceil(W / s)
    up = torch.nn.functional.interpolate(grid[:, None].float(), size=((s + 1) * ch, (s + 1) * cw),
                                         mode="bilinear", align_corners=False)[:, 0]
    rows = shifts[:, 0, None] + torch.arange(H, device=grid.device)[None]
    cols = shifts[:, 1, None] + torch.arange(W, device=grid.device)[None]
    b = torch.arange(grid.shape[0], device=grid.device)[:, None, None]
    return up[b, rows[:, :, None], cols[:, None, :]]


@register_explainer("rise")
class RiseExplainer(MapExplainer):
    """Σ f(I⊙M)·M / (N·p1) over N = 4,000 random masks (the defaults): 7×7 Bernoulli(0.5)
    grids, bilinearly upsampled and randomly shifted; f is the target cosine.

    As in the paper, masks live at the model's input resolution: the image is resized and
    cropped once, the masks are composed on that, and the map is carried back to the image
    (zero where the crop removed pixels, since the model never saw them).

    Ref. Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box Models",
    BMVC 2018.
    """

    name = "rise"

    @dataclass(frozen=True)
    class Options:
        masks: int = option(4000, "random masks N (forward passes)", min=1)
        grid: int = option(7, "mask grid side s: s × s Bernoulli cells, upsampled", min=1)
        p1: float = option(0.5, "probability that a cell is shown", above=0, max=1)

    def attribute(self, image: np.ndarray, target_emb: torch.Tensor, adapter: Adapter,
                  progress: ProgressFn | None = None) -> MapResult:
        dev = adapter.device
        s, n_masks, p1 = self.opts.grid, self.opts.masks, self.opts.p1
        with torch.inference_mode():
            base = adapter.preprocess.geometry(image_tensor(image, dev))
            fill = self.fill_for(image, dev)  # at the model input, as the image
            fill = adapter.preprocess.geometry(fill[None]) if fill is not None else None
        h, w = base.shape[-2:]
        gen = seeded_generator(self.config.seed, dev)
        grids = (torch.rand(n_masks, s, s, generator=gen, device=dev) < p1).float()
        cell = torch.tensor([math.ceil(h / s), math.ceil(w / s)], device=dev)
        shifts = (torch.rand(n_masks, 2, generator=gen, device=dev) * cell).long()
        sal = torch.zeros(h, w, device=dev)
        # Masks are summed in blocks of a fixed size, each block scored `batch_size` images at a
        # time: float sums depend on how they are grouped, and blocks of `batch_size` made the
        # map (and the pixel ranking its curves read) change with the batch size.
        block = _RISE_BLOCK
        with torch.inference_mode():
            for start in range(0, n_masks, block):
                masks = rise_masks(grids[start:start + block], shifts[start:start + block], (h, w))
                f = score_masked(base, masks, adapter, lambda e: e @ target_emb.to(e.dtype)
                                 / e.norm(dim=-1).clamp(min=1e-12), self.config.batch_size,
                                 model_space=True, fill=fill)
                sal += torch.einsum("b,bhw->hw", f, masks)
                if progress is not None:
                    progress(min(start + block, n_masks), n_masks)
            sal /= n_masks * p1
            sal = to_image_space(sal, adapter, image.shape[:2])
        return MapResult(sal.cpu().numpy(), n_masks,
                         settings={"masks": n_masks, "grid": s, "p1": p1,
                                   "mask_resolution": [int(h), int(w)], "fill": self.config.fill,
                                   "score": "cosine"})
