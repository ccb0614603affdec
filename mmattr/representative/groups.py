"""Representative interpretations per group of images (a class, an audit's failure slice).

One fit on all the images; in each group the images nearest to k-means centres of the group's
feature maps are interpreted. An image that cannot be interpreted (for example too few
reference images of its predicted class) is reported in its record, not raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..adapters.base import Adapter
from ..errors import MmattrError
from .explainer import Interpretation, RepresentativeInterpretations, RIOptions


@dataclass
class GroupInterpretation:
    """One representative interpretation of one group."""

    group: str
    image_index: int                       # index into the images given
    interpretation: Interpretation | None  # None when `error` says why
    summary: dict[str, Any]                # interpretation.json content (empty on error)
    error: str | None = None

    def _repr_html_(self) -> str:
        from ..display import group_html

        return group_html(self)


def interpretations_for_groups(adapter: Adapter, images: Sequence[np.ndarray],
                               labels: Sequence[str | None] | None = None,
                               groups: Mapping[str, Sequence[int]] | None = None,
                               per_group: int = 2, options: RIOptions | None = None,
                               cache: Any = None,
                               explainer: RepresentativeInterpretations | None = None
                               ) -> list[GroupInterpretation]:
    """Representative interpretations of each group of `images`.

    groups: name → indices into `images` (default: one group per label). per_group: how many
    images (k-means centres within the group) to interpret per group. `explainer`: an already
    fitted one to reuse (else one is fitted on `images`, cached in `cache` when given).
    Each record's `interpretation.heatmap` is the map over its image; `summary` is the JSON
    the `represent` command writes (boundaries, coverage, accuracy, ranked covered images).
    """
    images = list(images)
    if groups is None:
        if labels is None:
            groups = {"all": list(range(len(images)))}
        else:
            by: dict[str, list[int]] = {}
            for i, lab in enumerate(labels):
                by.setdefault(str(lab), []).append(i)
            groups = by
    if explainer is None:
        explainer = RepresentativeInterpretations(adapter, options).fit(images, labels, cache=cache)
    out: list[GroupInterpretation] = []
    for name, members in groups.items():
        idx = np.asarray(list(members), dtype=int)
        for i in explainer.representatives(per_group, among=idx):
            try:
                interp = explainer.explain(images[int(i)])
            except MmattrError as exc:
                out.append(GroupInterpretation(str(name), int(i), None, {}, str(exc)))
                continue
            out.append(GroupInterpretation(str(name), int(i), interp,
                                           interp.to_json(explainer.fitted)))
    return out
