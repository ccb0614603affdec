"""Names for failure slices from text space, each with the evidence that it is better than
chance, or no name at all.

1. **Only words the model can read.** A phrase is dropped when any of its words is unknown to
   the model's tokenizer (it maps to the unknown token, or falls apart into single characters
   or more than three pieces: a word the tokenizer never met often enough to keep); phrases
   whose text embeddings coincide (the same tokens after the unknown ones are removed, say) are
   merged into one. Both lists are in audit.json, with the reason.
2. **A score.** Each phrase's image similarities are standardised over the whole dataset. Its
   score for a slice is how far, in those standard deviations, the slice's mistakes sit from
   the other images of their own classes (each mistake against its class, weighted by how many
   mistakes the class has): as in B2T, the class itself cancels and what sets the mistakes
   apart remains. A negative score reads "not <phrase>".
3. **A permutation test.** Under the null the slice's mistakes are any images of their classes:
   the mistakes are re-drawn at random within each class (the same count per class) a thousand
   times, and each phrase's p-value is the share of draws whose *largest* |score| over all
   phrases reaches its own (the maximum statistic, so the p-values hold for the whole list at
   once). Names with p ≤ α are reported, largest |score| first; a slice with none is unnamed,
   with the reason.

Class names are never candidates: a slice's mistakes always match their predicted class best,
which restates the confusion instead of naming what the images share.

Ref. Eyuboglu et al., "Domino", ICLR 2022 (slice descriptions from text embeddings); Kim et al.,
"Bias-to-Text" (B2T), CVPR 2024 (keywords scored by how much more they match the mistakes);
Westfall and Young, "Resampling-Based Multiple Testing", 1993 (max-T permutation p-values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError

_ASSETS = Path(__file__).resolve().parent.parent / "assets"
#: a word that falls apart into more pieces than this is one the tokenizer does not know
MAX_WORD_PIECES = 3
#: text embeddings this similar are one phrase
SAME_EMBEDDING = 0.9999
PERMUTATIONS = 1000


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
    """The attribute phrases to score: a file's, or the generic list shipped with mmattr."""
    return list(dict.fromkeys(read_phrases(phrases) if phrases else default_phrases()))


def _strip(piece: str) -> str:
    for mark in ("</w>", "▁", "Ġ", "##"):
        piece = piece.replace(mark, "")
    return piece


def unknown_word(pieces: Sequence[str | None]) -> str | None:
    """Why a word's tokenizer pieces show the model cannot read it, or None when it can: an
    unknown token, more than `MAX_WORD_PIECES` pieces, or a split into single characters."""
    if any(p is None for p in pieces):
        return "unknown token"
    if len(pieces) <= 1:
        return None
    if len(pieces) > MAX_WORD_PIECES:
        return f"{len(pieces)} pieces"
    if any(len(_strip(p)) <= 1 for p in pieces):
        return "split into characters"
    return None


@dataclass
class Vocabulary:
    """The phrases kept for naming, with what was dropped or merged and why."""

    phrases: list[str]
    embeddings: np.ndarray                      # (P, D) unit-norm, row i ↔ phrases[i]
    dropped: dict[str, str] = field(default_factory=dict)
    merged: dict[str, list[str]] = field(default_factory=dict)   # kept phrase → its duplicates
    checked: bool = True                        # False: the tokenizer could not be read

    def to_dict(self) -> dict:
        return {"kept": len(self.phrases), "tokenizer_checked": self.checked,
                "dropped": [{"phrase": p, "reason": r} for p, r in self.dropped.items()],
                "merged": [{"phrase": p, "same_as": d} for p, d in self.merged.items()]}


