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


def _element_colours(e: "Explanation", cmap: str = HEAT_CMAP) -> tuple[list, list[bool], str]:
    """Per element: its colour, whether it is in the important part, and the legend's words.
    Every element is coloured by its rank (brighter = earlier) on the heat map's colour map; as
    on the image heat map (`heat_shown`), the important part is the prefix whose insertion curve
    reaches `IMPORTANT_SHARE` of its rise (``--attribution gain``: the positive gains), and the
    unimportant tail is faded towards white."""
    import matplotlib

    n = len(e.elements)
    values = np.array([row.get("value", 0.0) for row in e.elements], np.float64)
    if e.settings.get("attribution", "rank") == "gain" and e.method == "smdl":
        shown = [bool(v > 0) for v in values]
        legend = "faded: elements with no positive marginal gain"
    else:
        keep = set(e.order[:important_prefix(e.insertion_curve)]) if e.order else set()
        shown = [i in keep for i in range(n)]
        noun = {"text": "word", "audio": "segment"}.get(e.modality, "element")
        first = (f"the first {noun}, which reaches" if len(keep) == 1
                 else f"the first {len(keep)} {noun}s, which reach")
        legend = (f"outlined: {first} {IMPORTANT_SHARE:.0%} of the insertion curve's rise; "
                  "faded: the rest")
    lut = matplotlib.colormaps[cmap]
    rank = {int(i): r for r, i in enumerate(e.order)}
    colours = []
    for i in range(n):
        t = 1.0 - rank.get(i, n - 1) / max(n - 1, 1)  # first = 1, last = 0
        r, g, b, _ = lut(HEAT_FLOOR + (1 - HEAT_FLOOR) * t)
        if not shown[i]:
            r, g, b = (0.35 * r + 0.65, 0.35 * g + 0.65, 0.35 * b + 0.65)
        colours.append((r, g, b, 1.0))
    return colours, shown, legend


def save_elements(path: str | Path | BinaryIO, explanation: "Explanation", top_k: int = 5) -> None:
    """overlay.png of a text or audio explanation (`elements_figure`)."""
    elements_figure(explanation, top_k).savefig(path, format="png")


def elements_figure(explanation: "Explanation", top_k: int = 5) -> "Figure":
    """A text explanation: its words shaded by importance, each with its rank, beside the
    target image; an audio explanation: the waveform with its segments shaded and ranked."""
    if explanation.modality == "audio":
        return _audio_figure(explanation, top_k)
    return _text_figure(explanation, top_k)


def _with_target(fig: "Figure", e: "Explanation") -> tuple[Any, Any | None]:
    """The main axes, and the target image's axes on the left when the target is an image.
    Fixed positions (no tight layout), so what is measured while drawing stays where it is."""
    if e.image is not None and getattr(e.image, "size", 0):
        ax_img = fig.add_axes((0.015, 0.06, 0.25, 0.78))
        ax_img.imshow(e.image, interpolation="nearest")
        ax_img.set_title("target image", fontsize=9)
        ax_img.set_axis_off()
        return fig.add_axes((0.3, 0.16, 0.68, 0.68)), ax_img
    return fig.add_axes((0.04, 0.16, 0.93, 0.68)), None


