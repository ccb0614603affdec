"""The audit's pictures as PNG bytes: reliability diagram, confusion matrix, per-class and
per-slice accuracy with intervals, thumbnails and attribution overlays."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image

from .measures import Calibration, ClassAccuracy


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height), dpi=100)


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def reliability_png(cal: Calibration) -> bytes:
    """Accuracy against mean confidence per bin (bars), the diagonal of perfect calibration,
    and the share of images per bin underneath."""
    plt, fig, ax = _figure(5.2, 4.2)
    edges = np.asarray(cal.bin_edges)
    width = np.diff(edges)
    acc = np.nan_to_num(np.asarray(cal.bin_accuracy, dtype=float))
    conf = np.nan_to_num(np.asarray(cal.bin_confidence, dtype=float))
    count = np.asarray(cal.bin_count)
    has = count > 0
    ax.bar(edges[:-1][has], acc[has], width=width[has], align="edge", color="tab:blue",
           edgecolor="white", label="accuracy in bin")
    ax.bar(edges[:-1][has], (conf - acc)[has], bottom=acc[has], width=width[has], align="edge",
           color="tab:red", alpha=0.3, edgecolor="tab:red", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the top prediction")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {cal.ece:.3f}, {cal.n_bins} bins)")
    ax.legend(loc="upper left", fontsize=8)
    return _png(plt, fig)


def confusion_png(confusion: np.ndarray, names: Sequence[str], max_classes: int = 40) -> bytes:
    """Row-normalised confusion matrix (share of each true class predicted as each class); with
    more than `max_classes` classes, the classes with the most errors only."""
    k = len(names)
    idx = np.arange(k)
    present = confusion.sum(axis=1) + confusion.sum(axis=0) > 0
    idx = idx[present]
    if len(idx) > max_classes:
        errors = confusion.sum(axis=1) - np.diag(confusion) + confusion.sum(axis=0) - np.diag(confusion)
        idx = np.sort(idx[np.argsort(-errors[idx], kind="stable")[:max_classes]])
    sub = confusion[np.ix_(idx, idx)].astype(float)
    rows = np.maximum(sub.sum(axis=1, keepdims=True), 1)
    side = max(4.0, 0.22 * len(idx) + 2.5)
    plt, fig, ax = _figure(side + 1.0, side)
    im = ax.imshow(sub / rows, cmap="Blues", vmin=0, vmax=1)
    labels = [names[i] for i in idx]
    ax.set_xticks(range(len(idx)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(idx)), labels, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion (share of each true class)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _png(plt, fig)


def class_accuracy_png(classes: Sequence[ClassAccuracy], overall: float, max_classes: int = 40
                       ) -> bytes:
    """Per-class accuracy with 95 % intervals, worst first; the overall accuracy as a line."""
    rows = sorted(classes, key=lambda c: c.accuracy)[:max_classes]
    plt, fig, ax = _figure(7.0, max(2.5, 0.22 * len(rows) + 1.2))
    y = np.arange(len(rows))
    acc = np.array([c.accuracy for c in rows])
    err = np.clip(np.array([[c.accuracy - c.ci_low for c in rows], [c.ci_high - c.accuracy for c in rows]]), 0, None)
    ax.barh(y, acc, xerr=err, color="tab:blue", alpha=0.8, ecolor="black", capsize=2)
    ax.axvline(overall, color="tab:red", ls="--", lw=1, label=f"overall {overall:.3f}")
    ax.set_yticks(y, [f"{c.name} (n={c.support})" for c in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy (95% Wilson interval)")
    ax.set_title("Per-class accuracy, worst first")
    ax.legend(loc="lower right", fontsize=8)
    return _png(plt, fig)


def slices_png(slices: Sequence, overall: float) -> bytes:
    """Accuracy of each reported slice with its interval, against the overall accuracy."""
    plt, fig, ax = _figure(6.0, max(2.2, 0.45 * len(slices) + 1.2))
    y = np.arange(len(slices))
    acc = np.array([s.accuracy for s in slices])
    err = np.clip(np.array([[s.accuracy - s.ci_low for s in slices], [s.ci_high - s.accuracy for s in slices]]), 0, None)
    ax.barh(y, acc, xerr=err, color="tab:orange", ecolor="black", capsize=3)
    ax.axvline(overall, color="tab:red", ls="--", lw=1, label=f"overall {overall:.3f}")
    ax.set_yticks(y, [f"slice {s.rank} (n={s.size})" for s in slices], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy in slice (95% Wilson interval)")
    ax.set_title("Failure slices")
    ax.legend(loc="lower right", fontsize=8)
    return _png(plt, fig)


def thumbnail_png(image: np.ndarray, side: int = 96) -> bytes:
    """A small PNG of an image, its longer side `side` pixels."""
    img = Image.fromarray(image)
    img.thumbnail((side, side), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def overlay_png(image: np.ndarray, attribution: np.ndarray, side: int = 128, alpha: float = 0.5
                ) -> bytes:
    """The attribution as a heat map over the photo (photo stays visible), as a small PNG."""
    from ..viz import colorize

    heat = colorize(attribution).astype(np.float32)
    out = ((1 - alpha) * image.astype(np.float32) + alpha * heat).clip(0, 255).astype(np.uint8)
    return thumbnail_png(out, side)


def top_area_png(image: np.ndarray, attribution: np.ndarray, fraction: float = 0.25,
                 side: int = 128) -> bytes:
    """The photo with its `fraction` most attributed pixels at full brightness, the rest
    dimmed (as the SMDL paper's figures show a selection), with a thin heat tint on the kept
    part, as a small PNG: at thumbnail size it says at a glance whether the object or the
    background was chosen, and the photo stays readable."""
    from ..ranking import top_fraction
    from ..viz import colorize, highlight

    keep = top_fraction(np.asarray(attribution, np.float32), fraction)
    out = highlight(image, keep, dim=0.25).astype(np.float32)
    heat = colorize(attribution).astype(np.float32)
    out[keep] = 0.8 * out[keep] + 0.2 * heat[keep]
    return thumbnail_png(out.clip(0, 255).astype(np.uint8), side)
