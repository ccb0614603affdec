"""Class activation maps: Grad-CAM, Grad-CAM++ and Score-CAM, on CNN layers and ViT token grids.

The computation follows pytorch-grad-cam step by step (ReLU, per-image min-max, bilinear resize
to the model input, min-max again), so maps agree with it on the same network; the tests check
that. It runs on the device with no per-channel Python loop. The map over the model input is
then mapped back onto the original image (zero outside the model's crop).

Everything model-specific comes from the adapter contract: the image tower is
`Adapter.vision_module()` and a ViT's token grid `Adapter.token_grid()`, so CAM works on every
family that exposes them (hf, openclip, classifiers, ``torch:`` modules). The layer is picked
automatically (the first layer norm of the last transformer block, or the last module with a
4-D output for CNNs) and can be named with ``layer`` (a module path inside the tower, or in the
adapter's whole model; negative indices such as ``encoder.layers.-1.layer_norm1`` are allowed).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..adapters.base import Adapter
from ..errors import InputError, ModelError, arg
from ..options import option
from ._common import MapExplainer, MapResult, cosine, to_image_space
from .base import ProgressFn, register_explainer

_BLOCK_NORM = re.compile(r"(?:^|\.)(?:layers?|blocks|resblocks)\.(\d+)\."
                         r"(?:layer_norm1|layernorm_before|norm1|ln_1)$")


def torch_model(adapter: Adapter) -> nn.Module:
    """The adapter's image tower (`Adapter.vision_module`), the module CAM hooks into."""
    model = adapter.vision_module()
    if not isinstance(model, nn.Module):
        raise ModelError(f"CAM methods need a torch model of the image tower (Adapter.vision_module); "
                         f"{adapter.spec!r} exposes none (use saliency, ig, rise, lime, "
                         "kernelshap or hsic)")
    return model


def resolve_layer(adapter: Adapter, path: str) -> nn.Module:
    """A layer by path inside `vision_module()`; a path from the adapter's whole model (as
    ``vision_model.encoder.layers.-1.layer_norm1`` for a transformers CLIP) works too."""
    tower = torch_model(adapter)
    try:
        return get_layer(tower, path)
    except InputError:
        whole = getattr(adapter, "model", None)
        if isinstance(whole, nn.Module) and whole is not tower:
            try:
                return get_layer(whole, path)
            except InputError:
                pass
        raise


def get_layer(model: nn.Module, path: str) -> nn.Module:
    """A submodule by dotted path; integer parts index sequences (negative ones too)."""
    module = model
    for part in path.split("."):
        try:
            if re.fullmatch(r"-?\d+", part) and isinstance(module, (nn.ModuleList, nn.Sequential)):
                module = module[int(part)]
            else:
                module = getattr(module, part)
        except (AttributeError, IndexError):
            raise InputError(f"{arg('layer', path)}: the model has no submodule {part!r} there") from None
    if not isinstance(module, nn.Module):
        raise InputError(f"{arg('layer', path)} is not a module")
    return module


@contextmanager
def capture(layer: nn.Module, clone: bool = False) -> Iterator[list[torch.Tensor]]:
    """Collects the layer's forward outputs; the hook is removed on exit, even on errors.
    `clone` keeps copies, safe from later in-place ops of the model (a residual ``+=``)."""
    seen: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        out = output[0] if isinstance(output, (tuple, list)) else output
        seen.append(out.clone() if clone and torch.is_tensor(out) else out)

    handle = layer.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def auto_layer(model: nn.Module, adapter: Adapter) -> str:
    """The first layer norm of the last transformer block, else the last 4-D activation."""
    blocks = [(int(m.group(1)), name) for name, _ in model.named_modules()
              if (m := _BLOCK_NORM.search(name))]
    vision = [b for b in blocks if "text" not in b[1]]
    if vision:
        return max(vision)[1]
    # CNN: the last module (in execution order) whose output is a (B, C, h, w) map, h·w > 1.
    order: list[str] = []
    handles = [m.register_forward_hook(lambda mod, i, o, n=name: order.append(n)
                                       if torch.is_tensor(o) and o.dim() == 4
                                       and o.shape[-1] * o.shape[-2] > 1 else None)
               for name, m in model.named_modules() if name]
    try:
        h, w = adapter.preprocess.output_hw
        with torch.inference_mode():
            adapter.encode_images(torch.zeros(1, 3, h, w, device=adapter.device))
    finally:
        for handle in handles:
            handle.remove()
    if not order:
        raise ModelError(f"no layer with a spatial activation was found; name one with {arg('layer')}")
    return order[-1]


