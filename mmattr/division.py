"""Dividing an image into sub-regions: an integer label map covering every pixel.

Ref. Chen et al., "Less is More: Fewer Interpretable Region via Submodular Subset Selection",
ICLR 2024 (SLICO division, region size 30 at 224 px).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .errors import InputError, arg
from .options import NoOptions, as_dict, option, parse_options
from .ranking import pixel_rank
from .registry import Registry

DIVIDERS: Registry[type["Divider"]] = Registry("division", providers=("mmattr.explainers.prior",),
                                               components=True)


def register_divider(name: str):
    return DIVIDERS.register(name)


def list_dividers() -> list[str]:
    return DIVIDERS.names()


class Divider(ABC):
    """Splits an image into at most `regions` sub-regions.

    A divider's own settings are its ``Options`` dataclass (mmattr.options): the keyword
    arguments are validated against it once, here, and kept as `options` (a dict, recorded in
    explanation.json); a subclass declares fields and reads ``self.options[name]``.
    """

    #: registry name, set by each subclass (the COMPONENT of ``-O COMPONENT.NAME=VALUE``)
    name: ClassVar[str] = ""
    #: the divider's declared options
    Options: ClassVar[type] = NoOptions

    def __init__(self, regions: int = 49, **options: Any) -> None:
        if regions < 1:
            raise InputError(f"{arg('regions', regions)}: regions must be at least 1")
        self.regions = int(regions)
        self.options: dict[str, Any] = as_dict(parse_options(
            type(self).Options, options, component=self.name or type(self).__name__,
            kind="division"))

    #: True for divisions that run a model (``prior:<method>``): `divide` needs a context
    needs_context: bool = False
    #: True when `regions` is a count the division means to meet (a grid), so a different
    #: count is worth a warning; superpixels give "about" `regions` by nature
    exact_count: ClassVar[bool] = False

    @abstractmethod
    def _labels(self, image: np.ndarray) -> np.ndarray:
        """Raw labels (H, W), any integers; `divide` relabels and enforces the bound."""

    def _labels_in_context(self, image: np.ndarray, context: "DivisionContext") -> np.ndarray:
        return self._labels(image)

    def divide(self, image: np.ndarray, context: "DivisionContext | None" = None) -> np.ndarray:
        """(H, W, 3) uint8 → (H, W) int32 labels 0..N-1, N ≤ `regions`, every label used.

        `context` (adapter, target, config) is only needed by divisions that run a model.
        """
        h, w = image.shape[:2]
        if self.regions > h * w:
            raise InputError(f"{arg('regions', self.regions)} is more than the image's {h * w} pixels")
        if self.needs_context:
            if context is None:
                raise InputError(f"division {type(self).__name__} needs the model and the target")
            raw = self._labels_in_context(image, context)
        else:
            raw = self._labels(image)
        labels = _relabel(raw)
        if labels.max() + 1 > self.regions:
            labels = merge_smallest(labels, self.regions)
        if self.exact_count and labels.max() + 1 != self.regions:
            from .errors import warn

            # one warning per message and place, one line on the CLI: said once, not per image
            warn(f"the {self.name} division makes {int(labels.max()) + 1} regions on this "
                 f"{w}x{h} image, not the {arg('regions', self.regions)} asked for "
                 f"({self._count_reason(h, w)})")
        return labels

    def _count_reason(self, h: int, w: int) -> str:
        """Why an `exact_count` division made another count (for the warning)."""
        return "the nearest count it can make"

    def settings(self) -> dict[str, Any]:
        return {"regions": self.regions, **self.options}

    def resolved_options(self) -> dict[str, dict[str, Any]]:
        """The options of this divider and of any component it runs, by component name."""
        return {self.name: dict(self.options)}


def _relabel(labels: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


def merge_smallest(labels: np.ndarray, limit: int) -> np.ndarray:
    """Merge the smallest regions into the neighbour they share most border with until ≤ limit."""
    labels = labels.copy()
    n = int(labels.max()) + 1
    # Border counts between adjacent labels, from horizontal and vertical neighbour pairs.
    pairs = np.concatenate([
        np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
        np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], 1)])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    adj = np.zeros((n, n), np.int64)
    np.add.at(adj, (pairs[:, 0], pairs[:, 1]), 1)
    adj = adj + adj.T
    sizes = np.bincount(labels.ravel(), minlength=n).astype(np.int64)
    parent = np.arange(n)
    alive = np.ones(n, bool)
    for _ in range(n - limit):
        idx = np.flatnonzero(alive)
        small = idx[np.argmin(sizes[idx])]
        row = adj[small].copy()
        row[~alive] = 0
        row[small] = 0
        if row.max() > 0:
            target = int(np.argmax(row))
        else:  # an isolated region (no live neighbour): merge into the next smallest
            others = idx[idx != small]
            target = int(others[np.argmin(sizes[others])])
        parent[parent == small] = target
        sizes[target] += sizes[small]
        adj[target] += adj[small]
        adj[:, target] += adj[:, small]
        adj[target, target] = 0
        alive[small] = False
    return _relabel(parent[labels])


@register_divider("slico")
class SlicoDivider(Divider):
    """SLICO superpixels (OpenCV ximgproc), region size scaled so about `regions` come out.

    Ref. Achanta et al., "SLIC Superpixels Compared to State-of-the-Art Superpixel Methods",
    TPAMI 2012; defaults from the SMDL reference code (ruler 20, 20 iterations).
    """

    name = "slico"

    @dataclass(frozen=True)
    class Options:
        ruler: float = option(20.0, "compactness: larger gives squarer superpixels", above=0)
        iterations: int = option(20, "SLICO iterations", min=1)

    def _labels(self, image: np.ndarray) -> np.ndarray:
        import cv2

        h, w = image.shape[:2]
        # The reference uses region size 30 at 224×224 (≈49 regions): keep the pixels per region.
        size = max(2, int(round(math.sqrt(h * w / self.regions))))
        slic = cv2.ximgproc.createSuperpixelSLIC(
            np.ascontiguousarray(image), algorithm=cv2.ximgproc.SLICO, region_size=size,
            ruler=float(self.options["ruler"]))
        slic.iterate(int(self.options["iterations"]))
        return slic.getLabels()


@register_divider("grid")
class GridDivider(Divider):
    """A regular grid of rows × cols cells, rows × cols ≤ `regions`, cells as square as possible."""

    name = "grid"
    exact_count = True

    def _labels(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return grid_labels(h, w, *grid_shape(h, w, self.regions))

    def _count_reason(self, h: int, w: int) -> str:
        rows, cols = grid_shape(h, w, self.regions)
        return f"a grid of {rows} x {cols} cells with the squarest cells"


@register_divider("labels")
class LabelsDivider(Divider):
    """A label map the user gives (Captum's ``feature_mask``): one region per label. From
    Python ``division=<(H, W) integer array or tensor>`` (the settings say
    ``labels:<digest>``; `regions` becomes the map's label count unless given); in a file or
    on the command line ``labels:FILE`` (an .npy array, or a gray image whose values are the
    labels). As every division, more labels than `regions` are merged smallest first. A map
    of another size with the image's aspect ratio is resized (nearest): a large image is
    divided on a downscaled copy (``max_side``)."""

    name = "labels"

    def __init__(self, regions: int = 49, source: str = "", labels: Any = None,
                 **options: Any) -> None:
        super().__init__(regions, **options)
        self.source = source
        self._given = labels

    def _map(self) -> np.ndarray:
        from .fill import digest

        if self._given is not None and digest(np.asarray(self._given)) == self.source:
            raw = np.asarray(self._given)
        elif self.source and Path(self.source).expanduser().is_file():
            raw = read_label_file(Path(self.source).expanduser())
        elif not self.source:
            raise InputError(f"the labels division needs a label map: {arg('division')}"
                             "<(H, W) integer array> from Python, or labels:FILE")
        else:
            raise InputError(f"division labels:{self.source}: no label map file there (a label "
                             "array given from Python does not come with a config file)")
        return check_label_map(raw)

    def _labels(self, image: np.ndarray) -> np.ndarray:
        labels = self._map()
        h, w = image.shape[:2]
        if labels.shape != (h, w):
            lh, lw = labels.shape
            if abs(lh / lw - h / w) > 0.02 * (h / w) + 1.0 / min(lh, lw):
                raise InputError(f"the label map is {lw}x{lh} pixels, the image {w}x{h}: give "
                                 "one label per pixel of the image")
            rows = np.minimum(((np.arange(h) + 0.5) * lh / h).astype(np.intp), lh - 1)
            cols = np.minimum(((np.arange(w) + 0.5) * lw / w).astype(np.intp), lw - 1)
            labels = labels[rows[:, None], cols[None, :]]
        return labels

    def settings(self) -> dict[str, Any]:
        return {"regions": self.regions, "labels": self.source}


def check_label_map(raw: Any) -> np.ndarray:
    """An (H, W) map of integer labels (a torch tensor, or floats holding integers, too)."""
    from .image import is_tensor, tensor_to_array

    arr = tensor_to_array(raw) if is_tensor(raw) else np.asarray(raw)
    arr = arr.squeeze() if arr.ndim > 2 and all(n == 1 for n in arr.shape[:-2]) else arr
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"a label map is (H, W), one integer label per pixel, got shape "
                         f"{arr.shape}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int64)
    if not (np.issubdtype(arr.dtype, np.integer)
            or (np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all()
                and np.array_equal(arr, np.round(arr)))):
        raise InputError(f"a label map holds integer labels, got values of type {arr.dtype}")
    if arr.min() < 0:
        raise InputError(f"a label map holds labels 0 or more, got {arr.min()}")
    return arr.astype(np.int64)


def read_label_file(path: Path) -> np.ndarray:
    """A label map from an .npy file or an image (a gray or palette image: its values)."""
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"cannot read label map {path}: {exc}") from None
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img if img.mode in ("L", "P", "I", "I;16") else img.convert("L"))
    except OSError as exc:
        raise InputError(f"cannot read label map {path}: {exc}") from None


def grid_labels(h: int, w: int, rows: int, cols: int) -> np.ndarray:
    """(h, w) labels of a rows × cols grid, row-major, cells differing by at most one pixel."""
    r = np.minimum((np.arange(h) * rows) // h, rows - 1)
    c = np.minimum((np.arange(w) * cols) // w, cols - 1)
    return (r[:, None] * cols + c[None, :]).astype(np.int32)


def grid_shape(h: int, w: int, n: int) -> tuple[int, int]:
    """rows × cols ≤ n: among shapes with at least 3/4 of the most cells, the squarest cells."""
    shapes = [(rows, min(n // rows, w)) for rows in range(1, min(n, h) + 1)]
    most = max(r * c for r, c in shapes)
    good = [(r, c) for r, c in shapes if r * c >= 0.75 * most]
    return min(good, key=lambda rc: (abs(math.log((h / rc[0]) / (w / rc[1]))), -rc[0] * rc[1]))


@register_divider("seeds")
class SeedsDivider(Divider):
    """SEEDS superpixels (OpenCV ximgproc), `regions` superpixels requested.

    Ref. Van den Bergh et al., "SEEDS: Superpixels Extracted via Energy-Driven Sampling",
    ECCV 2012; defaults from the SMDL reference code (50 superpixels, 3 levels, 10 iterations).
    """

    name = "seeds"

    @dataclass(frozen=True)
    class Options:
        levels: int = option(3, "block levels of the SEEDS hierarchy", min=1)
        iterations: int = option(10, "SEEDS iterations", min=1)

    def _labels(self, image: np.ndarray) -> np.ndarray:
        import cv2

        h, w = image.shape[:2]
        # OpenCV's SEEDS corrupts memory (a segfault, or a crash later) on images that are small
        # for the superpixels asked for (3×4 px, 10×10 px with 49, 64×32 with 2000): such images
        # are divided at k× their size (pixels repeated) and the labels read back every k-th
        # pixel. k = 1, the reference's path, for any side ≥ 32 with ≥ 16 pixels per superpixel.
        k = max(math.ceil(_SEEDS_MIN_SIDE / min(h, w)),
                math.ceil(math.sqrt(_SEEDS_MIN_PIXELS * self.regions / (h * w))), 1)
        # The reference reads images with cv2 (BGR); keep its channel order.
        bgr = np.ascontiguousarray(image[..., ::-1].repeat(k, axis=0).repeat(k, axis=1))
        seeds = cv2.ximgproc.createSuperpixelSEEDS(w * k, h * k, 3, self.regions,
                                                   int(self.options["levels"]))
        seeds.iterate(bgr, int(self.options["iterations"]))
        return seeds.getLabels()[::k, ::k]


#: the smallest image side and pixels per superpixel on which OpenCV's SEEDS runs safely
_SEEDS_MIN_SIDE = 32
_SEEDS_MIN_PIXELS = 16


def masks_to_labels(masks: list[np.ndarray], min_area: float = 0.0005) -> np.ndarray:
    """Overlapping boolean masks → one label per pixel.

    Masks are painted from the largest to the smallest, so a small mask lying on a larger one
    keeps its pixels (overlaps removed); a mask left with fewer than `min_area` of the image's
    pixels is dropped, and every pixel no mask kept becomes one more region.
    """
    if not masks:
        raise ValueError("no masks")
    h, w = masks[0].shape
    labels = np.full((h, w), -1, np.int64)
    for k in np.argsort([-int(m.sum()) for m in masks], kind="stable"):
        labels[masks[k]] = k
    counts = np.bincount(labels[labels >= 0].ravel(), minlength=len(masks))
    small = counts < min_area * h * w
    labels[(labels >= 0) & small[np.maximum(labels, 0)]] = -1
    labels[labels < 0] = len(masks)  # the leftover region
    return labels


@register_divider("sam")
class SamDivider(Divider):
    """segment-anything's automatic masks: stability threshold 0.8, overlaps removed, masks
    under 0.05% of the area dropped, the leftover pixels one more region.

    Ref. Kirillov et al., "Segment Anything", ICCV 2023; settings from the SMDL reference code.
    """

    name = "sam"

    @dataclass(frozen=True)
    class Options:
        checkpoint: str | None = option(None, "segment-anything checkpoint file "
                                              "(also --sam-checkpoint)")
        model: str = option("vit_b", "SAM backbone of the checkpoint (also --sam-model)",
                            choices=("vit_b", "vit_l", "vit_h"))
        points_per_side: int = option(32, "point grid side of the automatic mask generator",
                                      min=1)
        stability_score_thresh: float = option(0.8, "keep masks at least this stable",
                                               min=0, max=1)
        min_area: float = option(0.0005, "drop masks under this fraction of the image",
                                 min=0, below=1)

    def __init__(self, regions: int = 49, device: str = "cpu", **options: Any) -> None:
        super().__init__(regions, **options)
        if not self.options["checkpoint"]:
            raise InputError(f"{arg('division', 'sam')} needs {arg('sam_checkpoint', 'FILE')} (a "
                             "segment-anything checkpoint, e.g. sam_vit_b_01ec64.pth)")
        self._device = device  # the run's device, a cross-cutting setting, not an option

    def _generator(self):
        sam = cached_sam(self.options["checkpoint"], self.options["model"], self._device)
        from segment_anything import SamAutomaticMaskGenerator

        return SamAutomaticMaskGenerator(
            sam, points_per_side=int(self.options["points_per_side"]),
            stability_score_thresh=float(self.options["stability_score_thresh"]))

    def _labels(self, image: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            found = self._generator().generate(np.ascontiguousarray(image))
        masks = [np.asarray(m["segmentation"], bool) for m in found]
        if not masks:
            return np.zeros(image.shape[:2], np.int32)
        return masks_to_labels(masks, float(self.options["min_area"]))


@functools.lru_cache(maxsize=1)
def cached_sam(checkpoint: str, model: str = "vit_b", device: str = "cpu"):
    """`load_sam`, keeping the last SAM model loaded (an LRU of one: a SAM model is large;
    ``cached_sam.cache_clear()`` frees it)."""
    return load_sam(checkpoint, model, device)


def load_sam(checkpoint: str, model: str = "vit_b", device: str = "cpu"):
    """A segment-anything model from a checkpoint file, loaded with weights_only=True."""
    from pathlib import Path

    import torch

    try:
        from segment_anything import sam_model_registry
    except ImportError:
        raise InputError("--division sam needs segment-anything: pip install 'mmattr[sam]'") from None
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(f"SAM checkpoint not found: {path}")
    sam = sam_model_registry[model]()  # random weights; ours are loaded below, safely
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        sam.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001  (pickle, shape or key errors: one line)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"cannot load SAM {model} checkpoint {path}: {first}") from None
    return sam.to(device).eval()


@dataclass
class DivisionContext:
    """What a model-driven division (``prior:<method>``) needs besides the image."""

    adapter: Any
    target: Any
    config: Any
    #: the explainer's `RunContext` (its map cache serves the prior's map)
    run: Any = None


def prior_labels(saliency: np.ndarray, grid: int, group: int) -> np.ndarray:
    """(H, W) map → labels: mean saliency per cell of a grid × grid partition, cells ranked
    (ties: raster order), rank // group the region, so region 0 is the most salient."""
    h, w = saliency.shape
    g = min(grid, h, w)
    cells = grid_labels(h, w, g, g)
    sums = np.bincount(cells.ravel(), weights=saliency.ravel(), minlength=g * g)
    means = sums / np.bincount(cells.ravel(), minlength=g * g)
    return (pixel_rank(means) // group)[cells].astype(np.int32)


def divider_from_config(config: Any) -> Divider:
    """The divider an ExplainConfig asks for, with its options (``config.options[name]``)."""
    name, _, arg_ = config.division.partition(":")
    options: dict[str, Any] = config.options_for(name)
    if name == "labels":  # the map is an array given from Python, or a file
        return LabelsDivider(config.regions, source=arg_,
                             labels=getattr(getattr(config, "arrays", None), "labels", None),
                             **options)
    if name == "sam":
        from .adapters import resolve_device

        options["device"] = str(resolve_device(config.device))
    return make_divider(config.division, config.regions, **options)


def make_divider(spec: str, regions: int, **options: Any) -> Divider:
    """``slico`` → SlicoDivider; ``prior:hsic`` → the ``prior`` divider with method="hsic"."""
    name, _, arg = spec.partition(":")
    if arg:
        options["method"] = arg
    return DIVIDERS.get(name)(regions=regions, **options)
