"""What hidden pixels become: the one fill (Captum's "baseline") of SMDL's masked images, the
perturbation baselines (LIME, Kernel SHAP, RISE, HSIC), Integrated Gradients' start point and
the insertion / deletion curves.

A fill is named by a string, so YAML, the command line and explanation.json hold it alike:

- ``black`` (the default: 0 in pixel space, as the SMDL paper's masked images),
- ``mean`` (the image's mean colour), ``blur`` (a Gaussian blur, kernel 11, σ 5: the RISE
  authors' insertion start),
- a gray level in [0, 1] (``"0.5"``),
- an image file (resized to the image),
- ``image:<digest>``: an image given from Python as an array (``fill=array``); the array
  itself travels in `ExplainConfig.arrays`, the digest keeps results and caches apart.

A leaf below the explainers and metrics: numpy here, torch only inside the functions.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError, arg

if TYPE_CHECKING:
    import torch

#: the fills with a name (a gray level, an image file or ``image:<digest>`` besides)
FILLS = ("black", "blur", "mean")
#: prefix of a fill image given from Python as an array
ARRAY_PREFIX = "image:"


def digest(array: np.ndarray) -> str:
    """16 hex digits of SHA-256 over an array's shape, type and bytes: its name in settings."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.shape}{a.dtype}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def gray_level(spec: str) -> float | None:
    """The gray level a fill names (``"0.5"``), or None when it names something else."""
    try:
        value = float(spec)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def check_fill(spec: Any) -> str:
    """A fill setting, validated into its string form (one-line `InputError` otherwise)."""
    if isinstance(spec, bool) or not isinstance(spec, (str, Path, int, float)):
        raise InputError(f"{arg('fill')} takes black, mean, blur, a gray level in [0, 1] or an "
                         f"image, not a {type(spec).__name__}")
    if isinstance(spec, (int, float)):
        spec = repr(float(spec))
    spec = str(spec).strip()
    if spec in FILLS or spec.startswith(ARRAY_PREFIX):
        return spec
    level = gray_level(spec)
    if level is not None:
        if not 0.0 <= level <= 1.0:
            raise InputError(f"{arg('fill', spec)}: a gray level is in [0, 1] (pixels run from "
                             "0 = black to 1 = white)")
        return repr(level)
    if not Path(spec).expanduser().is_file():
        raise InputError(f"{arg('fill', spec)}: not black, mean, blur, a gray level in [0, 1] "
                         "or an image file")
    return spec


def fill_image(image: "torch.Tensor", fill: str, given: np.ndarray | None = None
               ) -> "torch.Tensor":
    """The baseline of `image` ((3, H, W) or (B, 3, H, W) pixels in [0, 1], any device): what
    its hidden pixels become under `fill`. `given` is the array an ``image:<digest>`` fill
    names."""
    import torch

    if fill == "black":
        return torch.zeros_like(image)
    if fill == "mean":
        return image.mean(dim=(-2, -1), keepdim=True).expand_as(image).clone()
    if fill == "blur":
        from torchvision.transforms.functional import gaussian_blur

        flat = image.reshape(-1, *image.shape[-3:])
        return gaussian_blur(flat, kernel_size=[11, 11], sigma=[5.0, 5.0]).reshape(image.shape)
    level = gray_level(fill)
    if level is not None:
        return torch.full_like(image, level)
    return _image_fill(image, fill, given)


def _image_fill(image: "torch.Tensor", fill: str, given: np.ndarray | None) -> "torch.Tensor":
    """An image as the fill, resized (area / linear) to `image`'s size."""
    import cv2
    import torch

    from .image import load_image

    if fill.startswith(ARRAY_PREFIX):
        if given is None or digest(given) != fill[len(ARRAY_PREFIX):]:
            raise InputError(f"fill {fill} names an image given from Python as an array, and "
                             "none came with the settings; in a file give an image path")
        pixels = load_image(given)
    elif fill in FILLS or gray_level(fill) is not None:  # pragma: no cover - handled above
        raise AssertionError(fill)
    else:
        pixels = load_image(fill)
    h, w = image.shape[-2:]
    if pixels.shape[:2] != (h, w):
        shrink = pixels.shape[0] * pixels.shape[1] > h * w
        pixels = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA if shrink
                            else cv2.INTER_LINEAR)
    base = torch.from_numpy(np.ascontiguousarray(pixels)).to(image.device)
    base = base.permute(2, 0, 1).to(image.dtype) / 255.0
    return base.expand_as(image).clone()

