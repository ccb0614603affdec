"""Pictures the sections put on the page, as data URIs (the report opens offline)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from .. import plots

#: the share of each photo kept bright in the report's explanation thumbnails
WHY_TOP_FRACTION = 0.25


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def thumb(path: Path, side: int = 96) -> str:
    from ...image import load_image

    return data_uri(plots.thumbnail_png(load_image(path), side))


def overlay(path: Path, flat_map: list, side: int = 96) -> str:
    import cv2

    from ...image import load_image

    image = load_image(path)
    a = np.asarray(flat_map, dtype=np.float32)
    a = cv2.resize(a, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    return data_uri(plots.top_area_png(image, a, WHY_TOP_FRACTION, side))


def why_figures(ctx, indices: list[int]) -> list[dict]:
    """For each explained image: the photo, why the prediction, why the truth and why the
    prediction rather than the truth (when it was explained)."""
    items, names, res = ctx.items, ctx.names, ctx.result
    figs = []
    for i in indices:
        rec = ctx.why.get(items[i].key, {})
        if "predicted" not in rec or "true" not in rec:
            continue
        con = rec.get("contrast", {})
        auc = con.get("background_auc")
        extra = (f"; the contrast ranks the background above the object with probability "
                 f"{auc:.2f}" if auc is not None else "")
        figs.append({"thumb": thumb(items[i].path),
                     "pred": overlay(items[i].path, rec["predicted"]["map"]),
                     "true": overlay(items[i].path, rec["true"]["map"]),
                     "contrast": overlay(items[i].path, con["map"]) if "map" in con else None,
                     "caption": f"{items[i].image}: photo · why “{names[res.preds[i]]}” "
                                f"(predicted) · why “{names[res.labels[i]]}” (true)"
                                + (" · why the prediction rather than the truth"
                                   if "map" in con else "") + extra})
    return figs


def fmt(x: float | None) -> str:
    import math

    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"


def pct(x: float | None) -> str:
    import math

    return "n/a" if x is None or not math.isfinite(x) else f"{x:.0%}"
