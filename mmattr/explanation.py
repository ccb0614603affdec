"""The result of one explanation, and its atomic writers."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
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

    @property
    def n_regions(self) -> int:
        return len(self.order)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the arrays, JSON-ready."""
        return {
            "mmattr_version": self.version, "image": self.source, "method": self.method,
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

    def save(self, out_dir: str | Path, top_k: int = 5) -> Path:
        """Write every result file into `out_dir` atomically: all of them, or none.

        Files are written into a temporary sibling folder that then replaces `out_dir`, so an
        interrupted run never leaves a partial folder behind.
        """
        from .viz import save_curves, save_overlay

        out = Path(out_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            np.save(tmp / "attribution.npy", self.attribution.astype(np.float32))
            np.save(tmp / "regions.npy", self.regions.astype(np.int32))
            save_overlay(tmp / "overlay.png", self.image, self.attribution, self.regions,
                         self.order[:top_k])
            save_curves(tmp / "curves.png", self)
            (tmp / "explanation.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
            _replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out


def _replace_dir(src: Path, dst: Path) -> None:
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
        os.replace(dst, old / dst.name)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def is_complete(out_dir: str | Path) -> bool:
    out = Path(out_dir)
    return all((out / name).is_file() for name in RESULT_FILES)