def vet_phrases(phrases: Sequence[str], embeddings: np.ndarray, pieces=None) -> Vocabulary:
    """Keep the phrases the model can read, one per distinct text embedding. `pieces(text)`
    returns each word's tokenizer pieces (`Adapter.word_pieces`), or None when unknown."""
    emb = np.asarray(embeddings, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    dropped: dict[str, str] = {}
    checked = pieces is not None
    keep: list[int] = []
    for i, phrase in enumerate(phrases):
        words = pieces(phrase) if pieces is not None else None
        if words is None:  # nothing to check the words against: kept, and said so
            checked = False
            keep.append(i)
            continue
        bad = [(w, why) for w, p in zip(phrase.split(), words) if (why := unknown_word(p))]
        if bad:
            dropped[phrase] = "the model's tokenizer does not know " + ", ".join(
                f"'{w}' ({why})" for w, why in bad)
        else:
            keep.append(i)
    merged: dict[str, list[str]] = {}
    kept: list[int] = []
    for i in keep:
        twin = next((j for j in kept if float(emb[i] @ emb[j]) >= SAME_EMBEDDING), None)
        if twin is None:
            kept.append(i)
        else:
            merged.setdefault(phrases[twin], []).append(phrases[i])
            dropped[phrases[i]] = f"same text embedding as '{phrases[twin]}'"
    return Vocabulary([phrases[i] for i in kept], emb[kept] if kept else emb[:0], dropped,
                      merged, checked)


def standardise(sim: np.ndarray) -> np.ndarray:
    """(N, P) similarities → z-scores per phrase over the dataset."""
    sim = np.asarray(sim, dtype=np.float64)
    return (sim - sim.mean(axis=0)) / np.maximum(sim.std(axis=0), 1e-9)


def _class_weights(focus: np.ndarray, labels: np.ndarray) -> list[tuple[np.ndarray, int, float]]:
    """Per class holding focus images and other images: (its indices, focus count, factor
    n_c / (n_c − f_c) · f_c / F) so that Σ factor · (mean_focus − mean_class) is the
    count-weighted difference of the focus against the class's other images."""
    out = []
    total = 0
    for c in np.unique(labels[focus]):
        members = np.flatnonzero(labels == c)
        f = int(focus[members].sum())
        if f < len(members):
            out.append((members, f, len(members) / (len(members) - f)))
            total += f
    return [(m, f, r * f / total) for m, f, r in out]


def score_phrases(z: np.ndarray, focus: np.ndarray, labels: np.ndarray | None = None
                  ) -> np.ndarray:
    """(P,) scores from (N, P) standardised similarities: the mean over `focus` (N,) bool
    minus the mean of the rest of their classes, class by class, weighted by the focus count
    (see the module docstring); without `labels` (or when no class has images outside the
    focus), against all images outside it."""
    z = np.asarray(z, dtype=np.float64)
    focus = np.asarray(focus, bool)
    if not focus.any() or focus.all():
        return np.zeros(z.shape[1])
    groups = _class_weights(focus, np.asarray(labels)) if labels is not None else []
    if not groups:
        return z[focus].mean(axis=0) - z[~focus].mean(axis=0)
    return sum(w * (z[m][focus[m]].mean(axis=0) - z[m].mean(axis=0)) for m, _, w in groups)


def permutation_null(z: np.ndarray, focus: np.ndarray, labels: np.ndarray | None,
                     permutations: int = PERMUTATIONS, seed: int = 0) -> np.ndarray:
    """(B,) max over phrases of |score| when the focus is re-drawn at random within each class
    (same count per class; without labels, from the whole dataset)."""
    z = np.asarray(z, dtype=np.float64)
    focus = np.asarray(focus, bool)
    rng = np.random.default_rng(seed)
    groups = _class_weights(focus, np.asarray(labels)) if labels is not None else []
    out = []
    # blocks of draws: memory stays at block × focus × phrases, whatever the dataset's size
    for start in range(0, int(permutations), 100):
        b = min(100, int(permutations) - start)
        if groups:
            stats = np.zeros((b, z.shape[1]))
            for members, f, w in groups:
                zc = z[members]
                pick = np.argsort(rng.random((b, len(members))), axis=1)[:, :f]
                stats += w * (zc[pick].mean(axis=1) - zc.mean(axis=0))
        else:
            f, n = int(focus.sum()), len(z)
            pick = np.argsort(rng.random((b, n)), axis=1)[:, :f]
            inside = z[pick].mean(axis=1)
            stats = inside - (z.sum(axis=0) - inside * f) / max(n - f, 1)
        out.append(np.abs(stats).max(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


@dataclass
class Naming:
    """A slice's names (phrase, signed score, p-value), best first, or why it has none."""

    names: list[tuple[str, float, float]]
    unnamed: str = ""
    best: tuple[str, float, float] | None = None


def name_slice(sim: np.ndarray, phrases: list[str], in_slice: np.ndarray, errors: np.ndarray,
               labels: np.ndarray | None = None, top: int = 5, alpha: float = 0.05,
               permutations: int = PERMUTATIONS, seed: int = 0) -> Naming:
    """The phrases that set the slice's mistakes (all its members when it has none) apart from
    the rest of their classes better than chance (max-T permutation p ≤ `alpha`), at most `top`,
    largest |score| first; a negative score names the phrase "not <phrase>"."""
    if not phrases:
        return Naming([], "no phrase left to try (every phrase uses a word the model cannot read)")
    z = standardise(sim)
    focus = np.asarray(in_slice, bool) & np.asarray(errors, bool)
    if not focus.any():
        focus = np.asarray(in_slice, bool)
    scores = score_phrases(z, focus, labels)
    null = permutation_null(z, focus, labels, permutations, seed)
    p = (1.0 + (null[None, :] >= np.abs(scores)[:, None] - 1e-12).sum(axis=1)) / (len(null) + 1.0)
    order = np.argsort(-np.abs(scores), kind="stable")

    def named(i: int) -> tuple[str, float, float]:
        phrase = phrases[i] if scores[i] >= 0 else f"not {phrases[i]}"
        return phrase, float(scores[i]), float(p[i])

    names = [named(i) for i in order if p[i] <= alpha][:top]
    best = named(int(order[0]))
    if names:
        return Naming(names, "", best)
    return Naming([], f"no phrase sets its mistakes apart better than chance (best: "
                      f"'{best[0]}', score {best[1]:+.2f}, p = {best[2]:.2f})", best)
