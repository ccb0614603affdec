"""Which mistakes are label errors, and which are the model's own (systematic) errors.

A wrong prediction has two explanations: the label is wrong, or the model is. The model's own
confidence cannot tell them apart: a model that fails on a whole group of images (a spurious
background, a corruption) is as sure of its mistakes there as a good model is of an image whose
label was flipped. So an image is called a likely label error only on evidence from *other*
images: its k nearest neighbours in embedding space (its own vote removed, as cleanlab's kNN
label check does) must

- mostly carry the class the model predicts (at least half of them; or, for a small class among
  near ones, at least a quarter while none carries the image's label and the model gets every
  neighbour right) and rarely the image's own label (at most a fifth): the image looks like
  the images of the predicted class;
- show no sign of a shared failure: none of them has the same mistake (same label, same
  prediction), and at most one other is predicted as that class against its own label (not
  counting neighbours that pass this check themselves: two flipped images of one class can sit
  side by side). Random label noise almost never puts two such images side by side; a model
  that fails on a group alike always does.

and the model must not hold the label for a close runner-up (its second choice with more than
1 % probability): hesitating between two near classes is the model's confusion, not evidence
against the label.

Every other mistake is a *systematic model error* (the audit links each to its failure slice).
Likely label errors are set aside while failure slices are looked for; one that then falls, by
its features, in a reported slice is set back as that slice's model error (`LabelCheck.demote`),
unless the slice would take in more of them than it has mistakes of its own (a mode fitted to a
few mistakes is wide enough to swallow every image that looks unlike its label), or the image
is a typical image of the class the model predicts (as close to that class's mean as 75 % of its
correctly classified images): a normal member of another class under a wrong label, which a
model's diffuse weakness would otherwise swallow (`core._typical_of_prediction`).
With a reference model (``--reference-model``), the neighbours come from the reference's
embedding space and the reference's own prediction must also contradict the label, so a flaw of
the audited model cannot vouch for itself.

k is the median class size minus one, between 3 and 10: a class of 8 images cannot give a
neighbour majority at k = 10.

Ref. Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 2021 (self-confidence, normalised margin); cleanlab's Datalab label issue check
from features (k nearest neighbours, own vote removed); Bahri, Jiang and Gupta, "Deep k-NN for
Noisy Labels", ICML 2020.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the neighbour vote a label error needs: this share of neighbours carry the predicted class
PREDICTION_SUPPORT = 0.5
#: ... and at most this share carry the image's own label
LABEL_SUPPORT = 0.2
#: at most this many neighbours predicted as the image's prediction against their own label
#: (and not label-error candidates themselves)
CALLED_ALIKE = 1
#: a label the model ranks second with more than this probability is a close runner-up
RUNNER_UP = 0.01


@dataclass
class LabelCheck:
    """Per image (N,) evidence about its label; ``label_error`` and ``systematic`` split the
    model's mistakes in two."""

    k: int
    self_confidence: np.ndarray     # p(label) under the audited model
    mistakenness: np.ndarray        # (1 + max_{j≠y} p_j − p_y) / 2: > 0.5 the model prefers another class
    label_support: np.ndarray       # share of the k neighbours labelled like the image
    prediction_support: np.ndarray  # share of the k neighbours labelled as the image's prediction
    same_mistake: np.ndarray        # neighbours with the same (label, prediction) mistake
    called_alike: np.ndarray        # neighbours predicted as the image's prediction against their label
    reference_pred: np.ndarray | None
    label_error: np.ndarray         # bool: a likely label error
    systematic: np.ndarray          # bool: a mistake that is not a likely label error
    score: np.ndarray               # ranking: likely label errors first, by mistakenness

    #: candidates set back as model errors because they fall in a failure slice
    demoted: np.ndarray = None  # type: ignore[assignment]

    def demote(self, indices: np.ndarray) -> None:
        """Set these label-error candidates back as systematic model errors (a failure slice
        explains them): their ranking score drops to their mistakenness."""
        idx = np.asarray(indices, dtype=np.int64)
        idx = idx[self.label_error[idx]]
        self.label_error[idx] = False
        self.systematic[idx] = True
        self.score[idx] = self.mistakenness[idx]
        self.demoted = np.union1d(self.demoted if self.demoted is not None else [], idx).astype(np.int64)

    def label_errors(self, top: int | None = None) -> np.ndarray:
        """Indices of likely label errors, most mistaken first."""
        idx = np.flatnonzero(self.label_error)
        idx = idx[np.argsort(-self.mistakenness[idx], kind="stable")]
        return idx if top is None else idx[:top]

    def systematic_errors(self, confidence: np.ndarray, top: int | None = None) -> np.ndarray:
        """Indices of systematic model errors, most confident first."""
        idx = np.flatnonzero(self.systematic)
        idx = idx[np.argsort(-confidence[idx], kind="stable")]
        return idx if top is None else idx[:top]


