"""The result of one explanation, and its atomic writers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESULT_FILES = ("attribution.npy", "regions.npy", "overlay.png", "curves.png", "explanation.json")


@dataclass
class Explanation:
    """An attribution of one image to one target.

    `attribution` is (H, W) float32 at the input image's resolution; `regions` the (H, W) int32
    label map; `order` the regions most important first. Curves are sampled at `curve_x`, the
    fraction of pixels revealed (insertion) or removed (deletion); `curve_score` says whether
    they are a probability over the vocabulary or a cosine similarity.
    """

    image: np.ndarray
    attribution: np.ndarray
    regions: np.ndarray
    order: list[int]
    scores: list[float]
    terms: dict[str, list[float]]
    curve_x: list[float]
    insertion_curve: list[float]
    deletion_curve: list[float]
    insertion_auc: float
    deletion_auc: float
    curve_score: str
    forward_passes: int
    seconds: float
    method: str
    model: dict[str, Any]
    target: dict[str, Any]
    settings: dict[str, Any]
    version: str
    timings: dict[str, float] = field(default_factory=dict)
    #: the image file it was made from, when there was one
    source: str | None = None
    #: SHA-256 of that file's bytes (what "already done" compares, with the settings)
    image_sha256: str | None = None

    @property
    def n_regions(self) -> int:
        return len(self.order)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the arrays, JSON-ready."""
        return {
            "mmattr_version": self.version, "image": self.source,
            "image_sha256": self.image_sha256, "method": self.method,
            "model": self.model,
            "target": self.target, "division": self.settings.get("division"),
            "n_regions": self.n_regions, "order": self.order,
            "insertion_auc": self.insertion_auc, "deletion_auc": self.deletion_auc,
            "curve_score": self.curve_score, "curve_x": self.curve_x,
            "insertion_curve": self.insertion_curve, "deletion_curve": self.deletion_curve,
            "step_scores": self.scores, "step_terms": self.terms,
            "forward_passes": self.forward_passes, "seconds": self.seconds,
            "timings": self.timings, "image_size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "settings": self.settings,
        }

    def save(self, out_dir: str | Path, top_k: int = 5, key: str | None = None) -> Path:
        """Write every result file into `out_dir`.

        `out_dir` must be new, empty or an earlier mmattr result (its marker file says so);
        anything else raises `InputError` and nothing is written. Files are written into a
        temporary folder inside it, then moved into place; the marker records `key` (what
        "already done" compares) once all of them are there. See `mmattr.outdir`.
        """
        from .outdir import write_result

        def fill(tmp: Path) -> list[str]:
            from .viz import heat_shown, important_prefix, save_curves, save_overlay

            np.save(tmp / "attribution.npy", self.attribution.astype(np.float32))
            np.save(tmp / "regions.npy", self.regions.astype(np.int32))
            mode = self.settings.get("attribution", "rank")
            shown = heat_shown(self.attribution, self.regions, self.order,
                               self.insertion_curve, mode)
            label, ticks = "attribution (high = more important)", None
            if shown is not None:
                label = "marginal gain of the region" if mode == "gain" else "rank (1 = first)"
                if mode != "gain":  # the region at rank i (0-based) has the value (N - i) / N
                    n, shown_ranks = self.n_regions, important_prefix(self.insertion_curve)
                    ticks = [((n - i) / n, str(i + 1)) for i in range(min(12, shown_ranks))]
            save_overlay(tmp / "overlay.png", self.image, self.attribution, self.regions,
                         self.order[:top_k], title=self.target.get("label", ""), shown=shown,
                         label=label, ticks=ticks)
            save_curves(tmp / "curves.png", self)
            (tmp / "explanation.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
            return list(RESULT_FILES)

        return write_result(out_dir, fill, key, files=RESULT_FILES)


def is_complete(out_dir: str | Path, key: str | None = None) -> bool:
    """`out_dir` holds a finished mmattr result (with this key, when one is given)."""
    from .outdir import is_complete as complete

    return complete(out_dir, key)
