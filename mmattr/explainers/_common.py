"""What every baseline shares: the target score, input-space geometry, batched perturbation
scoring and the pixel-level insertion / deletion curves written into the Explanation.

Ref. Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box Models",
BMVC 2018 (insertion and deletion curves).
"""

from __future__ import annotations

import hashlib
import json
import time
import weakref
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .._version import __version__
from ..adapters.base import Adapter
from ..errors import InputError
from ..explanation import Explanation
from ..metrics.base import auc
from ..ranking import pixel_rank
from ..metrics.curves import PIXEL_CURVE_STEPS, perturbation_curve
from ..metrics.scoring import TargetScore
from ..metrics.scoring import image_tensor as pixels_tensor
from ..targets import Target
from .base import Explainer, ProgressFn

#: steps of the pixel-level curves of baseline maps: the insertion / deletion metrics' default
CURVE_STEPS = PIXEL_CURVE_STEPS


@dataclass
class MapResult:
    """A baseline's raw output: the (H, W) map and how it was made.

    Region-based methods (LIME, Kernel SHAP, HSIC) also give their label map and one value per
    region, so the Explanation can carry a region ordering like SMDL's.
    """

    attribution: np.ndarray
    forward_passes: int
    regions: np.ndarray | None = None
    region_values: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    #: options of other components the method ran (LIME's feature division), by name
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ElementResult:
    """A baseline's values over the elements of a text or a clip (`attribute_elements`): one
    per element, larger = more important, and how they were made."""

    values: np.ndarray
    forward_passes: int
    settings: dict[str, Any] = field(default_factory=dict)


def target_embedding(adapter: Adapter, target: Target) -> torch.Tensor:
    """The unit-norm target embedding as a normal tensor (usable under autograd)."""
    with torch.inference_mode():
        t = adapter.encode_target(target)
    return F.normalize(t.float().clone(), dim=0).to(adapter.device)


def cosine(emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, D) embeddings of any norm → (B,) cosine similarity to the unit-norm target."""
    return F.normalize(emb.float(), dim=-1) @ target


def image_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 → (1, 3, H, W) float in [0, 1], composed on the device."""
    return pixels_tensor(image, device)[None]


def to_image_space(cam: torch.Tensor, adapter: Adapter, hw: tuple[int, int]) -> torch.Tensor:
    """A map over the model input (h, w) back onto the original (H, W) image.

    Undoes the preprocessing geometry: the map goes into the crop window of the resized image
    (zero outside, where the model saw nothing), then that is resized to the image.
    """
    pre = adapter.preprocess
    H, W = hw
    if pre.resize_hw is not None:
        th, tw = pre.resize_hw
    elif pre.shortest_edge is not None:
        scale = pre.shortest_edge / min(H, W)
        th, tw = max(1, round(H * scale)), max(1, round(W * scale))
    else:
        th, tw = H, W
    cam = cam.reshape(1, 1, *cam.shape[-2:]).float()
    if pre.crop_hw is not None:
        ch, cw = pre.crop_hw
        ph, pw = max(th, ch), max(tw, cw)
        top, left = (ph - ch) // 2, (pw - cw) // 2
        canvas = cam.new_zeros(1, 1, ph, pw)
        canvas[..., top:top + ch, left:left + cw] = cam
        cam = canvas[..., :th, :tw]
    if cam.shape[-2:] != (H, W):
        cam = F.interpolate(cam, size=(H, W), mode="bilinear", align_corners=False)
    return cam[0, 0]


