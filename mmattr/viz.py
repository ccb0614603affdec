"""Pictures for people: the top regions over the dimmed photo beside a heat map with a colour
bar, and the curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Sequence

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .explanation import Explanation


#: the long side of each panel of overlay.png, in pixels
PANEL_SIDE = 768
#: brightness kept outside the top regions (the SMDL paper's figures dim the rest)
DIM = 0.3
#: the heat map's colour map: sequential (dark = less, bright = more), so only what matters
#: looks hot; a rainbow map makes the middle of any ranking look warm
HEAT_CMAP = "inferno"
#: the darkest share of HEAT_CMAP left out: the least important shown value stays visible
HEAT_FLOOR = 0.2
#: a region ordering's heat map colours the shortest prefix whose insertion curve reaches this
#: share of its rise; the rest is the unimportant tail, faded to the gray photo
IMPORTANT_SHARE = 0.9


def important_prefix(insertion_curve: Sequence[float], share: float = IMPORTANT_SHARE) -> int:
    """Regions in the shortest prefix whose insertion curve (black image first, then one value
    per region) reaches `share` of its largest rise above the black image; at least 1."""
    y = np.asarray(insertion_curve, np.float64)
    if y.size < 2:
        return max(0, y.size - 1)
    rise = y[1:] - y[0]
    top = float(rise.max())
    if top <= 0:
        return 1
    return int(np.argmax(rise >= share * top)) + 1


def heat_shown(attribution: np.ndarray, regions: np.ndarray, order: Sequence[int],
               insertion_curve: Sequence[float], mode: str) -> np.ndarray | None:
    """The pixels the heat map colours for a region ordering, None for a pixel map.

    ``gain``: regions whose marginal gain is above 0; ``rank``: the important prefix
    (`important_prefix`). Everything else is the unimportant tail, shown faded."""
    if not order or len(insertion_curve) != len(order) + 1:
        return None
    if mode == "gain":
        return attribution > 0
    return np.isin(regions, list(order[:important_prefix(insertion_curve)]))


def heat_options(attribution: np.ndarray, regions: np.ndarray, order: Sequence[int],
                 insertion_curve: Sequence[float], mode: str) -> dict[str, Any]:
    """`overlay_figure`'s heat-map keywords for an explanation (`shown`, the colour bar's
    `label` and `ticks`): one copy for overlay.png and the notebook view. `mode` is the
    explanation's attribution setting (rank or gain)."""
    shown = heat_shown(attribution, regions, order, insertion_curve, mode)
    if shown is None:
        return {}
    if mode == "gain":
        return {"shown": shown, "label": "marginal gain of the region"}
    n = len(order)  # the region at rank i (0-based) has the value (N - i) / N
    ticks = [((n - i) / n, str(i + 1)) for i in range(min(12, important_prefix(insertion_curve)))]
    return {"shown": shown, "label": "rank (1 = first)", "ticks": ticks}