def _text_figure(e: "Explanation", top_k: int) -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    colours, shown, legend = _element_colours(e)
    fig = Figure(figsize=(10.0, 3.4), dpi=110)
    renderer = FigureCanvasAgg(fig).get_renderer()
    ax, _ = _with_target(fig, e)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    ax.set_title("words ranked by how much they make the text match the target "
                 "(number = rank)", fontsize=9)
    rank = {int(i): r + 1 for r, i in enumerate(e.order)}
    n = len(e.elements)
    size = 15 if n <= 12 else 12 if n <= 30 else 9
    # Words laid out left to right and wrapped at the axes' width, each measured as drawn
    # with its box.
    width_px = ax.get_window_extent(renderer).width
    x, y, gap, step = 0.0, 0.8, 0.018, 0.27 if n <= 30 else 0.18
    for i, row in enumerate(e.elements):
        r, g, b, _ = colours[i]
        dark = (0.299 * r + 0.587 * g + 0.114 * b) < 0.5
        t = ax.text(x + 0.3 * size * fig.dpi / 72 / width_px, y, row["label"], fontsize=size, va="center", ha="left",
                    color="white" if dark else "black",
                    bbox={"boxstyle": "round,pad=0.3", "fc": colours[i],
                          "ec": "black" if shown[i] else "none", "lw": 0.8})
        # the text's extent plus the box's padding on both sides (0.3 of the font size)
        pad_px = 2 * 0.3 * size * fig.dpi / 72
        w = (t.get_window_extent(renderer).width + pad_px) / width_px
        if x > 0 and x + w > 1.0:  # wrap to the next line
            x, y = 0.0, y - step
            t.set_position((x + 0.3 * size * fig.dpi / 72 / width_px, y))
        if i in rank and (n <= 30 or rank[i] <= top_k):
            ax.text(x + w / 2, y + step * 0.42, str(rank[i]), fontsize=7, ha="center",
                    va="bottom", fontweight="bold",
                    bbox={"boxstyle": "circle,pad=0.2", "fc": "white", "ec": "0.4", "lw": 0.6})
        x += w + gap
    order = " · ".join(f"{r + 1} {e.elements[i]['label']}" for r, i in enumerate(e.order[:top_k]))
    ax.text(0.0, y - step, f"order: {order}", fontsize=9, va="center")
    ax.text(0.0, y - step * 1.45, legend, fontsize=7, va="center", color="0.35")
    fig.suptitle(f"{e.method} · which words of the text match {e.target.get('label', '')}"[:110],
                 fontsize=10)
    return fig


def _audio_figure(e: "Explanation", top_k: int) -> "Figure":
    from matplotlib.figure import Figure

    colours, shown, legend = _element_colours(e)
    fig = Figure(figsize=(10.0, 3.4), dpi=110)
    ax, _ = _with_target(fig, e)
    rate = float(e.sample_rate or 1)
    wave = np.asarray(e.waveform if e.waveform is not None else np.zeros(1), np.float32)
    bins = min(len(wave), 2000)
    edges = np.linspace(0, len(wave), bins + 1).astype(int)
    starts = np.unique(edges[:-1])  # the envelope per bin, without a loop over bins
    lo, hi = np.minimum.reduceat(wave, starts), np.maximum.reduceat(wave, starts)
    t = starts / rate
    rank = {int(i): r + 1 for r, i in enumerate(e.order)}
    top = float(max(np.abs(wave).max(), 1e-6))
    for i, row in enumerate(e.elements):
        a, b = row["span"][0] / rate, row["span"][1] / rate
        ax.axvspan(a, b, color=colours[i], alpha=0.75 if shown[i] else 0.35, lw=0)
        ax.axvline(a, color="white", lw=0.8)
        if i in rank and (shown[i] or rank[i] <= top_k):
            ax.text((a + b) / 2, top * 1.12, str(rank[i]), ha="center", va="bottom", fontsize=8,
                    fontweight="bold", bbox={"boxstyle": "circle,pad=0.2", "fc": "white",
                                             "ec": "0.4", "lw": 0.6})
    ax.fill_between(t, lo, hi, color="0.15", lw=0)
    ax.set_ylim(-top * 1.1, top * 1.35)
    ax.set_xlim(0, len(wave) / rate)
    ax.set_xlabel("seconds", fontsize=8)
    ax.set_yticks([])
    ax.set_title("segments ranked by how much they make the clip match the target "
                 "(number = rank)", fontsize=9)
    ax.text(0.0, -0.3, legend, transform=ax.transAxes, fontsize=7, color="0.35")
    fig.suptitle(f"{e.method} · which segments of the clip match {e.target.get('label', '')}"[:110],
                 fontsize=10)
    return fig


#: what the curves' x axis counts, by modality
CURVE_UNITS = {"image": "pixels", "text": "words", "audio": "the clip"}


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
        unit = CURVE_UNITS.get(getattr(e, "modality", "image"), "elements")
        ax.set_xlabel(f"fraction of {unit} " + ("revealed" if name == "Insertion" else "removed"))
        ax.set_ylabel("target " + e.curve_score)
        ax.set_xlim(0, 1)
        if e.curve_score == "probability":
            ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{e.method} · {e.target.get('label', '')}", fontsize=10)
    fig.tight_layout()
    return fig
