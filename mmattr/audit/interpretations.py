"""Representative Interpretations as an audit report section: per class and per failure slice.

Ref. Lam et al., "Finding Representative Interpretations on Convolutional Neural Networks",
ICCV 2021.

The section is an `extra_sections` callable of :func:`mmattr.audit.audit`: it fits RI once on
(a bounded sample of) the audited images, then interprets k-means representatives of the
worst classes and of the top failure slices through
:func:`mmattr.representative.interpretations_for_groups`. A model where RI does not apply (a
head linear in every layer it could read, e.g. a CLIP cosine head on the pooled embedding)
gets the one-line reason in the report instead of maps.
"""

from __future__ import annotations

import base64
import html
from typing import Callable

import numpy as np

from ..errors import MmattrError

__all__ = ["representative_section"]


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _groups(labels: np.ndarray, preds: np.ndarray, slices, names: list[str], idx: np.ndarray,
            max_classes: int, max_slices: int) -> dict[str, list[int]]:
    """Positions into `idx`: the classes with the most mistakes first, then the top slices."""
    pos = {int(i): k for k, i in enumerate(idx)}
    lab, pre = labels[idx], preds[idx]
    errors = np.bincount(lab[pre != lab], minlength=len(names))
    order = [c for c in np.argsort(-errors, kind="stable") if (lab == c).any()][:max_classes]
    groups = {f"class {names[c]}": np.flatnonzero(lab == c).tolist() for c in order}
    for k, sl in enumerate(list(slices)[:max_slices]):
        members = [pos[int(m)] for m in sl.members if int(m) in pos]
        if members:
            groups[f"slice {k + 1}"] = members
    return groups


def representative_section(per_group: int = 1, max_classes: int = 6, max_slices: int = 3,
                           max_images: int = 600, seed: int = 0
                           ) -> Callable[[dict], dict | None]:
    """An audit report section of Representative Interpretations (see the module docstring).

    `max_images`: the fit's reference set is a seeded sample of at most this many images
    (the fit's cost grows with it); classes and slices are interpreted among those."""

    def section(ctx: dict) -> dict | None:
        from ..representative import interpretations_for_groups
        from ..runner import ItemError, load_item_image
        from .plots import overlay_png

        items, names = ctx["items"], list(ctx["names"])
        labels, preds = np.asarray(ctx["labels"]), np.asarray(ctx["preds"])
        rng = np.random.default_rng(seed)
        idx = np.arange(len(items))
        if len(idx) > max_images:
            idx = np.sort(rng.choice(idx, size=max_images, replace=False))
        images, kept = [], []
        for i in idx:
            try:
                images.append(load_item_image(items[int(i)]))
                kept.append(int(i))
            except ItemError:
                continue
        idx = np.asarray(kept, dtype=int)
        head = {"id": "representative", "title": "Representative interpretations",
                "how": "Each row is one decision region of the model (Lam et al., ICCV 2021): "
                       "the map shows what the model weighs for the representative image, and "
                       "coverage counts the audited images the same reasoning explains."}
        try:
            records = interpretations_for_groups(
                ctx["adapter"], images, labels=[names[int(labels[i])] for i in idx],
                groups=_groups(labels, preds, ctx["slices"], names, idx, max_classes, max_slices),
                per_group=per_group)
        except MmattrError as exc:
            return {**head, "applies": False, "reason": str(exc),
                    "html": f"<p>Not applicable to this model: {html.escape(str(exc))}</p>"}
        rows, table = [], []
        for rec in records:
            item = items[int(idx[rec.image_index])]
            if rec.interpretation is None:
                rows.append(f"<tr><td>{html.escape(rec.group)}</td><td colspan=3>"
                            f"{html.escape(rec.error or 'no interpretation')}</td></tr>")
                table.append({"group": rec.group, "image": item.key, "error": rec.error})
                continue
            s = rec.summary
            png = overlay_png(images[rec.image_index], np.asarray(rec.interpretation.heatmap))
            rows.append(
                f"<tr><td>{html.escape(rec.group)}</td><td><img alt='interpretation' "
                f"src='{_uri(png)}'></td><td>{html.escape(str(s.get('predicted')))}</td>"
                f"<td>{s.get('coverage')} covered, accuracy vs model "
                f"{s.get('accuracy_model', float('nan')):.2f}</td></tr>")
            table.append({"group": rec.group, "image": item.key,
                          "predicted": s.get("predicted"), "coverage": s.get("coverage"),
                          "accuracy_model": s.get("accuracy_model"),
                          "accuracy_labels": s.get("accuracy_labels")})
        body = ("<table><tr><th>group</th><th>interpretation</th><th>predicted</th>"
                "<th>decision region</th></tr>" + "".join(rows) + "</table>")
        return {**head, "applies": True, "interpretations": table, "html": body}

    return section