def score_masked(image: torch.Tensor, masks: torch.Tensor, adapter: Adapter,
                 score: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
                 progress: ProgressFn | None = None, done: int = 0, total: int = 0,
                 model_space: bool = False, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Scores of image ⊙ mask for a stack of (M, H, W) masks, `batch_size` images per pass.

    Masks are applied in pixel space (0 = `fill`, black when None: fill + m·(image − fill)),
    then preprocessed on the device chunk by chunk,
    so memory stays at `batch_size` full-size images. With ``model_space`` the image is already
    resized and cropped to the model input (``preprocess.geometry``) and the masks match it, so
    no full-resolution image is composed at all.
    """
    out = []
    with torch.inference_mode():
        for start in range(0, masks.shape[0], batch_size):
            m = masks[start:start + batch_size].to(image.device, image.dtype)
            shown = image * m[:, None] if fill is None else fill + m[:, None] * (image - fill)
            pixels = adapter.preprocess.normalize(
                shown if model_space else adapter.preprocess.geometry(shown))
            with adapter.autocast():
                out.append(score(adapter.encode_images(pixels)).float())
            if progress is not None:
                progress(done + min(start + batch_size, masks.shape[0]), total or masks.shape[0])
    return torch.cat(out)


def pixel_curves(image: np.ndarray, attribution: np.ndarray, scorer: TargetScore,
                 steps: int = CURVE_STEPS, fill: torch.Tensor | None = None
                 ) -> tuple[list[float], list[float], list[float]]:
    """Pixel-level insertion and deletion curves of a map: the ``insertion`` / ``deletion``
    metrics' own `perturbation_curve` (black fill unless `fill` is given, `CURVE_STEPS`
    steps), so the AUCs written into explanation.json equal those metrics for the same map and
    score. Returns x, ins, dele.
    """
    dev = scorer.adapter.device
    base = "black" if fill is None else fill
    x, ins = perturbation_curve(scorer, image, attribution, "insertion", steps, base, device=dev)
    _, dele = perturbation_curve(scorer, image, attribution, "deletion", steps, base, device=dev)
    return x.tolist(), ins.tolist(), dele.tolist()


def cached_attribute(explainer: "MapExplainer", image: np.ndarray, target_emb: torch.Tensor,
                     adapter: Adapter, progress: ProgressFn | None = None) -> MapResult:
    """`explainer.attribute(...)`, served from its run context's map cache when it has one:
    `mmattr evaluate` runs ``gradcam`` and ``smdl+prior:gradcam`` on each image with one
    `MapCache` per item, so the prior division reuses the plain run's map. Keyed on a weak
    reference to the adapter, the method's settings, the image's and the target's bytes."""
    maps = explainer.context.maps
    if maps is None:
        return explainer.attribute(image, target_emb, adapter, progress)
    image = np.ascontiguousarray(image)
    key = (explainer.name, json.dumps(explainer.config.to_dict(), sort_keys=True, default=str),
           weakref.ref(adapter), image.shape, hashlib.sha1(image.tobytes()).hexdigest(),
           hashlib.sha1(target_emb.detach().float().cpu().numpy().tobytes()).hexdigest())
    return maps.get(key, lambda: explainer.attribute(image, target_emb, adapter, progress))