def colorize(attribution: np.ndarray, cmap: str = HEAT_CMAP, floor: float = 0.0) -> np.ndarray:
    """(H, W) float → (H, W, 3) uint8 through a matplotlib colour map, min-max normalised onto
    the map's [floor, 1] part.

    Through a 256-entry table: memory stays at the output's size for any image."""
    import matplotlib

    a = attribution.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    idx = (np.zeros(a.shape, np.uint8) if hi <= lo
           else np.rint((a - lo) * (255.0 / (hi - lo))).astype(np.uint8))
    lut = (matplotlib.colormaps[cmap](np.linspace(floor, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    return lut[idx]


def _display(image: np.ndarray, attribution: np.ndarray, regions: np.ndarray,
             side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three arrays at display size (long side `side`): area-averaged image and map,
    nearest-neighbour labels."""
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale == 1.0:
        return image, attribution.astype(np.float32), regions
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    img = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    att = cv2.resize(attribution.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    rows = ((np.arange(size[1]) + 0.5) * h / size[1]).astype(np.intp)
    cols = ((np.arange(size[0]) + 0.5) * w / size[0]).astype(np.intp)
    return img, att, regions[rows[:, None], cols[None, :]]


def outline_width(hw: tuple[int, int]) -> int:
    """Outline thickness in pixels for an image of this size: visible at any size."""
    return max(2, round(max(hw) / 200))


def highlight(image: np.ndarray, keep: np.ndarray, dim: float = DIM) -> np.ndarray:
    """`image` with the pixels outside `keep` dimmed to `dim` of their brightness."""
    out = image.astype(np.float32)
    out[~keep] *= dim
    return out.round().astype(np.uint8)


def _inner_point(mask: np.ndarray) -> tuple[float, float]:
    """The point of `mask` farthest from its border (inside even for a C-shaped region)."""
    import cv2

    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)


def save_overlay(path: str | Path | BinaryIO, image: np.ndarray, attribution: np.ndarray,
                 regions: np.ndarray, top: Sequence[int], title: str = "",
                 cmap: str = HEAT_CMAP, shown: np.ndarray | None = None,
                 label: str = "attribution (high = more important)",
                 ticks: Sequence[tuple[float, str]] | None = None) -> None:
    """overlay.png (`overlay_figure`) written to `path` (a file name or a binary stream)."""
    overlay_figure(image, attribution, regions, top, title, cmap, shown=shown, label=label,
                   ticks=ticks).savefig(path, format="png")


def overlay_figure(image: np.ndarray, attribution: np.ndarray, regions: np.ndarray,
                   top: Sequence[int], title: str = "", cmap: str = HEAT_CMAP,
                   shown: np.ndarray | None = None,
                   label: str = "attribution (high = more important)",
                   ticks: Sequence[tuple[float, str]] | None = None) -> "Figure":
    """Two panels a person can read at a glance (a matplotlib Figure, made without pyplot).

    Left: the photo with the `top` regions at full brightness, outlined and numbered by rank
    (1 = most important), the rest dimmed, as in the SMDL paper's figures. A pixel map with
    no regions shows its top 20 % of pixels instead. Right: the heat map over a gray copy of
    the photo (so heat colours never mix with object colours) on a sequential colour map, with
    a colour bar. With `shown` ((H, W) bool, see `heat_shown`) only those pixels are coloured,
    scaled over their own values; the rest is the faded gray photo. `ticks` ((value, text)
    pairs) label the colour bar, e.g. with ranks.
    """
    import cv2
    from matplotlib.figure import Figure

    if shown is not None and shown.any():
        # Colour only the important part, scaled over its own values: the tail stays gray.
        lo_shown = float(attribution[shown].min())
        attribution = np.where(shown, attribution, lo_shown).astype(np.float32)
    else:
        shown = None
    img, att, lab = _display(image, attribution, regions, PANEL_SIDE)
    coloured = None if shown is None else _display(image, shown.astype(np.float32), regions,
                                                   PANEL_SIDE)[1] > 0.5
    h, w = img.shape[:2]
    width = outline_width((h, w))
    top = [int(r) for r in top]
    if top:
        keep = np.isin(lab, top)
    else:
        keep = att >= np.quantile(att, 0.8) if att.size else np.zeros_like(att, bool)
    left = highlight(img, keep)
    points = []
    for rank, region in enumerate(top, start=1):
        mask = (lab == region).astype(np.uint8)
        if not mask.any():
            continue
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        colour = (0, 255, 0) if rank == 1 else (255, 255, 255)
        cv2.drawContours(left, contours, -1, colour, width)
        points.append((rank, *_inner_point(mask.astype(bool))))
    gray = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    colours = colorize(att, cmap, HEAT_FLOOR)
    single = coloured is not None and float(att.max()) <= float(att.min())
    if single:  # one value shown (one region): the most important colour, not the least
        colours[:] = colorize(np.array([[0.0, 1.0]]), cmap, HEAT_FLOOR)[0, 1]
    heat = 0.45 * gray[..., None] + 0.55 * colours.astype(np.float32)
    if coloured is not None:
        heat[~coloured] = 0.8 * gray[~coloured][:, None]  # the unimportant tail: the photo, faded
    right = heat.clip(0, 255).astype(np.uint8)

    panel_w, panel_h = 4.6, 4.6 * h / w
    fig = Figure(figsize=(2 * panel_w + 1.0, panel_h + 0.8), dpi=max(100, round(w / panel_w)))
    axes = fig.subplots(1, 2)
    axes[0].imshow(left, interpolation="nearest")
    axes[0].set_title(f"top {len(top)} regions, ranked (rest dimmed)" if top
                      else "top 20% of pixels (rest dimmed)", fontsize=9)
    for rank, x, y in points:
        axes[0].text(x, y, str(rank), ha="center", va="center", fontsize=9, fontweight="bold",
                     color="black", bbox={"boxstyle": "circle,pad=0.25", "fc": "white",
                                          "ec": "none", "alpha": 0.85})
    lo, hi = float(attribution.min()), float(attribution.max())
    axes[1].imshow(right, interpolation="nearest")
    axes[1].set_title("attribution heat map" if coloured is None
                      else "attribution heat map (unimportant tail faded)", fontsize=9)
    import matplotlib
    from matplotlib.colors import ListedColormap

    bar_cmap = ListedColormap(matplotlib.colormaps[cmap](np.linspace(HEAT_FLOOR, 1, 256)))
    norm = (matplotlib.colors.Normalize(lo, hi) if hi > lo else
            matplotlib.colors.Normalize(lo - 1, lo) if single else
            matplotlib.colors.Normalize(lo, lo + 1))
    mappable = matplotlib.cm.ScalarMappable(norm=norm, cmap=bar_cmap)
    bar = fig.colorbar(mappable, ax=axes[1], fraction=0.046, pad=0.03)
    bar.set_label(label, fontsize=8)
    if ticks:
        bar.set_ticks([v for v, _ in ticks], labels=[t for _, t in ticks])
    bar.ax.tick_params(labelsize=7)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title if len(title) <= 80 else title[:79] + "…", fontsize=10)
    fig.tight_layout()
    return fig


def save_curves(path: str | Path | BinaryIO, explanation: "Explanation") -> None:
    """curves.png (`curves_figure`) written to `path` (a file name or a binary stream)."""
    curves_figure(explanation).savefig(path, format="png")


def curves_figure(explanation: "Explanation") -> "Figure":
    """Insertion and deletion curves side by side, AUCs in the titles."""
    from matplotlib.figure import Figure  # no pyplot: its import and backend choice cost time

    e = explanation
    fig = Figure(figsize=(9, 3.6), dpi=100)
    axes = fig.subplots(1, 2)
    for ax, curve, name, auc_value, colour in (
            (axes[0], e.insertion_curve, "Insertion", e.insertion_auc, "tab:green"),
            (axes[1], e.deletion_curve, "Deletion", e.deletion_auc, "tab:red")):
        ax.plot(e.curve_x, curve, color=colour, marker=".", markersize=3)
        ax.fill_between(e.curve_x, curve, alpha=0.2, color=colour)
        ax.set_title(f"{name} (AUC {auc_value:.4f})")
        ax.set_xlabel("fraction of pixels " + ("revealed" if name == "Insertion" else "removed"))
        ax.set_ylabel("target " + e.curve_score)
        ax.set_xlim(0, 1)
        if e.curve_score == "probability":
            ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{e.method} · {e.target.get('label', '')}", fontsize=10)
    fig.tight_layout()
    return fig
