"""The result of one explanation, and its atomic writers."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .image import as_array as as_numpy
from .image import is_tensor

if TYPE_CHECKING:
    from .runs.folder import OutputFolder

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
    #: what was explained (`mmattr.elements.MODALITIES`): ``image`` (then `attribution` and
    #: `regions` are (H, W) maps), ``text`` (per character of `text`: the word a character
    #: belongs to, -1 between words, and its value) or ``audio`` (per sample of `waveform`)
    modality: str = "image"
    #: the elements as people read them, in element order: label (a word, a segment's time
    #: span), span (characters, samples), value, rank (1 = first); empty for images
    elements: list[dict[str, Any]] = field(default_factory=list)
    #: the explained text (``text`` modality)
    text: str | None = None
    #: the explained clip (``audio`` modality) and its sample rate
    waveform: np.ndarray | None = None
    sample_rate: int | None = None

    @property
    def n_regions(self) -> int:
        return len(self.order)

    @property
    def region_scores(self) -> Any:
        """(N,) float32: each region's attribution (its mean over the region's pixels; a region
        method gives every pixel of a region the same value), indexed by region label, so
        ``region_scores[regions]`` is the attribution map. A tensor on the map's device when
        the explanation holds tensors (``return_tensors="pt"``)."""
        att, lab = as_numpy(self.attribution).ravel(), as_numpy(self.regions).ravel()
        inside = lab >= 0  # a text's spaces belong to no word
        att, lab = att[inside], lab[inside]
        n = int(lab.max()) + 1 if lab.size else 0
        sums = np.bincount(lab, weights=att.astype(np.float64), minlength=n)
        values = (sums / np.maximum(np.bincount(lab, minlength=n), 1)).astype(np.float32)
        if is_tensor(self.attribution):
            import torch

            return torch.from_numpy(values).to(self.attribution.device)
        return values

    def as_tensors(self, device: Any = None) -> "Explanation":
        """This explanation with `attribution` (float32) and `regions` (int64) as torch tensors
        on `device` (default: where they are, else the CPU); the image stays a numpy array.
        Saving, plotting and the summary work the same."""
        import torch

        def move(values: Any, dtype: Any) -> Any:
            t = values if is_tensor(values) else torch.from_numpy(np.ascontiguousarray(values))
            return t.to(device=device if device is not None else t.device, dtype=dtype)

        return dataclasses.replace(self, attribution=move(self.attribution, torch.float32),
                                   regions=move(self.regions, torch.int64))

    def as_numpy(self) -> "Explanation":
        """This explanation with numpy arrays (the inverse of `as_tensors`)."""
        return dataclasses.replace(self, attribution=as_numpy(self.attribution).astype(np.float32),
                                   regions=as_numpy(self.regions).astype(np.int32))

    # -- display ----------------------------------------------------------------------------
    def __repr__(self) -> str:
        from .display import explanation_repr

        return explanation_repr(self)

    def _repr_png_(self) -> bytes:
        """The overlay as PNG: what a notebook shows for ``e`` where it cannot show HTML."""
        from .display import overlay_png

        return overlay_png(self)

    def _repr_html_(self) -> str:
        """The summary, the overlay and the curves: what a notebook shows for ``e``."""
        from .display import explanation_html

        return explanation_html(self)

    def plot(self, ax: Any = None, kind: str = "overlay") -> Any:
        """A matplotlib figure: ``kind="overlay"`` (overlay.png's two panels) or ``"curves"``
        (curves.png). With `ax`, that picture is drawn into the given axes and their figure is
        returned (for grids of explanations). The figure is not left open in pyplot, so a
        notebook shows it once and a loop of plots holds no memory."""
        from .display import plot

        return plot(self, ax=ax, kind=kind)

    @classmethod
    def load(cls, folder: str | Path) -> "Explanation":
        """An explanation back from a folder `save` wrote (arrays, curves and settings). The
        image is read from the file recorded in explanation.json when it is still there with
        the same content; otherwise `image` is a gray picture of the right size (a warning
        says so)."""
        from .display import load_explanation

        return load_explanation(cls, folder)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the arrays, JSON-ready (a text or audio explanation adds what was
        explained and its elements)."""
        if self.modality != "image":
            explained: dict[str, Any] = {"modality": self.modality, "elements": self.elements}
            if self.text is not None:
                explained["text"] = self.text
            if self.sample_rate is not None:
                explained["sample_rate"] = int(self.sample_rate)
                explained["samples"] = int(len(self.waveform)) if self.waveform is not None else 0
                # the clip's file: `source` holds it, but it is no image ("image" is the file
                # Explanation.load reads back as the picture)
                explained["audio"] = self.source
            image_only = ("division",)  # no division: the elements are words or segments
            return {**{k: v for k, v in self._image_dict().items() if k not in image_only},
                    "image": None, "image_sha256": None, "explained": explained}
        return self._image_dict()

    def _image_dict(self) -> dict[str, Any]:
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

    def save(self, out_dir: "str | Path | OutputFolder", top_k: int = 5, key: str | None = None,
             *, overwrite: bool = False) -> Path:
        """Write every result file into `out_dir` (a path, or a checked `OutputFolder`).

        `out_dir` must be new, empty or an earlier result of the same explanation settings
        (its marker says so; `overwrite` replaces one made with other settings); anything else
        raises `InputError` and nothing is written. Files are written into a temporary folder
        inside it, then moved into place; the marker records `key` (what "already done"
        compares) once all of them are there. See `mmattr.runs.folder`.
        """
        from .runs.folder import OutputFolder

        if isinstance(out_dir, OutputFolder):
            folder, own = out_dir, False
        else:
            from .outdir import legacy_result

            check_folder_name(out_dir)
            folder = OutputFolder(out_dir, "explain",
                                  {"target": self.target, "settings": self.settings},
                                  overwrite=overwrite, files=RESULT_FILES,
                                  recognise=legacy_result)
            own = True
        attribution = as_numpy(self.attribution).astype(np.float32)
        regions = as_numpy(self.regions).astype(np.int32)

        def fill(tmp: Path) -> list[str]:
            from .viz import heat_options, save_curves, save_elements, save_overlay

            np.save(tmp / "attribution.npy", attribution)
            np.save(tmp / "regions.npy", regions)
            if self.modality != "image":  # words or segments shaded by importance, ranked
                save_elements(tmp / "overlay.png", self, top_k=top_k)
            else:
                heat = heat_options(attribution, regions, self.order, self.insertion_curve,
                                    self.settings.get("attribution", "rank"))
                save_overlay(tmp / "overlay.png", self.image, attribution, regions,
                             self.order[:top_k], title=self.target.get("label", ""), **heat)
            save_curves(tmp / "curves.png", self)
            (tmp / "explanation.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
            return list(RESULT_FILES)

        try:
            folder.write_files(fill)
            folder.finish(key)
        finally:
            if own:
                folder.close()
        return folder.out


#: suffixes of picture files: `save` writes a folder, and a folder named like a picture is a
#: slip for ``e.plot().savefig(path)``
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pdf",
                    ".svg")


def check_folder_name(out_dir: str | Path) -> None:
    """`InputError` for a result folder named like a picture file (``e.save("out.png")``)."""
    from .errors import InputError

    if Path(out_dir).suffix.lower() in PICTURE_SUFFIXES and not Path(out_dir).is_dir():
        raise InputError(f"save() writes a folder of result files, and {str(out_dir)!r} is named "
                         "like a picture; give a folder (e.save('out/')), or write one picture "
                         f"with e.plot().savefig({str(out_dir)!r})")


def is_complete(out_dir: str | Path, key: str | None = None) -> bool:
    """`out_dir` holds a finished mmattr result (with this key, when one is given)."""
    from .runs.folder import is_complete as complete

    return complete(out_dir, key)
