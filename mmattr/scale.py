"""Large inputs: divide and search on a downscaled copy, return maps at the input's size.

Models see 224-384 px; a 4000x3000 photo divided at full size only costs memory and time
(SLICO over 12 million pixels, full-size masks per region). The explanation is computed on a
copy whose long side is `max_side`, then its region map (nearest) and attribution map
(nearest for region maps, so every region keeps one value; bilinear for pixel maps) are
brought back to the input's resolution.
"""

from __future__ import annotations

import numpy as np

from .adapters.base import Adapter
from .explanation import Explanation
from .image import downscale
from .targets import Target


def upscale_map(values: np.ndarray, hw: tuple[int, int], smooth: bool) -> np.ndarray:
    """An (h, w) map resized to `hw` (nearest, or bilinear when `smooth`), dtype kept."""
    import cv2

    h, w = hw
    if values.shape == (h, w):
        return values
    if values.dtype == np.int32 and not smooth:
        # cv2 resizes int32 only with nearest; index arithmetic is exact and cheap.
        rows = np.minimum((np.arange(h) + 0.5) * values.shape[0] / h, values.shape[0] - 1)
        cols = np.minimum((np.arange(w) + 0.5) * values.shape[1] / w, values.shape[1] - 1)
        return values[rows.astype(np.intp)[:, None], cols.astype(np.intp)[None, :]]
    interp = cv2.INTER_LINEAR if smooth else cv2.INTER_NEAREST
    return cv2.resize(values.astype(np.float32), (w, h), interpolation=interp)


def explain_at_max_side(explainer, image: np.ndarray, target: Target, adapter: Adapter,
                        max_side: int, progress=None) -> Explanation:
    """`explainer.explain` on `image` downscaled to `max_side`, maps returned at full size."""
    small = downscale(image, max_side)
    result: Explanation = explainer.explain(small, target, adapter, progress=progress)
    if small is image:
        return result
    hw = image.shape[:2]
    regions = upscale_map(result.regions.astype(np.int32), hw, smooth=False)
    if result.order:  # a region map: each region keeps exactly its value
        values = np.zeros(int(result.regions.max()) + 1, np.float32)
        values[result.regions.ravel()] = result.attribution.ravel()
        attribution = values[regions]
    else:
        attribution = upscale_map(result.attribution.astype(np.float32), hw, smooth=True)
    result.image, result.regions, result.attribution = image, regions, attribution
    result.settings = {**result.settings, "explained_size": [int(small.shape[1]), int(small.shape[0])]}
    return result
