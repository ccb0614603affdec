"""Loading user images: every PIL mode becomes 8-bit RGB, every failure one clear line."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

if TYPE_CHECKING:
    import torch

#: a file path, a PIL image, an (H, W[, C]) or (C, H, W) array, or a (C, H, W) / (1, C, H, W)
#: torch tensor on any device
ImageLike = Union[str, Path, np.ndarray, Image.Image, "torch.Tensor"]

#: PIL modes whose pixels are integers wider than 8 bits (16-bit PNG / TIFF grayscale)
_WIDE_INT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
#: modes that carry an alpha channel (transparent pixels become black)
_ALPHA_MODES = ("RGBA", "LA", "La", "RGBa", "PA")


def to_uint8(arr: np.ndarray, what: str = "image") -> np.ndarray:
    """Any numeric pixel array → uint8, by its type's range rather than by clipping.

    uint8 as it is; bool → 0/255; uint16 (and wider integers holding values above 255) are
    16-bit → divided by 257, so 65535 is white; floats in [0, 1] are scaled by 255, floats in
    [0, 255] are taken as they are. Anything else (negative values, NaN, floats above 255,
    integers above 65535) has no clear meaning and is an `InputError`.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.size == 0:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 65535:
            raise InputError(f"{what} has integer values in [{lo}, {hi}]; expected 8-bit "
                             "(0-255) or 16-bit (0-65535) pixels")
        if (arr.dtype.kind == "u" and arr.dtype.itemsize == 2) or hi > 255:
            # 16-bit: the type says so (either byte order), or the values do
            return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        a = arr.astype(np.float32)
        if not np.isfinite(a).all():
            raise InputError(f"{what} holds NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 255:
            hint = ("; a normalised tensor? pass the pixels before normalisation"
                    if lo < 0 and hi <= 10 else "")
            raise InputError(f"{what} has float values in [{lo:g}, {hi:g}]; expected [0, 1] "
                             f"or [0, 255]{hint}")
        if hi <= 1.0:
            a = a * 255.0
        return np.rint(a).astype(np.uint8)
    raise InputError(f"{what} has pixels of type {arr.dtype}; expected integers or floats")


def is_tensor(value: Any) -> bool:
    """A torch tensor, recognised without importing torch (``import mmattr`` stays light)."""
    return type(value).__module__.partition(".")[0] == "torch" and hasattr(value, "detach")


def tensor_to_array(tensor: Any) -> np.ndarray:
    """A torch tensor on any device → a numpy array (half precision widened to float32)."""
    t = tensor.detach()
    if t.is_floating_point() and t.element_size() < 4:  # bf16 / fp16: numpy has no bf16
        t = t.float()
    return t.cpu().numpy()


def as_array(values: Any) -> np.ndarray:
    """A numpy array of `values`: a torch tensor on any device, or anything numpy reads."""
    return tensor_to_array(values) if is_tensor(values) else np.asarray(values)


def channels_last(arr: np.ndarray, what: str = "image") -> np.ndarray:
    """(C, H, W) with C in 1, 3, 4 (torch's layout) → (H, W, C); a leading batch of one is
    dropped; (H, W) and (H, W, C) stay. A batch of several is an `InputError`."""
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise InputError(f"{what} is a batch of {arr.shape[0]} images {arr.shape}; explain "
                             "one image at a time, or use mmattr.explain_batch")
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] > 4:
        arr = arr.transpose(1, 2, 0)
    return arr


