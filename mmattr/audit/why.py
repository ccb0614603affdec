"""Why the model fails: SMDL explanations of the predicted and of the true class for a budget
of images chosen by the slices, how much of the attribution falls on the object, and the
accuracy when the background or the object is removed.

Ref. Chen et al., "Less is More: Fewer Interpretable Region via Submodular Subset Selection",
ICLR 2024 (debugging prediction errors: explain the prediction and the ground truth);
seed 002 (occlusion of subject and background by ground-truth mask); Rong et al., "A Consistent
and Efficient Evaluation Strategy for Attribution Methods", ICML 2022 (noisy linear imputation);
Xiao et al., "Noise or Signal: The Role of Image Backgrounds in Object Recognition", ICLR 2021
(moving the object onto another image's background); Miller, "Explanation in Artificial
Intelligence: Insights from the Social Sciences", AIJ 2019 (contrastive "why P rather than Q").
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
    attribution mass on the object; ``object_area``: the object's share of the image;
    ``background_auc``: the probability that a background pixel is attributed more than an
    object pixel (ties count half). The shares depend on the object's size (a random map puts
    about 1 − area of its top area on the background); the AUC does not: 0.5 is no preference,
    1 the whole background ranked above the whole object, 0 the reverse.
    """
    m = np.asarray(mask, bool)
    if m.shape != attribution.shape:
        import cv2

        m = cv2.resize(m.astype(np.uint8), attribution.shape[::-1],
                       interpolation=cv2.INTER_NEAREST).astype(bool)
    area = float(m.mean())
    if not m.any() or m.all():
        return {"object_share": float("nan"), "background_share": float("nan"),
                "object_energy": float("nan"), "object_area": area,
                "background_auc": float("nan")}
    top = top_area(attribution, area)
    share = float((top & m).sum() / m.sum())
    return {"object_share": share, "background_share": 1.0 - share,
            "object_energy": energy_pointing_game(attribution, m), "object_area": area,
            "background_auc": background_auc(attribution, m)}


def background_auc(attribution: np.ndarray, mask: np.ndarray) -> float:
    """P(a background pixel outranks an object pixel), ties half: the Mann-Whitney U statistic
    of background against object attributions over their product of counts."""
    from scipy.stats import rankdata

    a = np.asarray(attribution, np.float64).ravel()
    m = np.asarray(mask, bool).ravel()
    n_obj, n_bg = int(m.sum()), int((~m).sum())
    if not n_obj or not n_bg:
        return float("nan")
    ranks = rankdata(a)  # average ranks for ties
    u = ranks[~m].sum() - n_bg * (n_bg + 1) / 2.0
    return float(u / (n_bg * n_obj))


def explain_target(adapter: Adapter, name: str):
    """The target for explaining class `name`: a classifier's own class, or a contrastive
    model's class embedding with the same templates as the zero-shot prediction, so the
    explanation is about exactly the score that decided the prediction."""
    from ..targets import Target

    return Target(kind="class", class_name=name)


def contrast_target(adapter: Adapter, predicted: str, true: str):
    """The contrastive target "why `predicted` rather than `true`": the difference of the two
    classes' target embeddings. Regions that raise it move the image towards the prediction and
    away from the truth, so what the two classes share (an object's colour named in both class
    names) cancels and what tipped the decision remains. None when the classes coincide."""
    from ..targets import Target

    with torch.inference_mode():
        diff = (adapter.encode_target(explain_target(adapter, predicted)).float()
                - adapter.encode_target(explain_target(adapter, true)).float())
    if predicted == true or float(diff.norm()) < 1e-6:
        return None
    return Target(kind="embedding", embedding=diff.cpu().numpy())


def load_mask(path: str, hw: tuple[int, int]) -> np.ndarray:
    """A ground-truth mask file as (H, W) bool by the dataset's one mask rule
    (`mmattr.runs.dataset`: any non-zero channel is in; a mask of another size than `hw` is
    an `ItemError`, never resized)."""
    from ..runs.dataset import load_mask as dataset_mask

    return dataset_mask(path, hw)


