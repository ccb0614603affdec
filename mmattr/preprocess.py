"""Image preprocessing as tensor operations, read from a Hugging Face image-processor config.

The geometric part (resize, centre crop) is linear in the pixels, so resizing a sum of masked
images equals summing their resized versions. The region stack relies on that to compose any
subset of regions with one matrix product instead of resizing every candidate image.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic", "nearest": "nearest",
             "bilinear": "bilinear", "bicubic": "bicubic"}


@dataclass(frozen=True)
class Preprocess:
    """Resize (shortest edge or fixed size), centre crop, rescale to [0, 1], normalise."""

    shortest_edge: int | None
    resize_hw: tuple[int, int] | None
    crop_hw: tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: str = "bicubic"
    #: SigLIP 2 (NaFlex): resize keeping the aspect ratio to at most this many patches
    patch_size: int | None = None
    max_num_patches: int | None = None

    @property
    def output_hw(self) -> tuple[int, int]:
        """The model input size (for a NaFlex model, that of a square image)."""
        if self.max_num_patches is not None:
            return _naflex_hw(1, 1, self.patch_size or 16, self.max_num_patches)
        if self.crop_hw is not None:
            return self.crop_hw
        if self.resize_hw is not None:
            return self.resize_hw
        raise ValueError("preprocessing without a crop or a fixed size has no fixed output size")

    @classmethod
    def from_config(cls, cfg: dict[str, Any], patch_size: int | None = None,
                    max_num_patches: int | None = None) -> "Preprocess":
        """Build from an image-processor config dict (CLIP, SigLIP, ViT, ConvNeXt styles)."""
        size = cfg.get("size") or {"shortest_edge": 224}
        if isinstance(size, int):
            size = {"shortest_edge": size}
        shortest = size.get("shortest_edge") if cfg.get("do_resize", True) else None
        resize_hw = None
        if cfg.get("do_resize", True) and "height" in size:
            resize_hw = (int(size["height"]), int(size["width"]))
            shortest = None
        crop_hw = None
        if cfg.get("do_center_crop", False):
            crop = cfg.get("crop_size", size)
            if isinstance(crop, int):
                crop = {"height": crop, "width": crop}
            crop_hw = (int(crop["height"]), int(crop["width"]))
        pct = cfg.get("crop_pct")
        if pct and shortest and crop_hw is None:
            # ConvNeXt / ResNet processors: below 384 px resize to size/crop_pct then crop
            # the centre; from 384 px on, warp to a square.
            edge = int(shortest)
            if edge < 384:
                shortest, crop_hw = int(edge / float(pct)), (edge, edge)
            else:
                shortest, resize_hw = None, (edge, edge)
        mean = cfg.get("image_mean", (0.5, 0.5, 0.5)) if cfg.get("do_normalize", True) else (0, 0, 0)
        std = cfg.get("image_std", (0.5, 0.5, 0.5)) if cfg.get("do_normalize", True) else (1, 1, 1)
        if isinstance(mean, (int, float)):
            mean = (mean,) * 3
        if isinstance(std, (int, float)):
            std = (std,) * 3
        resample = _RESAMPLE.get(cfg.get("resample", 3), "bicubic")
        return cls(shortest_edge=int(shortest) if shortest else None, resize_hw=resize_hw,
                   crop_hw=crop_hw, mean=tuple(float(m) for m in mean),
                   std=tuple(float(s) for s in std), resample=resample,
                   patch_size=patch_size, max_num_patches=max_num_patches)

    @classmethod
    def from_folder(cls, folder: str | Path) -> "Preprocess":
        path = Path(folder) / "preprocessor_config.json"
        return cls.from_config(json.loads(path.read_text()))

    def geometry(self, x: torch.Tensor) -> torch.Tensor:
        """Resize and crop a float batch (B, C, H, W); linear in x."""
        h, w = x.shape[-2:]
        if self.max_num_patches is not None:
            th, tw = _naflex_hw(h, w, self.patch_size or 16, self.max_num_patches)
        elif self.resize_hw is not None:
            th, tw = self.resize_hw
        elif self.shortest_edge is not None:
            # As transformers: the short side becomes the size, the long side is truncated.
            short, long = (h, w) if h <= w else (w, h)
            new_long = max(1, int(self.shortest_edge * long / short))
            th, tw = (self.shortest_edge, new_long) if h <= w else (new_long, self.shortest_edge)
        else:
            th, tw = h, w
        if (th, tw) != (h, w):
            mode = self.resample
            kwargs: dict[str, Any] = {"mode": mode}
            if mode != "nearest":
                kwargs.update(align_corners=False, antialias=(th < h or tw < w))
            x = F.interpolate(x, size=(th, tw), **kwargs)
        if self.crop_hw is not None:
            ch, cw = self.crop_hw
            if th < ch or tw < cw:  # pad like HF does when the image is smaller than the crop
                x = F.pad(x, (0, max(0, cw - tw), 0, max(0, ch - th)))
                th, tw = x.shape[-2:]
            top, left = (th - ch) // 2, (tw - cw) // 2
            x = x[..., top:top + ch, left:left + cw]
        return x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std

    def __call__(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) or (B, 3, H, W) uint8 → normalised float model input."""
        x = images_uint8
        if x.shape[-1] == 3 and x.shape[1] != 3:
            # contiguous: the resize kernels run ~30% faster on it, with the same result
            x = x.permute(0, 3, 1, 2).contiguous()
        x = x.float() / 255.0
        return self.normalize(self.geometry(x))


def _naflex_hw(h: int, w: int, patch: int, max_patches: int) -> tuple[int, int]:
    """SigLIP 2's resize: the largest aspect-preserving size, both sides multiples of the
    patch, with at most `max_patches` patches (transformers' binary search, same result)."""
    def side(scale: float, size: int) -> int:
        return max(patch, int(math.ceil(size * scale / patch) * patch))

    lo, hi, eps = 1e-6, 100.0, 1e-5
    while hi - lo >= eps:
        mid = (lo + hi) / 2
        if (side(mid, h) / patch) * (side(mid, w) / patch) <= max_patches:
            lo = mid
        else:
            hi = mid
    return side(lo, h), side(lo, w)