def _array_to_rgb(arr: np.ndarray, what: str) -> np.ndarray:
    arr = channels_last(arr, what)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = to_uint8(arr, what)
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"{what} must be (H, W), (H, W, 3), (H, W, 4) or (3, H, W), "
                         f"got {arr.shape}")
    arr = to_uint8(arr, what)
    if arr.shape[2] == 4:  # RGB + alpha: transparent → black
        alpha = arr[..., 3:].astype(np.uint16)
        arr = ((arr[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    return arr


def to_rgb_array(img: Image.Image, what: str = "image") -> np.ndarray:
    """Any PIL image → (H, W, 3) uint8, upright.

    EXIF orientation is applied; 16-bit and 32-bit integer gray (``I;16``, ``I``) is scaled from
    its own range, float (``F``) from [0, 1] or [0, 255]; palette, CMYK, YCbCr, LAB and HSV
    images go through PIL's conversion; transparent pixels become black, the same fill the
    method uses for hidden regions.
    """
    try:
        img = ImageOps.exif_transpose(img) or img
    except (OSError, ValueError, TypeError, KeyError):  # a corrupt EXIF block: keep the pixels as stored
        pass
    mode = img.mode
    if mode in _WIDE_INT_MODES or mode == "F":
        return _array_to_rgb(np.asarray(img), what)
    if mode == "P" and ("transparency" in img.info
                        or getattr(img.palette, "mode", "") == "RGBA"):
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        if mode == "La":  # PIL converts premultiplied gray only to its straight form
            img = img.convert("LA")
        return _array_to_rgb(np.asarray(img.convert("RGBA")), what)
    if mode in ("L", "RGB"):
        arr = np.asarray(img)
        return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr
    return np.asarray(img.convert("RGB"))


def load_image(image: ImageLike) -> np.ndarray:
    """Return an RGB uint8 array (H, W, 3) from a path, a PIL image, an array or a tensor.

    Every PIL mode is converted by its meaning (see `to_rgb_array`); arrays of uint16 are
    16-bit, floats in [0, 1] or [0, 255]. Arrays may be (H, W, C) or (C, H, W); torch tensors
    (C, H, W) or (1, C, H, W), on any device. A missing, unreadable, truncated or absurdly
    large file raises `InputError` with a one-line message.
    """
    if is_tensor(image):
        arr = _array_to_rgb(tensor_to_array(image), "image tensor")
        _check_size(arr, "image tensor")
        return _own(arr)
    if isinstance(image, np.ndarray):
        arr = _array_to_rgb(image, "image array")
        _check_size(arr, "image array")
        return _own(arr)
    if isinstance(image, Image.Image):
        arr = to_rgb_array(image)
        _check_size(arr, "image")
        return _own(arr)
    if not isinstance(image, (str, os.PathLike)):
        raise InputError(f"cannot read an image from a {type(image).__name__}; give a file path, "
                         "a PIL image, a numpy array or a torch tensor")
    path = Path(image)
    if not path.exists():
        raise InputError(f"image file not found: {path}")
    if not path.is_file():
        raise InputError(f"not a file: {path}")
    return _decode(path, path)


def decode_image_bytes(data: bytes, path: str | Path) -> np.ndarray:
    """`load_image` of a file's bytes already read (`path` names it in messages): a dataset
    reader hashes and decodes one read of the file."""
    import io

    return _decode(io.BytesIO(data), Path(path))


def _decode(source: Any, path: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # Between PIL's warning and error limits: a big photo, decoded like any other.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                img.load()
                arr = to_rgb_array(img, str(path))
    except Image.DecompressionBombError as exc:
        raise InputError(f"image {path} is too large to decode safely ({_bomb_size(exc)}); "
                         "shrink it below ~178 megapixels first") from None
    except UnidentifiedImageError:
        raise InputError(f"not an image file (unrecognised format): {path}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"cannot read image {path}: truncated or corrupt ({first})") from None
    except MemoryError:
        raise InputError(f"image {path} does not fit in memory; shrink it first") from None
    _check_size(arr, str(path))
    return _own(arr)


def _own(arr: np.ndarray) -> np.ndarray:
    """A contiguous, writable array: PIL's pixels are read-only, and torch.from_numpy warns
    on those (a notebook's first ``torch.from_numpy(image)`` would)."""
    arr = np.ascontiguousarray(arr)
    return arr if arr.flags.writeable else arr.copy()


def _bomb_size(exc: Exception) -> str:
    # PIL: "Image size (10000000000 pixels) exceeds limit of 178956970 pixels, ..."
    import re

    m = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(m.group(1)) / 1e6:,.0f} megapixels" if m else "over PIL's limit"


def _check_size(arr: np.ndarray, what: str) -> None:
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"{what} is too small ({arr.shape[1]}x{arr.shape[0]} pixels); "
                         "it needs at least 2x2")


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """The image with its long side at most `max_side` (area averaging); unchanged if smaller."""
    h, w = image.shape[:2]
    if max_side <= 0 or max(h, w) <= max_side:
        return image
    import cv2

    scale = max_side / max(h, w)
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