def as_grid(act: torch.Tensor, adapter: Adapter) -> torch.Tensor:
    """(B, C, h, w) stays; (B, T, C) tokens → (B, C, gh, gw), the grid from the adapter's
    `token_grid()`, the leading class (and register) tokens dropped."""
    if act.dim() == 4:
        return act
    if act.dim() != 3:
        raise ModelError(f"the CAM layer's output has shape {tuple(act.shape)}; "
                         f"pick a convolutional or transformer-block layer with {arg('layer')}")
    grid = adapter.token_grid()
    if grid is None:
        raise ModelError(f"model {adapter.spec!r} does not say its token grid "
                         f"(Adapter.token_grid); pick a convolutional layer with {arg('layer')}")
    gh, gw = grid[0], grid[1]
    extra = act.shape[1] - gh * gw  # the prefix tokens (class, distillation, registers)
    if extra < 0:
        raise ModelError(f"the layer has {act.shape[1]} tokens, fewer than the {gh}×{gw} grid")
    return act[:, extra:].reshape(act.shape[0], gh, gw, act.shape[2]).permute(0, 3, 1, 2)


def _minmax(x: torch.Tensor) -> torch.Tensor:
    # pytorch-grad-cam's scale_cam_image, per image
    flat = x.flatten(1)
    x = x - flat.min(1).values.view(-1, *[1] * (x.dim() - 1))
    return x / (1e-7 + x.flatten(1).max(1).values.view(-1, *[1] * (x.dim() - 1)))


def finish_cam(cam: torch.Tensor, input_hw: tuple[int, int]) -> torch.Tensor:
    """(B, gh, gw) raw CAM → (B, h, w) at the model input, as pytorch-grad-cam finishes it."""
    cam = _minmax(cam.clamp(min=0))
    cam = F.interpolate(cam[:, None], size=input_hw, mode="bilinear", align_corners=False)[:, 0]
    return _minmax(cam.clamp(min=0))


def gradcam_weights(grad: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) gradients → (B, C) Grad-CAM channel weights (spatial mean)."""
    return grad.mean(dim=(2, 3))


def gradcampp_weights(act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) activations and gradients → (B, C) Grad-CAM++ weights (pytorch-grad-cam):
    α = g² / (2g² + ΣA·g³ + ε), α = 0 where g = 0, weight = Σ α·ReLU(g)."""
    g2 = grad ** 2
    g3 = g2 * grad
    sum_act = act.sum(dim=(2, 3), keepdim=True)
    alpha = g2 / (2 * g2 + sum_act * g3 + 1e-6)
    alpha = torch.where(grad != 0, alpha, torch.zeros_like(alpha))
    return (grad.clamp(min=0) * alpha).sum(dim=(2, 3))