def neighbour_count(labels: np.ndarray) -> int:
    """k for the label check: the median class size minus one, between 3 and 10."""
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    return int(np.clip(np.median(counts) - 1 if len(counts) else 3, 3, 10))


def nearest_neighbours(emb: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """(N, k) indices of each row's k most cosine-similar other rows (itself excluded),
    computed in chunks so memory stays at chunk × N."""
    x = np.asarray(emb, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = len(x)
    k = int(min(k, max(n - 1, 0)))
    out = np.zeros((n, k), dtype=np.int64)
    if not k:
        return out
    for s in range(0, n, chunk):
        sim = x[s:s + chunk] @ x.T
        rows = np.arange(sim.shape[0])
        sim[rows, s + rows] = -np.inf  # own vote removed
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, part, 1), axis=1, kind="stable")
        out[s:s + chunk] = np.take_along_axis(part, order, 1)
    return out


def check_labels(emb: np.ndarray, probs: np.ndarray, labels: np.ndarray, *,
                 k: int | None = None, reference_emb: np.ndarray | None = None,
                 reference_pred: np.ndarray | None = None) -> LabelCheck:
    """Split the mistakes of `probs` (N, K) on `labels` (N,) into likely label errors and
    systematic model errors (see the module docstring). `emb` (N, D) are the audited model's
    image embeddings; `reference_emb` / `reference_pred`, a second model's, replace them as
    the neighbours' space and add its own vote."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(labels)
    rows = np.arange(n)
    pred = probs.argmax(axis=1)
    wrong = pred != labels
    p_label = probs[rows, labels]
    others = probs.copy()
    others[rows, labels] = -np.inf
    mistakenness = (1.0 + others.max(axis=1) - p_label) / 2.0 if n else np.zeros(0)
    k = neighbour_count(labels) if k is None else int(k)
    space = reference_emb if reference_emb is not None else emb
    nn = nearest_neighbours(space, k) if n > 1 else np.zeros((n, 0), np.int64)
    if nn.shape[1]:
        nl, npred = labels[nn], pred[nn]
        label_support = (nl == labels[:, None]).mean(axis=1)
        prediction_support = (nl == pred[:, None]).mean(axis=1)
        same = ((nl == labels[:, None]) & (npred == pred[:, None])).sum(axis=1)
        alike = ((npred == pred[:, None]) & (nl != pred[:, None])).sum(axis=1)
    else:
        label_support = prediction_support = np.zeros(n)
        same = alike = np.zeros(n, dtype=np.int64)
    # the model hesitating between its prediction and the label (a close second) is a
    # confusion of two near classes, not evidence against the label
    rank = (probs > p_label[:, None]).sum(axis=1) if n else np.zeros(0, np.int64)
    runner_up = (rank == 1) & (p_label > RUNNER_UP)
    # the vote: most neighbours carry the prediction, or (a small class among near ones)
    # some do, none carries the label and every neighbour is one the model gets right
    reliable = (nl == npred).all(axis=1) if nn.shape[1] else np.zeros(n, bool)
    support = ((prediction_support >= PREDICTION_SUPPORT)
               | ((prediction_support >= PREDICTION_SUPPORT / 2) & (label_support == 0) & reliable))
    vote = wrong & support & (label_support <= LABEL_SUPPORT) & (same == 0) & ~runner_up
    if nn.shape[1]:
        # neighbours predicted like it against their label count against it unless they are
        # such candidates themselves (two flipped images of one class can sit side by side;
        # a group the model fails on alike has the same mistakes without the vote)
        alike = ((npred == pred[:, None]) & (nl != pred[:, None]) & ~vote[nn]).sum(axis=1)
    flag = vote & (alike <= CALLED_ALIKE)
    if reference_pred is not None:
        flag &= np.asarray(reference_pred) != labels
    score = np.where(flag, 1.0 + mistakenness, np.where(wrong, mistakenness, 0.0))
    return LabelCheck(k, p_label, mistakenness, label_support, prediction_support, same, alike,
                      None if reference_pred is None else np.asarray(reference_pred),
                      flag, wrong & ~flag, score)


def confident_mistakes(preds: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
                       top: int = 12) -> np.ndarray:
    """Indices of wrong predictions, most confident first."""
    wrong = np.flatnonzero(preds != labels)
    return wrong[np.argsort(-confidence[wrong], kind="stable")][:top]
