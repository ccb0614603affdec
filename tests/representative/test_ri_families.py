"""Representative Interpretations on tiny random-weight models of each family it applies to:
a transformers ResNet (CNN stages, ψ chosen automatically), a ViT classifier (ψ = tokens) and a
CLIP-style zero-shot head (logit_scale · cosine to class embeddings, ψ before the last block).
Random weights predict one class for everything, so the heads are re-centred on the data first
(classifier bias = minus the mean logit; zero-shot classes = image prototypes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmattr.adapters import load_adapter
from mmattr.errors import ModelError
from mmattr.representative import RepresentativeInterpretations, RIOptions

from ri_testlib import load_module

ADAPTER_CONFTEST = Path(__file__).parents[1] / "adapters" / "conftest.py"


@pytest.fixture(scope="module")
def savers():
    return load_module(ADAPTER_CONFTEST, "ri_adapter_models")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    out = []
    for _ in range(48):
        img = np.empty((40, 40, 3), np.uint8)
        img[:, :20] = rng.integers(0, 255, 3)
        img[:, 20:] = rng.integers(0, 255, 3)
        img[rng.integers(0, 30):, rng.integers(0, 30):] = rng.integers(0, 255, 3)
        out.append(img)
    return out


def _centre_bias(adapter, images) -> None:
    from mmattr.representative.head import to_pixels

    with torch.inference_mode():
        f = adapter.encode_images(to_pixels(adapter, images))[:, :-1]
        logits = f @ adapter.head.weight.T
        adapter.head.bias.copy_(-logits.mean(0) + torch.randn(logits.shape[1]) * 1e-3)
        adapter.head.weight.mul_(10)


def _check(ri, images):
    fit = ri.fitted
    assert len(np.unique(fit.preds)) >= 2
    it = ri.explain(images[0])
    assert it.coverage >= 1 and it.other_covered <= it.delta
    assert it.accuracy_model >= 0 and it.heatmap.shape == images[0].shape[:2]
    assert np.isfinite(it.heatmap).all() and it.heatmap.max() <= 1
    maps = ri.heatmaps(it, images[1:3])
    assert len(maps) == 2
    return it


def test_resnet_picks_a_stage_with_relu_stages_after_it(tmp_path, savers, images):
    savers._save_resnet(tmp_path)
    adapter = load_adapter(f"hf-classifier:{tmp_path}", device="cpu")
    _centre_bias(adapter, images)
    # the last stage is followed by pooling and one linear layer: refused, named or not
    with pytest.raises(ModelError, match="linear in ψ"):
        RepresentativeInterpretations(adapter, RIOptions(
            layer="resnet.encoder.stages.1", boundaries=10, min_class_refs=1)).fit(images)
    ri = RepresentativeInterpretations(adapter, RIOptions(boundaries=16, min_class_refs=1)).fit(images)
    assert ri.fitted.meta["layer"] == "resnet.encoder.stages.0"
    _check(ri, images)
    ri_walk = RepresentativeInterpretations(adapter, RIOptions(
        layer="resnet.encoder.stages.0", boundaries=8, sampler="walk", min_class_refs=1)).fit(images)
    _check(ri_walk, images)
    assert sum(len(m._forward_hooks) for m in adapter.vision_module().modules()) == 0  # none leaked


def test_vit_classifier_tokens(tmp_path, savers, images):
    savers._save_vit(tmp_path)
    adapter = load_adapter(f"hf-classifier:{tmp_path}", device="cpu")
    _centre_bias(adapter, images)
    ri = RepresentativeInterpretations(adapter, RIOptions(
        layer="vit.embeddings", boundaries=12, min_class_refs=1)).fit(images)
    assert ri.fitted.meta["psi_shape"] == [17, 32]  # class token + 4×4 patches
    it = _check(ri, images)
    assert it.alpha.shape[1] == 32


def test_clip_zero_shot_head(tmp_path, savers, images):
    savers._save_clip(tmp_path)
    adapter = load_adapter(f"hf:{tmp_path}", device="cpu")
    from mmattr.representative.head import to_pixels

    with torch.inference_mode():
        protos = F.normalize(adapter.encode_images(to_pixels(adapter, images[:4])), dim=-1)
    adapter.class_embeddings = lambda names, chunk=256: protos[:len(names)]
    ri = RepresentativeInterpretations(adapter, RIOptions(
        layer="pre_layrnorm", boundaries=12, vocabulary=["a", "b", "c", "d"],
        min_class_refs=1)).fit(images)
    assert ri.fitted.meta["psi_shape"][0] == 1 + 5 * 6  # 40×48 input, patch 8, class token
    _check(ri, images)
    # ψ = the pooled, projected embedding: cosine boundaries are hyperplanes → refused
    with pytest.raises(ModelError, match="linear in ψ"):
        RepresentativeInterpretations(adapter, RIOptions(
            layer="post_layernorm", boundaries=8, vocabulary=["a", "b", "c", "d"],
            min_class_refs=1)).fit(images)
