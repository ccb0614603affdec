"""The metrics' score function agrees with the SMDL search's own curves on the same model."""

import numpy as np
import pytest
import torch

import mmattr
from mmattr.metrics import TargetScore, image_tensor
from mmattr.targets import Target


def test_score_reproduces_region_insertion_curve(hotbox, gray_image):
    e = mmattr.explain(gray_image, text="x", model=hotbox, division="grid", regions=16)
    scorer = TargetScore(hotbox, Target.from_text("x"), score="cosine", batch_size=3)
    img = image_tensor(gray_image)
    shown = []
    for k in range(len(e.order) + 1):
        keep = torch.from_numpy(np.isin(e.regions, e.order[:k])).float()
        shown.append(img * keep)
    ins = scorer(torch.stack(shown)).numpy()
    np.testing.assert_allclose(ins, e.insertion_curve, atol=1e-5)
    assert scorer.forward_passes == len(shown)
    logit = TargetScore(hotbox, Target.from_text("x"), score="logit")(img[None])
    assert float(logit[0]) == pytest.approx(100 * e.deletion_curve[0], rel=1e-5)


def test_probability_needs_a_vocabulary(hotbox):
    with pytest.raises(mmattr.InputError, match="vocabulary"):
        TargetScore(hotbox, Target.from_text("x"), score="probability")
