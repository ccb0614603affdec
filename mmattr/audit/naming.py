"""Names for failure slices from text space: phrases that match a slice's mistakes more than
they match the rest of the dataset.

Each phrase's image similarities are standardised over the whole dataset (its mean and spread
differ from phrase to phrase). A phrase's score for a slice is the mean standardised similarity
over the slice's mistakes minus that of their reference: as in B2T, the correctly classified
images of the same true class (so the class itself cancels and what sets the mistakes apart
remains); where a class has no correct image, the images outside the slice. Names are ranked by
the size of the score; a negative one reads "not <phrase>" (the mistakes lack what their
class's correct images show). The signed score is printed beside each name.

Ref. Eyuboglu et al., "Domino", ICLR 2022 (slice descriptions from text embeddings); Kim et al.,
"Bias-to-Text: Debiasing Unknown Visual Biases through Language Interpretation" (B2T),
CVPR 2024 (keywords scored by how much more they match the mistakes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

_ASSETS = Path(__file__).resolve().parent.parent / "assets"


def default_phrases() -> list[str]:
    """The generic attribute list shipped with mmattr (assets/audit_phrases.txt)."""
    return read_phrases(_ASSETS / "audit_phrases.txt")


def read_phrases(path: str | Path) -> list[str]:
    """One phrase per line; blank lines and lines starting with '#' are skipped."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"phrases file not found: {p}")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"phrases file {p} is not UTF-8 text") from None
    phrases = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if not phrases:
        raise InputError(f"phrases file {p} holds no phrase")
    return phrases


def phrase_list(phrases: str | Path | None) -> list[str]:
    """The attribute phrases to score: a file's, or the generic list shipped with mmattr.

    Class names are not candidates: a slice's mistakes always match their predicted class's
    name best, which restates the confusion (the slice's summary and the confusion matrix
    already say it) instead of naming what the images share."""
    return list(dict.fromkeys(read_phrases(phrases) if phrases else default_phrases()))


def score_phrases(sim: np.ndarray, in_slice: np.ndarray, errors: np.ndarray,
                  labels: np.ndarray | None = None) -> np.ndarray:
    """(P,) scores from (N, P) image-phrase similarities, the slice's (N,) membership and the
    (N,) errors: mean z over the slice's mistakes (all its members when it has none) minus the
    mean z of their references: with `labels`, each one's correctly classified images of the
    same class; without (or for a class with none), the images outside the slice."""
    sim = np.asarray(sim, dtype=np.float64)
    z = (sim - sim.mean(axis=0)) / np.maximum(sim.std(axis=0), 1e-9)
    focus = in_slice & errors
    if not focus.any():
        focus = in_slice
    rest = ~in_slice
    if not rest.any():
        return np.zeros(sim.shape[1])
    outside = z[rest].mean(axis=0)
    if labels is None:
        return z[focus].mean(axis=0) - outside
    refs = []
    for c, count in zip(*np.unique(labels[focus], return_counts=True)):
        same = (labels == c) & ~errors
        refs.append((z[same].mean(axis=0) if same.any() else outside) * count)
    return z[focus].mean(axis=0) - np.sum(refs, axis=0) / focus.sum()


def name_slice(sim: np.ndarray, phrases: list[str], in_slice: np.ndarray, errors: np.ndarray,
               labels: np.ndarray | None = None, top: int = 5) -> list[tuple[str, float]]:
    """The `top` phrases by the size of their score, with the signed score; a negative score
    names the phrase as "not <phrase>"."""
    scores = score_phrases(sim, in_slice, errors, labels)
    order = np.argsort(-np.abs(scores), kind="stable")[:top]
    return [(phrases[i] if scores[i] >= 0 else f"not {phrases[i]}", float(scores[i]))
            for i in order]
