"""Pictures for people: a heat-map overlay with the top regions outlined, and the curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from .explanation import Explanation


def _edges(mask: np.ndarray) -> np.ndarray:
    """Pixels of `mask` that touch a pixel outside it (4-neighbourhood), 2 px thick."""
    pad = np.pad(mask, 1, mode="constant")
    inner = pad[1:-1, 1:-1] & pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    edge = mask & ~inner
    thick = edge.copy()
    thick[1:] |= edge[:-1]
    thick[:, 1:] |= edge[:, :-1]
    return thick


def colorize(attribution: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """(H, W) float → (H, W, 3) uint8 through a matplotlib colour map, min-max normalised."""
    import matplotlib

    a = attribution.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    rgb = matplotlib.colormaps[cmap](a)[..., :3]
    return (rgb * 255).astype(np.uint8)


def save_overlay(path: str | Path, image: np.ndarray, attribution: np.ndarray,
                 regions: np.ndarray, top: Sequence[int], alpha: float = 0.5) -> None:
    """Heat map blended over the image; the `top` regions outlined in white, the first in green."""
    heat = colorize(attribution).astype(np.float32)
    out = (1 - alpha) * image.astype(np.float32) + alpha * heat
    out = out.clip(0, 255).astype(np.uint8)
    for rank, region in enumerate(reversed(list(top))):
        edge = _edges(regions == region)
        first = rank == len(top) - 1
        out[edge] = (0, 255, 0) if first else (255, 255, 255)
    Image.fromarray(out).save(path)


def save_curves(path: str | Path, explanation: "Explanation") -> None:
    """Insertion and deletion curves side by side, AUCs in the titles."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    e = explanation
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
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
    fig.savefig(path)
    plt.close(fig)