def scorecam_masks(act: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(C, h, w) activation channels → (C, H, W) input masks as pytorch-grad-cam makes them
    (UpsamplingBilinear2d, align_corners=True, then per-channel min-max)."""
    up = F.interpolate(act[None], size=hw, mode="bilinear", align_corners=True)[0]
    lo = up.flatten(1).min(1).values[:, None, None]
    hi = up.flatten(1).max(1).values[:, None, None]
    return (up - lo) / (hi - lo + 1e-8)


@dataclass(frozen=True)
class CAMOptions:
    """What every CAM method takes."""

    layer: str | None = option(None, "module path of the layer to hook (inside the image tower "
                                     "or the whole model); none picks one (also --layer)")


class _CAMExplainer(MapExplainer):
    """Shared path: model input, layer, activations (and gradients) of the target score."""

    Options = CAMOptions

    def _layer(self, model: nn.Module, adapter: Adapter) -> tuple[str, nn.Module]:
        path = self.opts.layer or auto_layer(model, adapter)
        return path, resolve_layer(adapter, path)

    def _input(self, image: np.ndarray, adapter: Adapter) -> torch.Tensor:
        img = torch.from_numpy(np.array(image, copy=True)).to(adapter.device)[None]
        return adapter.preprocess(img)

    def cam_at_input(self, pixels: torch.Tensor, target_emb: torch.Tensor, adapter: Adapter,
                     progress: ProgressFn | None = None) -> tuple[torch.Tensor, dict]:
        """(1, 3, h, w) model input → (h, w) CAM at the model input, and settings."""
        model = torch_model(adapter)
        path, layer = self._layer(model, adapter)
        hw = tuple(pixels.shape[-2:])
        cam, passes = self._cam(pixels, target_emb, adapter, model, layer, hw, progress)
        return finish_cam(cam, hw)[0], {"layer": path, "forward_passes": passes}

    def attribute(self, image: np.ndarray, target_emb: torch.Tensor, adapter: Adapter,
                  progress: ProgressFn | None = None) -> MapResult:
        pixels = self._input(image, adapter)
        cam, info = self.cam_at_input(pixels, target_emb, adapter, progress)
        full = to_image_space(cam, adapter, image.shape[:2])
        return MapResult(full.detach().cpu().numpy(), forward_passes=info.pop("forward_passes"),
                         settings={**info, "score": self.score_name,
                                   "reference": "pytorch-grad-cam"})

    score_name = "cosine"

    def _grads(self, pixels, target_emb, adapter, model, layer, hw):
        with torch.enable_grad(), capture(layer) as seen:
            x = pixels.detach().clone().requires_grad_(True)
            score = cosine(adapter.forward_images(x), target_emb).sum()
            act = seen[-1]
            (grad,) = torch.autograd.grad(score, act)
        return as_grid(act.detach(), adapter), as_grid(grad, adapter)

    def _cam(self, pixels, target_emb, adapter, model, layer, hw, progress):
        raise NotImplementedError


@register_explainer("gradcam")
class GradCAMExplainer(_CAMExplainer):
    """Channel weights = spatial mean of the gradient of the cosine score.

    Ref. Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
    Localization", ICCV 2017.
    """

    name = "gradcam"

    def _cam(self, pixels, target_emb, adapter, model, layer, hw, progress):
        act, grad = self._grads(pixels, target_emb, adapter, model, layer, hw)
        weights = gradcam_weights(grad)
        return (weights[:, :, None, None] * act).sum(1), 1


@register_explainer("gradcampp")
class GradCAMPlusPlusExplainer(_CAMExplainer):
    """α = g² / (2g² + ΣA·g³ + ε), α = 0 where g = 0; weight = Σ α·ReLU(g).

    Ref. Chattopadhay et al., "Grad-CAM++: Improved Visual Explanations for Deep Convolutional
    Networks", WACV 2018.
    """

    name = "gradcampp"

    def _cam(self, pixels, target_emb, adapter, model, layer, hw, progress):
        act, grad = self._grads(pixels, target_emb, adapter, model, layer, hw)
        weights = gradcampp_weights(act, grad)
        return (weights[:, :, None, None] * act).sum(1), 1


@register_explainer("scorecam")
class ScoreCAMExplainer(_CAMExplainer):
    """Each channel, upsampled and min-max normalised, masks the model input; the channel
    weights are the softmax over channels of the masked inputs' target logits
    (logit_scale · cosine, the CLIP logit: a softmax over raw cosines would be nearly flat).

    Ref. Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
    Networks", CVPR workshops 2020.
    """

    name = "scorecam"
    score_name = "logit_scale * cosine"

    @dataclass(frozen=True)
    class Options(CAMOptions):
        batch: int | None = option(None, "channel masks scored per forward pass; none: the "
                                         "batch_size setting", min=1)

    def _cam(self, pixels, target_emb, adapter, model, layer, hw, progress):
        with torch.inference_mode(), capture(layer) as seen:
            adapter.encode_images(pixels)
            act = as_grid(seen[-1].float(), adapter)
        channels = act.shape[1]
        # pytorch-grad-cam: UpsamplingBilinear2d (align_corners=True), then per-channel min-max.
        scores = []
        batch = self.opts.batch or self.config.batch_size
        with torch.inference_mode():
            for start in range(0, channels, batch):
                masks = scorecam_masks(act[0, start:start + batch], hw)
                emb = adapter.encode_images(pixels * masks[:, None])
                scores.append(adapter.logit_scale * cosine(emb, target_emb))
                if progress is not None:
                    progress(min(start + batch, channels), channels)
            weights = torch.softmax(torch.cat(scores), dim=0)
        return (weights[None, :, None, None] * act).sum(1), channels + 1
