"""`core._typical_of_prediction`: the rule that keeps a flipped label a label error when it
lands in a failure mode. Known answers on hand-built embeddings: an image at the heart of the
class the model predicts is typical of it, a blurred-looking one between classes is not, and a
class with too few correct images to judge says no."""

import numpy as np

from mmattr.audit.core import _typical_of_prediction


def _clusters(rng: np.random.Generator, per_class: int = 12, dim: int = 16, spread: float = 0.1):
    centres = np.eye(dim)[:3] * 3.0
    emb = np.concatenate([centres[c] + spread * rng.standard_normal((per_class, dim))
                          for c in range(3)])
    labels = np.repeat(np.arange(3), per_class)
    return centres, emb, labels


def test_a_flip_is_typical_of_its_prediction_and_a_blur_is_not():
    rng = np.random.default_rng(0)
    centres, emb, labels = _clusters(rng)
    preds = labels.copy()
    # a flipped image: an ordinary class-0 image labelled 1, predicted 0
    flip = centres[0] + 0.1 * rng.standard_normal(16)
    # a "blurred" image of class 1 predicted 0: halfway between the classes
    blur = 0.5 * (centres[0] + centres[1]) + 0.1 * rng.standard_normal(16)
    emb = np.vstack([emb, flip, blur])
    labels = np.concatenate([labels, [1, 1]])
    preds = np.concatenate([preds, [0, 0]])
    correct = preds == labels
    typical = _typical_of_prediction(emb, preds, labels, correct)
    assert typical[-2] and not typical[-1]
    # the correct images of class 0 are judged by the same bar: most of them pass it
    assert typical[:12].mean() >= 0.75 - 1e-9


def test_too_few_correct_images_of_the_predicted_class_cannot_vouch():
    rng = np.random.default_rng(1)
    centres, emb, labels = _clusters(rng, per_class=4)
    flip = centres[2] + 0.05 * rng.standard_normal(16)
    emb = np.vstack([emb, flip])
    labels = np.concatenate([labels, [0]])
    preds = np.concatenate([labels[:-1], [2]])
    typical = _typical_of_prediction(emb, preds, labels, preds == labels)
    assert not typical[-1]  # class 2 has 4 correct images, fewer than the 5 needed
