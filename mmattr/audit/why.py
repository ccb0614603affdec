"""Why the model fails: SMDL explanations of the predicted and of the true class for a budget
of images chosen by the slices, how much of the attribution falls on the object, and the
accuracy when the background or the object is removed.

Ref. Chen et al., "Less is More: Fewer Interpretable Region via Submodular Subset Selection",
ICLR 2024 (debugging prediction errors: explain the prediction and the ground truth);
seed 002 (occlusion of subject and background by ground-truth mask); Rong et al., "A Consistent
and Efficient Evaluation Strategy for Attribution Methods", ICML 2022 (noisy linear imputation).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from ..adapters.base import Adapter
from ..errors import MmattrError
from ..image import load_image
from ..metrics.localisation import energy_pointing_game, top_area
from .slices import Slice


def choose_budget(slices: Sequence[Slice], mistakes: Sequence[int], errors: np.ndarray,
                  budget: int) -> list[tuple[int, str]]:
    """Up to `budget` (index, reason) pairs: the slices' most typical mistakes, taken round
    robin so every slice gets its share, then the most confident mistakes; no repeats."""
    chosen: dict[int, str] = {}
    queues = [[int(i) for i in sl.typical if errors[i]] or [int(i) for i in sl.typical]
              for sl in slices]
    slice_budget = budget if not len(mistakes) else max(budget - budget // 3, 1)
    depth = 0
    while len(chosen) < min(slice_budget, budget) and any(depth < len(q) for q in queues):
        for sl, q in zip(slices, queues):
            if depth < len(q) and q[depth] not in chosen and len(chosen) < min(slice_budget, budget):
                chosen[q[depth]] = f"slice {sl.rank}"
        depth += 1
    for i in mistakes:
        if len(chosen) >= budget:
            break
        chosen.setdefault(int(i), "confident mistake")
    return list(chosen.items())


def object_share(attribution: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Where the attribution lies relative to a ground-truth object mask.

    ``object_share``: the share of the most attributed area, as large as the object, that lies
    on the object (1 = the map ranks the object first; its area when the map is flat);
    ``background_share`` = 1 − that; ``object_energy``: the share of the (min-max normalised)
    attribution mass on the object; ``object_area``: the object's share of the image.
    """
    m = np.asarray(mask, bool)
    if m.shape != attribution.shape:
        import cv2

        m = cv2.resize(m.astype(np.uint8), attribution.shape[::-1],
                       interpolation=cv2.INTER_NEAREST).astype(bool)
    area = float(m.mean())
    if not m.any() or m.all():
        return {"object_share": float("nan"), "background_share": float("nan"),
                "object_energy": float("nan"), "object_area": area}
    top = top_area(attribution, area)
    share = float((top & m).sum() / m.sum())
    return {"object_share": share, "background_share": 1.0 - share,
            "object_energy": energy_pointing_game(attribution, m), "object_area": area}


def _target(adapter: Adapter, name: str):
    from ..targets import Target

    # A classifier names its classes itself; a contrastive model gets the class name as text,
    # template-averaged exactly as the zero-shot prediction is.
    return (Target(kind="class", class_name=name) if adapter.class_names is not None
            else Target.from_text(name))


def load_mask(path: str, hw: tuple[int, int]) -> np.ndarray:
    """A ground-truth mask file as (H, W) bool at the image's size (any non-zero pixel is in)."""
    m = load_image(path)[..., 0] > 0
    if m.shape != tuple(hw):
        import cv2

        m = cv2.resize(m.astype(np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST) > 0
    return m


def occlusion_predictions(adapter: Adapter, vocab_logits: Callable[[np.ndarray], np.ndarray],
                          paths: Sequence[str], masks: Sequence[str], batch_size: int = 64,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Predicted class with the background removed (set to black, the method's fill) and with
    the object removed (noisy linear imputation from its surroundings, so no silhouette is left),
    for each image; returns (object-only, background-only, indices that failed to load)."""
    from ..metrics.road import noisy_linear_impute

    obj_only, bg_only, failed = [], [], []
    batch_a: list[np.ndarray] = []
    batch_b: list[np.ndarray] = []

    def flush() -> None:
        for batch, out in ((batch_a, obj_only), (batch_b, bg_only)):
            if batch:
                with torch.inference_mode():
                    x = adapter.preprocess(torch.from_numpy(np.stack(batch)).to(adapter.device))
                    with adapter.autocast():
                        emb = adapter.encode_images(x).float().cpu().numpy()
                out.extend(vocab_logits(emb).argmax(axis=1).tolist())
                batch.clear()

    size = None
    for i, (p, mp) in enumerate(zip(paths, masks)):
        try:
            image = load_image(p)
            mask = load_mask(mp, image.shape[:2])
        except MmattrError:
            failed.append(i)
            continue
        if size is not None and image.shape[:2] != size:
            flush()  # images of another size go in their own batch
        size = image.shape[:2]
        batch_a.append(np.where(mask[..., None], image, 0).astype(np.uint8))
        filled = noisy_linear_impute(image.astype(np.float64) / 255.0, mask, rng=seed + i)
        batch_b.append(np.clip(filled * 255.0 + 0.5, 0, 255).astype(np.uint8))
        if len(batch_a) >= batch_size:
            flush()
    flush()
    return np.asarray(obj_only, dtype=np.int64), np.asarray(bg_only, dtype=np.int64), failed
