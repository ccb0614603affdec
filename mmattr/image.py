"""Loading user images: every failure becomes one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError

ImageLike = Union[str, Path, np.ndarray, Image.Image]


def _to_rgb(img: Image.Image) -> Image.Image:
    # Transparent pixels become black, the same fill the method uses for hidden regions.
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def load_image(image: ImageLike) -> np.ndarray:
    """Return an RGB uint8 array (H, W, 3) from a path, a PIL image or an array.

    Grayscale, RGBA and palette images are converted to RGB; a missing, unreadable or
    truncated file raises `InputError` with a one-line message.
    """
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise InputError(f"image array must be (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
        if arr.dtype != np.uint8:
            if np.issubdtype(arr.dtype, np.floating) and arr.size and arr.max() <= 1.0:
                arr = arr * 255.0
            arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        arr = arr[..., :3]
        _check_size(arr, "image array")
        return np.ascontiguousarray(arr)
    if isinstance(image, Image.Image):
        arr = np.asarray(_to_rgb(image))
        _check_size(arr, "image")
        return arr
    path = Path(image)
    if not path.exists():
        raise InputError(f"image file not found: {path}")
    if not path.is_file():
        raise InputError(f"not a file: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            arr = np.asarray(_to_rgb(img))
    except UnidentifiedImageError:
        raise InputError(f"not an image file (unrecognised format): {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image {path}: truncated or corrupt ({exc})") from None
    _check_size(arr, str(path))
    return arr


def _check_size(arr: np.ndarray, what: str) -> None:
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"{what} is too small ({arr.shape[1]}x{arr.shape[0]} pixels)")
