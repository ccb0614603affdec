"""Names for failure slices from text space: phrases that match a slice's mistakes more than
they match the rest of the dataset.

Each phrase's image similarities are standardised over the whole dataset (its mean and spread
differ from phrase to phrase); a phrase's score for a slice is then the mean standardised
similarity over the slice's mistakes minus the mean over the images outside the slice: how
many standard deviations more the mistakes look like the phrase. The score is printed beside
each name.

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


def phrase_list(phrases: str | Path | None, vocabulary: list[str]) -> list[str]:
    """The phrases to score: a file's, or the generic list plus the world's own attribute
    phrases when the dataset declares them; the vocabulary's names are added, once each."""
    base = read_phrases(phrases) if phrases else default_phrases()
    return list(dict.fromkeys([*base, *vocabulary]))


def score_phrases(sim: np.ndarray, in_slice: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """(P,) scores from (N, P) image-phrase similarities, the slice's (N,) membership and the
    (N,) errors: mean z over the slice's mistakes (all its members when it has none) minus the
    mean z over the images outside the slice."""
    sim = np.asarray(sim, dtype=np.float64)
    z = (sim - sim.mean(axis=0)) / np.maximum(sim.std(axis=0), 1e-9)
    focus = in_slice & errors
    if not focus.any():
        focus = in_slice
    rest = ~in_slice
    if not rest.any():
        return np.zeros(sim.shape[1])
    return z[focus].mean(axis=0) - z[rest].mean(axis=0)


def name_slice(sim: np.ndarray, phrases: list[str], in_slice: np.ndarray, errors: np.ndarray,
               top: int = 5) -> list[tuple[str, float]]:
    """The `top` phrases by score, best first, with their scores."""
    scores = score_phrases(sim, in_slice, errors)
    order = np.argsort(-scores, kind="stable")[:top]
    return [(phrases[i], float(scores[i])) for i in order]