class MapExplainer(Explainer):
    """A baseline: one attribution map, wrapped into the same Explanation as SMDL's.

    Subclasses implement `attribute`. The Explanation's curves are pixel-level insertion and
    deletion (`CURVE_STEPS` steps, the configured fill), scored like SMDL's curves: the target's
    probability over the vocabulary when there is one, else the cosine similarity. Their
    forward passes are reported apart from the method's own (settings["curve"]).
    """

    @abstractmethod
    def attribute(self, image: np.ndarray, target_emb: torch.Tensor, adapter: Adapter,
                  progress: ProgressFn | None = None) -> MapResult:
        """(H, W, 3) uint8 image and unit-norm (D,) target → the attribution map."""

    def attribute_elements(self, elements: Any, target_emb: torch.Tensor, adapter: Adapter,
                           progress: ProgressFn | None = None) -> ElementResult:
        """The values of a text's words or a clip's segments (`mmattr.elements.ElementSet`);
        only methods whose `modalities` name the modality implement it."""
        raise InputError(f"the {self.name} method explains {', '.join(self.modalities)} only")

    def explain(self, image: np.ndarray, target: Target, adapter: Adapter,
                progress: ProgressFn | None = None) -> Explanation:
        if self.config.explain != "image":
            return self.explain_elements(image, target, adapter, progress)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        cfg = self.config
        t0 = time.perf_counter()
        target_emb = target_embedding(adapter, target)
        result = cached_attribute(self, image, target_emb, adapter, progress)
        t_attr = time.perf_counter()
        attribution = np.asarray(result.attribution, np.float32)

        # probability over the vocabulary when there is one, else cosine (as SMDL's curves)
        scorer = TargetScore(adapter, target, score="auto", vocabulary=cfg.vocabulary,
                             batch_size=cfg.batch_size)
        curve_score, source = scorer.score, scorer.vocabulary_source
        x, ins, dele = pixel_curves(image, attribution, scorer,
                                    fill=self.fill_for(image, adapter.device))
        seconds = time.perf_counter() - t0

        if result.regions is not None and result.region_values is not None:
            regions = result.regions.astype(np.int32)
            order = [int(i) for i in np.argsort(pixel_rank(result.region_values))]
            scores = [float(result.region_values[i]) for i in order]
        else:  # a pixel map has no regions: one label, no ordering
            regions, order, scores = np.zeros(image.shape[:2], np.int32), [], []
        return Explanation(
            image=image, attribution=attribution, regions=regions, order=order, scores=scores,
            terms={}, curve_x=x, insertion_curve=ins, deletion_curve=dele,
            insertion_auc=auc(x, ins), deletion_auc=auc(x, dele), curve_score=curve_score,
            forward_passes=int(result.forward_passes), seconds=seconds, method=self.name,
            model=adapter.describe(), target={**target.to_dict(), "label": target.label},
            settings={**cfg.to_dict(), "model": adapter.spec, "vocabulary_source": source,
                      "options": {**self.resolved_options(), **result.options},
                      "method_settings": result.settings,
                      "curve": {"kind": "pixel", "steps": CURVE_STEPS, "fill": cfg.fill,
                                "score": curve_score, "forward_passes": scorer.forward_passes}},
            version=__version__,
            timings={"attribute": t_attr - t0, "curves": seconds - (t_attr - t0),
                     "total": seconds})


    def explain_elements(self, source: Any, target: Target, adapter: Adapter,
                         progress: ProgressFn | None = None) -> Explanation:
        """A text's or a clip's explanation: the method's values over the elements, then the
        insertion and deletion curves over elements in its order, measured by the same element
        set and score as SMDL's (`explainers._elements`)."""
        from ._elements import (CurveScore, build_elements, check_target, curves,
                                element_explanation, element_vocabulary)

        cfg = self.config
        check_target(cfg.explain, target)
        t0 = time.perf_counter()
        elements = build_elements(cfg, source, adapter, self.context)
        target_emb = target_embedding(adapter, target)
        result = self.attribute_elements(elements, target_emb, adapter, progress)
        values = np.asarray(result.values, np.float32)
        t_attr = time.perf_counter()
        # most important first; ties keep the elements' own order
        order = [int(i) for i in np.argsort(-values.astype(np.float64), kind="stable")]
        with torch.inference_mode():
            vocab = element_vocabulary(cfg, target, adapter, target_emb)
            score = CurveScore(target_emb, vocab, adapter)
            before = elements.forward_passes
            x, ins, dele = curves(elements, order, score)
        curve_passes = elements.forward_passes - before
        seconds = time.perf_counter() - t0
        return element_explanation(
            method=self.name, elements=elements, target=target, adapter=adapter, order=order,
            scores=[float(values[i]) for i in order], terms={}, values=values, x=x, ins=ins,
            dele=dele, curve_score=score.mode, forward_passes=result.forward_passes,
            seconds=seconds,
            settings={**cfg.to_dict(), "model": adapter.spec,
                      "vocabulary_source": vocab.source if vocab else "none",
                      "options": {**self.resolved_options(),
                                  **type(elements).resolved_options(cfg)},
                      "method_settings": result.settings,
                      "curve": {"kind": "elements", "score": score.mode,
                                "forward_passes": curve_passes}},
            timings={"attribute": t_attr - t0, "curves": seconds - (t_attr - t0),
                     "total": seconds})


def element_cosines(elements: Any, target_emb: torch.Tensor, subsets: torch.Tensor
                    ) -> torch.Tensor:
    """Cosine to the target of each (M, N) subset of elements kept (the rest removed)."""
    emb, _ = elements.embed(subsets, masked_out=False)
    return emb @ target_emb.to(emb.dtype)


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    """A torch generator on the device, so sampled masks never leave it."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
