"""Results in a notebook or a script: short reprs, inline pictures, figures, HTML summaries.

`Explanation`, `AuditResult` and the Representative Interpretations results call these from
their ``__repr__`` / ``_repr_png_`` / ``_repr_html_`` / ``plot``; the pictures are the ones
the writers make (`mmattr.viz`), so a notebook shows what overlay.png and curves.png hold.
The audit and RI summaries read their objects by attribute and their ``summary`` dicts with
``.get``: a field added or missing there changes a row, never breaks the display.
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .explanation import Explanation

#: regions outlined in a notebook's overlay (as ``top_k``'s default for saved ones)
TOP_K = 5
PLOT_KINDS = ("overlay", "curves")


def _label(e: "Explanation", limit: int = 60) -> str:
    text = str(e.target.get("label", ""))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def explanation_repr(e: "Explanation") -> str:
    """One line: method, target, model, size, regions, AUCs, cost (never the arrays)."""
    from .image import is_tensor

    h, w = e.image.shape[:2]
    where = f"{e.n_regions} regions" if e.order else "pixel map"
    if e.modality != "image":  # a text's words or a clip's segments (no image explained)
        where = f"{e.modality}, {len(e.elements)} {_NOUNS.get(e.modality, 'elements')}"
    kind = f", tensors on {e.attribution.device}" if is_tensor(e.attribution) else ""
    return (f"Explanation({e.method}, {_label(e)!r}, model={e.model.get('spec', '?')!r}, "
            f"image={w}x{h}, {where}, insertion_auc={e.insertion_auc:.4f}, "
            f"deletion_auc={e.deletion_auc:.4f}, {e.forward_passes} passes, "
            f"{e.seconds:.1f} s{kind})")


#: what the elements of a text or audio explanation are called in the summaries
_NOUNS = {"text": "words", "audio": "segments"}


def _png(fig: "Figure") -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def overlay_figure(e: "Explanation", top_k: int = TOP_K) -> "Figure":
    from .image import as_array as as_numpy
    from .viz import heat_options
    from .viz import overlay_figure as figure

    if e.modality != "image":  # overlay.png of a text or a clip: its elements shaded, ranked
        from .viz import elements_figure

        return elements_figure(e, top_k)
    attribution, regions = as_numpy(e.attribution), as_numpy(e.regions)
    heat = heat_options(attribution, regions, e.order, e.insertion_curve,
                        e.settings.get("attribution", "rank"))  # the same picture as overlay.png
    return figure(e.image, attribution, regions, e.order[:top_k],
                  title=str(e.target.get("label", "")), **heat)


def overlay_png(e: "Explanation", top_k: int = TOP_K) -> bytes:
    """overlay.png's picture, as PNG bytes."""
    return _png(overlay_figure(e, top_k))


def _img(png: bytes, alt: str, width: str = "100%") -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" '
            f'style="max-width:{width};height:auto">')


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                    f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                    for k, v in rows if v is not None)
    return f"<table>{cells}</table>"


def explanation_html(e: "Explanation") -> str:
    """The summary table, the overlay and the curves, one self-contained HTML block."""
    from .viz import curves_figure

    rows = [("target", e.target.get("label", "")), ("method", e.method),
            ("model", e.model.get("spec"))]
    if e.modality == "image":
        rows += [("division", f"{e.settings.get('division')}, {e.n_regions} regions" if e.order
                  else "pixel map"),
                 ("top regions", ", ".join(str(r) for r in e.order[:TOP_K]) if e.order else None)]
    else:  # a text's words or a clip's segments: no division, no fill, no image explained
        noun = _NOUNS.get(e.modality, "elements")
        rows += [("explained", f"{e.modality}, {len(e.elements)} {noun}"),
                 (f"top {noun}", ", ".join(str(e.elements[i]["label"]) for i in e.order[:TOP_K]))]
    rows += [("insertion AUC", f"{e.insertion_auc:.4f} ({e.curve_score})"),
             ("deletion AUC", f"{e.deletion_auc:.4f} ({e.curve_score})"),
             ("fill", e.settings.get("fill", "black") if e.modality == "image" else None),
             ("cost", f"{e.forward_passes} forward passes, {e.seconds:.2f} s"),
             ("image" if e.modality == "image" else "source", e.source)]
    return ("<div class='mmattr-explanation'>" + _table(rows)
            + _img(overlay_png(e), "overlay: the top regions and the heat map")
            + _img(_png(curves_figure(e)), "insertion and deletion curves", "80%") + "</div>")


def plot(e: "Explanation", ax: Any = None, kind: str = "overlay") -> "Figure":
    """`kind`'s figure (overlay or curves); drawn into `ax` when given (its figure returned)."""
    from .errors import InputError, arg
    from .viz import curves_figure

    if kind not in PLOT_KINDS:
        raise InputError(f"{arg('kind', kind)}: plot shows {' or '.join(PLOT_KINDS)}")
    fig = overlay_figure(e) if kind == "overlay" else curves_figure(e)
    if ax is None:
        return _shown_once(fig)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    ax.imshow(np.asarray(canvas.buffer_rgba())[..., :3], interpolation="antialiased")
    ax.set_axis_off()
    return ax.figure


