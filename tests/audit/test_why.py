"""Known answers for the audit's "why" measures: background AUC, donors, the background swap,
the contrastive target, and templates applied to a view (the cached adapter never changes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmattr.audit.why import (background_auc, choose_donors, contrast_target, object_share,
                              occlusion_predictions)


def test_background_auc_hand_values():
    mask = np.zeros((2, 3), bool)
    mask[0, 0] = True  # one object pixel, five background pixels
    a = np.array([[5.0, 1.0, 2.0], [3.0, 4.0, 6.0]])
    # background values 1, 2, 3, 4, 6 against the object's 5: one (6) is above → 1/5
    assert background_auc(a, mask) == pytest.approx(0.2)
    assert background_auc(-a, mask) == pytest.approx(0.8)
    assert background_auc(np.ones((2, 3)), mask) == pytest.approx(0.5)  # ties count half
    assert np.isnan(background_auc(a, np.zeros((2, 3), bool)))
    shares = object_share(a, mask)
    assert shares["background_auc"] == pytest.approx(0.2)
    assert shares["object_share"] == 0.0  # the top pixel (6, as large as the object) is background


def test_background_auc_does_not_depend_on_the_object_size():
    rng = np.random.default_rng(0)
    for side in (4, 16, 40):
        mask = np.zeros((64, 64), bool)
        mask[:side, :side] = True
        flat_random = rng.random((64, 64))
        assert abs(background_auc(flat_random, mask) - 0.5) < 0.08


def test_donors_are_correct_images_of_the_same_class():
    labels = np.array([0, 0, 0, 1, 1, 2])
    correct = np.array([False, True, True, True, False, False])
    has_mask = np.array([True, True, False, True, True, True])
    donors = choose_donors(labels, correct, has_mask, np.arange(6), seed=3)
    assert donors[0] == 1                 # image 2 is correct but has no mask
    assert donors[1] == -1                # its only candidate is itself
    assert donors[2] == 1
    assert donors[3] == -1 and donors[4] == 3
    assert donors[5] == -1                # class 2 has no correct image
    assert (choose_donors(labels, correct, has_mask, np.arange(6), seed=3) == donors).all()


class _BackgroundModel:
    """A toy 'model' whose class is the top-left pixel's colour channel: it reads the
    background only, so the swap must carry the donor's class."""

    device = torch.device("cpu")

    def preprocess(self, x):
        return x.permute(0, 3, 1, 2).float() / 255.0

    def autocast(self):
        import contextlib

        return contextlib.nullcontext()

    def encode_images(self, x):
        return x[:, :, 0, 0]


def test_background_swap_moves_the_object_onto_the_donor_background(tmp_path):
    from PIL import Image

    def scene(name, bg):
        img = np.zeros((16, 16, 3), np.uint8)
        img[:] = bg
        img[6:10, 6:10] = (255, 255, 255)
        mask = np.zeros((16, 16), np.uint8)
        mask[6:10, 6:10] = 255
        Image.fromarray(img).save(tmp_path / f"{name}.png")
        Image.fromarray(mask).save(tmp_path / f"{name}_m.png")
        return str(tmp_path / f"{name}.png"), str(tmp_path / f"{name}_m.png")

    red, green = scene("red", (200, 0, 0)), scene("green", (0, 200, 0))
    got = occlusion_predictions(_BackgroundModel(), lambda e: e, [red[0], green[0]],
                                [red[1], green[1]], donors=[green, None])
    assert got["failed"] == []
    assert got["background_swap"].tolist() == [1, -1]   # red's object on green's background
    assert got["object_only"].tolist() == [0, 0]         # black background: channel 0 ties win
    missing = occlusion_predictions(_BackgroundModel(), lambda e: e, [red[0]], [red[1]],
                                    donors=[(str(tmp_path / "gone.png"), green[1])])
    assert missing["background_swap"].tolist() == [-1] and missing["failed"] == []


def test_contrast_target_cancels_what_the_classes_share():
    from mmattr.adapters import load_adapter

    adapter = load_adapter("demo")
    assert contrast_target(adapter, "a red star", "a red star") is None
    t = contrast_target(adapter, "a red star", "a red circle")
    e = lambda name: adapter.class_embeddings([name])[0].float().cpu().numpy()
    expected = e("a red star") - e("a red circle")
    assert t.kind == "embedding" and np.allclose(t.embedding, expected, atol=1e-5)


def test_audit_templates_are_a_view(shapes_set, tmp_path):
    import mmattr
    from mmattr.adapters import load_adapter
    from mmattr.audit import AuditSettings

    adapter = load_adapter("demo")
    before = (adapter.templates, adapter.text_templates)
    r = mmattr.audit(shapes_set, adapter, out=tmp_path / "out", explain_budget=0,
                     templates="imagenet80",
                     settings=AuditSettings(cache_dir=str(tmp_path / "cache")))
    assert (adapter.templates, adapter.text_templates) == before
    assert len(r.summary["settings"]["templates_used"]) == 80
    with pytest.raises(mmattr.InputError, match="neither a file nor"):
        mmattr.audit(shapes_set, adapter, out=tmp_path / "out2", templates="imagenet81")