def choose_donors(labels: np.ndarray, correct: np.ndarray, has_mask: np.ndarray,
                  chosen: np.ndarray, seed: int = 0) -> np.ndarray:
    """For each index in `chosen`, a donor image for the background swap: another image of the
    same true class that the model gets right and that has a mask (-1 when there is none).
    Seeded, so a rerun swaps the same backgrounds."""
    rng = np.random.default_rng(seed)
    pool = {int(c): np.flatnonzero((labels == c) & correct & has_mask) for c in np.unique(labels)}
    donors = np.full(len(chosen), -1, dtype=np.int64)
    for k, i in enumerate(chosen):
        cand = pool.get(int(labels[i]), np.zeros(0, np.int64))
        cand = cand[cand != i]
        if len(cand):
            donors[k] = int(rng.choice(cand))
    return donors


def occlusion_predictions(adapter: Adapter, vocab_logits: Callable[[np.ndarray], np.ndarray],
                          paths: Sequence[str], masks: Sequence[str], batch_size: int = 64,
                          seed: int = 0,
                          donors: Sequence[tuple[str, str] | None] | None = None
                          ) -> dict[str, np.ndarray | list[int]]:
    """Predicted class of each image under three edits: ``object_only`` (background set to
    black, the method's fill), ``background_only`` (object removed by noisy linear imputation
    from its surroundings, so no silhouette is left) and, where `donors` gives an (image, mask)
    pair, ``background_swap`` (the object pasted, in place, onto the donor's background with
    the donor's own object imputed away; -1 without a donor). Also ``failed``: indices whose
    image or mask could not be read."""
    from ..metrics.road import noisy_linear_impute

    names = ("object_only", "background_only", "background_swap")
    preds: dict[str, list[int]] = {k: [] for k in names}
    batches: dict[str, list[np.ndarray]] = {k: [] for k in names}
    swap_slot: list[bool] = []  # per kept image: has a swap prediction
    failed: list[int] = []

    def flush() -> None:
        for key in names:
            batch = batches[key]
            if batch:
                with torch.inference_mode():
                    x = adapter.preprocess(torch.from_numpy(np.stack(batch)).to(adapter.device))
                    with adapter.autocast():
                        emb = adapter.encode_images(x).float().cpu().numpy()
                preds[key].extend(vocab_logits(emb).argmax(axis=1).tolist())
                batch.clear()

    def without_object(image: np.ndarray, mask: np.ndarray, rng: int) -> np.ndarray:
        if mask.all():  # the object is the whole image: nothing to impute from, all removed
            return np.zeros_like(image)
        filled = noisy_linear_impute(image.astype(np.float64) / 255.0, mask, rng=rng)
        return np.clip(filled * 255.0 + 0.5, 0, 255).astype(np.uint8)

    size = None
    for i, (p, mp) in enumerate(zip(paths, masks)):
        try:
            image = load_image(p)
            mask = load_mask(mp, image.shape[:2])
        except MmattrError:
            failed.append(i)
            continue
        swap = None
        if donors is not None and donors[i] is not None:
            try:  # an unreadable donor costs this image its swap, nothing else
                d_path, d_mask = donors[i]
                d_image = load_image(d_path)
                d_obj = load_mask(d_mask, d_image.shape[:2])
                if d_image.shape[:2] != image.shape[:2]:
                    import cv2

                    d_image = cv2.resize(d_image, (image.shape[1], image.shape[0]),
                                         interpolation=cv2.INTER_AREA)
                    d_obj = cv2.resize(d_obj.astype(np.uint8), (image.shape[1], image.shape[0]),
                                       interpolation=cv2.INTER_NEAREST) > 0
                d_bg = without_object(d_image, d_obj, seed + 7919 + i)
                swap = np.where(mask[..., None], image, d_bg).astype(np.uint8)
            except MmattrError:
                swap = None
        if size is not None and image.shape[:2] != size:
            flush()  # images of another size go in their own batch
        size = image.shape[:2]
        batches["object_only"].append(np.where(mask[..., None], image, 0).astype(np.uint8))
        batches["background_only"].append(without_object(image, mask, seed + i))
        swap_slot.append(swap is not None)
        if swap is not None:
            batches["background_swap"].append(swap)
        if len(batches["object_only"]) >= batch_size:
            flush()
    flush()
    swapped = iter(preds["background_swap"])
    out: dict[str, np.ndarray | list[int]] = {
        "object_only": np.asarray(preds["object_only"], dtype=np.int64),
        "background_only": np.asarray(preds["background_only"], dtype=np.int64),
        "background_swap": np.asarray([next(swapped) if has else -1 for has in swap_slot],
                                      dtype=np.int64),
        "failed": failed}
    return out