def _shown_once(fig: "Figure") -> "Figure":
    """`fig` (made without pyplot, so nothing keeps it open), displayable as a cell's value:
    under a Jupyter kernel the inline backend registers its figure display when pyplot first
    draws, so one empty pyplot figure is made and closed. Nothing is drawn twice at the cell's
    end, and a loop of plots holds no figures open."""
    import sys

    if "ipykernel" in sys.modules:
        import matplotlib.pyplot as plt

        plt.close(plt.figure())
    return fig


# -- load -------------------------------------------------------------------------------------

def load_explanation(cls: type, folder: str | Path) -> "Explanation":
    """`Explanation.load`: explanation.json, attribution.npy and regions.npy from `folder`."""
    from .errors import InputError, MmattrWarning

    folder = Path(folder)
    meta_path = folder / "explanation.json"
    if not meta_path.is_file():
        raise InputError(f"{folder} holds no explanation.json: not a folder Explanation.save "
                         "(or mmattr explain) wrote")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        attribution = np.load(folder / "attribution.npy", allow_pickle=False)
        regions = np.load(folder / "regions.npy", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the explanation in {folder}: {exc}") from None
    explained = meta.get("explained") or {}
    modality = str(explained.get("modality", "image"))
    if "image_size" in meta:
        w, h = meta["image_size"]
    else:  # (a text's or a clip's maps are 1-D: no image size to read from them)
        h, w = attribution.shape[:2] if attribution.ndim == 2 else (0, 0)
    if modality == "image":
        image = _recorded_image(meta, (int(h), int(w)))
    else:  # the picture of a text or clip explanation is its target image, when a file
        image = _recorded_image({"image": (meta.get("target") or {}).get("image")},
                                (int(h), int(w))) if int(h) * int(w) else np.zeros((0, 0, 3), np.uint8)
    if image is None:
        warnings.warn(MmattrWarning(
            f"the image of {folder} ({meta.get('image') or 'an array, never a file'}) is not "
            "there with the same content; e.image is gray"), stacklevel=3)
        image = np.full((int(h), int(w), 3), 128, np.uint8)
    return cls(
        image=image, attribution=attribution.astype(np.float32),
        regions=regions.astype(np.int32), order=[int(r) for r in meta.get("order", [])],
        scores=list(meta.get("step_scores", [])), terms=dict(meta.get("step_terms", {})),
        curve_x=list(meta.get("curve_x", [])),
        insertion_curve=list(meta.get("insertion_curve", [])),
        deletion_curve=list(meta.get("deletion_curve", [])),
        insertion_auc=float(meta.get("insertion_auc", float("nan"))),
        deletion_auc=float(meta.get("deletion_auc", float("nan"))),
        curve_score=str(meta.get("curve_score", "")),
        forward_passes=int(meta.get("forward_passes", 0)),
        seconds=float(meta.get("seconds", 0.0)), method=str(meta.get("method", "")),
        model=dict(meta.get("model") or {}), target=dict(meta.get("target") or {}),
        settings=dict(meta.get("settings") or {}), version=str(meta.get("mmattr_version", "")),
        timings=dict(meta.get("timings") or {}),
        source=meta.get("image") if modality == "image" else explained.get("audio"),
        image_sha256=meta.get("image_sha256"), modality=modality,
        elements=list(explained.get("elements") or []), text=explained.get("text"),
        waveform=_recorded_waveform(explained), sample_rate=explained.get("sample_rate"))


def _recorded_waveform(explained: Mapping[str, Any]) -> np.ndarray | None:
    """An audio explanation's clip, read again from its WAV file when it is there with the
    recorded length (the folder holds the per-sample maps, not the clip)."""
    path = explained.get("audio")
    if explained.get("modality") != "audio" or not path or not Path(path).is_file():
        return None
    from .errors import MmattrError
    from .sound import read_audio

    try:
        clip = read_audio(path)
    except MmattrError:
        return None
    return clip.waveform if len(clip.waveform) == int(explained.get("samples", -1)) else None


def _recorded_image(meta: Mapping[str, Any], hw: tuple[int, int]) -> np.ndarray | None:
    """The image file explanation.json names, when it is there with the recorded content."""
    from .errors import MmattrError
    from .image import load_image
    from .outdir import file_sha256

    path = meta.get("image")
    if not path or not Path(path).is_file():
        return None
    if meta.get("image_sha256") and file_sha256(Path(path)) != meta["image_sha256"]:
        return None
    try:
        image = load_image(path)
    except MmattrError:
        return None
    return image if image.shape[:2] == hw else None


# -- the dataset-level results ----------------------------------------------------------------

def _get(mapping: Any, *keys: str) -> Any:
    """mapping[k1][k2]..., or None where any level is missing."""
    for key in keys:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def _pct(value: Any) -> str | None:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else None


def _phrase(name: Any) -> str:
    """A slice name: a phrase, or (phrase, score)."""
    if isinstance(name, (tuple, list)) and name:
        return f"{name[0]} ({name[1]:+.1f})" if len(name) > 1 and isinstance(
            name[1], (int, float)) else str(name[0])
    return str(name)


def audit_html(result: Any) -> str:
    """An `AuditResult` as a summary: accuracy, calibration, the failure slices, the report."""
    s = getattr(result, "summary", {}) or {}
    acc = _get(s, "accuracy", "value")
    lo, hi = _get(s, "accuracy", "ci_low"), _get(s, "accuracy", "ci_high")
    ece = _get(s, "calibration", "ece")
    rows: list[tuple[str, Any]] = [
        ("model", _get(s, "model", "spec") or _get(s, "settings", "model")),
        ("mode", _get(s, "mode")),
        ("images", _get(s, "dataset", "images")),
        ("accuracy", None if acc is None else _pct(acc) + (
            f" (95% interval {_pct(lo)} to {_pct(hi)})" if lo is not None and hi is not None
            else "")),
        ("expected calibration error", f"{ece:.3f}" if isinstance(ece, (int, float)) else None),
        ("likely label errors", _get(s, "label_issues", "flagged")),
        ("seconds", f"{getattr(result, 'seconds', 0):.1f}"),
        ("report", str(getattr(result, "report", "")) or None)]
    slices = list(getattr(result, "slices", []) or [])
    body = _table(rows)
    findings = [f.get("statement") for f in (s.get("findings") or []) if isinstance(f, dict)]
    if findings:
        body += ("<p><b>findings</b></p><ol>" + "".join(
            f"<li>{html.escape(str(f))}</li>" for f in findings[:5]) + "</ol>")
    if slices:
        lines = []
        for k, sl in enumerate(slices, start=1):
            title = getattr(sl, "title", None)
            names = (title() if callable(title) else
                     "; ".join(_phrase(n) for n in list(getattr(sl, "names", []) or [])[:3]))
            size = getattr(sl, "size", None)
            lines.append(f"<tr><td>{k}</td><td>{html.escape(names or '–')}</td>"
                         f"<td>{'' if size is None else size}</td>"
                         f"<td>{html.escape(_pct(getattr(sl, 'accuracy', None)) or '')}</td></tr>")
        body += ("<p><b>failure slices</b></p><table><tr><th>#</th><th>named</th><th>images</th>"
                 "<th>accuracy</th></tr>" + "".join(lines) + "</table>")
    else:
        body += "<p>no failure slice found</p>"
    return f"<div class='mmattr-audit'><p><b>mmattr audit</b></p>{body}</div>"


def audit_repr(result: Any) -> str:
    acc = _get(getattr(result, "summary", {}) or {}, "accuracy", "value")
    return (f"AuditResult(accuracy={_pct(acc)}, slices={len(getattr(result, 'slices', []) or [])}, "
            f"report={str(getattr(result, 'report', ''))!r})")


def _heatmap_png(heatmap: np.ndarray) -> bytes:
    """A heat map on its own (jet, as the overlays), at most 256 px on its long side."""
    from PIL import Image

    from .viz import colorize

    rgb = colorize(np.asarray(heatmap, np.float32))
    img = Image.fromarray(rgb)
    img.thumbnail((256, 256))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def interpretation_rows(interp: Any) -> list[tuple[str, Any]]:
    return [("predicted", f"{getattr(interp, 'predicted_name', '?')} "
                          f"(p = {getattr(interp, 'probability', float('nan')):.3f})"),
            ("boundaries", len(getattr(interp, "boundaries", []) or [])),
            ("covered images", getattr(interp, "coverage", None)),
            ("of them another class", getattr(interp, "other_covered", None)),
            ("accuracy vs the model", _pct(getattr(interp, "accuracy_model", None))),
            ("accuracy vs the labels", _pct(getattr(interp, "accuracy_labels", None))),
            ("δ / τ", f"{getattr(interp, 'delta', '?')} / {getattr(interp, 'tau', '?')}")]


def interpretation_html(interp: Any, title: str = "representative interpretation") -> str:
    """An RI `Interpretation`: its decision region's numbers and heat map."""
    heat = getattr(interp, "heatmap", None)
    pic = _img(_heatmap_png(heat), "decision region heat map", "256px") if heat is not None else ""
    return (f"<div class='mmattr-ri'><p><b>{html.escape(title)}</b></p>"
            f"{_table(interpretation_rows(interp))}{pic}</div>")


def group_html(record: Any) -> str:
    """A `GroupInterpretation`: the group, the image, and its interpretation or why none."""
    head = f"group {getattr(record, 'group', '?')}, image {getattr(record, 'image_index', '?')}"
    interp = getattr(record, "interpretation", None)
    if interp is None:
        return (f"<div class='mmattr-ri'><p><b>{html.escape(head)}</b></p>"
                f"<p>{html.escape(str(getattr(record, 'error', '') or 'no interpretation'))}</p>"
                "</div>")
    return interpretation_html(interp, head)


def interpretation_repr(interp: Any) -> str:
    return (f"Interpretation(predicted={getattr(interp, 'predicted_name', '?')!r}, "
            f"coverage={getattr(interp, 'coverage', '?')}, "
            f"accuracy_model={getattr(interp, 'accuracy_model', float('nan')):.3f})")
