"""One contract for every registered model family (as timm's test_models.py does for its
models): shapes, normalisation, batch-size invariance, determinism, and an explanation end to
end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from mmattr.adapters import ADAPTERS, load_adapter
from mmattr.cli.main import app
from mmattr.demo_model import DEMO_MODEL_DIR
from mmattr.targets import Target

#: every registered family, plus the variants of a family with a different code path
CASES = sorted(set(ADAPTERS.names()) | {"hf-siglip", "hf-siglip2", "hf-classifier-resnet",
                                       "torch-encoder"})
CLASSIFIERS = {"hf-classifier", "hf-classifier-resnet", "torch", "demo-classifier"}


def _adapter(tiny_models, case):
    if case == "demo" and not (DEMO_MODEL_DIR / "model.safetensors").is_file():
        pytest.skip("the demo model has not been trained yet")
    return load_adapter(tiny_models[case], device="cpu")


def _target_option(case: str) -> list[str]:
    return ["--class", "1"] if case in CLASSIFIERS else ["--text", "a red circle"]


def test_every_registered_family_has_a_tiny_model(tiny_models):
    # Families other test modules register for themselves are not mmattr's to cover here.
    shipped = {n for n in ADAPTERS.names() if ADAPTERS.get(n).factory.__module__.startswith("mmattr.")}
    assert shipped <= set(tiny_models)


@pytest.mark.parametrize("case", CASES)
def test_embedding_contract(tiny_models, case):
    adapter = _adapter(tiny_models, case)
    h, w = adapter.preprocess.output_hw
    torch.manual_seed(0)
    pixels = adapter.preprocess((torch.rand(5, h + 7, w + 3, 3) * 255).to(torch.uint8))
    assert pixels.shape == (5, 3, h, w)
    emb = adapter.encode_images(pixels)
    assert emb.shape == (5, adapter.embed_dim) and emb.dtype == torch.float32
    assert torch.isfinite(emb).all()
    # batch-size invariance and determinism
    one_by_one = torch.cat([adapter.encode_images(pixels[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(one_by_one, emb, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(adapter.encode_images(pixels), emb, atol=0, rtol=0)
    # forward_images: same values, differentiable
    grad_in = pixels[:2].clone().requires_grad_(True)
    out = adapter.forward_images(grad_in)
    torch.testing.assert_close(out.detach(), emb[:2], atol=1e-5, rtol=1e-4)
    # A random projection, not out.sum(): a head input right after a LayerNorm at its initial
    # affine (weight 1, bias 0) sums to 0 whatever the pixels, so its sum has no gradient.
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(1)))
    assert grad_in.grad is not None and grad_in.grad.abs().sum() > 0


@pytest.mark.parametrize("case", CASES)
def test_target_embeddings_are_unit_norm(tiny_models, case, scene):
    adapter = _adapter(tiny_models, case)
    targets = [Target.from_options(image=scene),
               Target.from_options(embedding=np.arange(1, adapter.embed_dim + 1, dtype=np.float32))]
    targets.append(Target.from_options(class_name="1") if case in CLASSIFIERS
                   else Target.from_text(["a red circle", "a blue square"]))
    encoded = [adapter.encode_target(target) for target in targets]
    for t in encoded:
        assert t.shape == (adapter.embed_dim,)
        assert torch.linalg.vector_norm(t).item() == pytest.approx(1.0, abs=1e-5)
    # the reference image's embedding is the target: cosine 1 with its own image
    from mmattr.image import load_image

    img = adapter.preprocess(torch.from_numpy(load_image(scene).copy())[None])
    cos = F.normalize(adapter.encode_images(img), dim=-1)[0] @ encoded[0]
    assert cos.item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_explain_end_to_end_through_the_cli(tiny_models, case, scene, tmp_path):
    _adapter(tiny_models, case)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["explain", str(scene), "--model", tiny_models[case],
                                      *_target_option(case), "--division", "grid", "--regions", "4",
                                      "--search", "exact", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "explanation.json").read_text())
    assert sorted(data["order"]) == [0, 1, 2, 3]
    attribution = np.load(out / "attribution.npy")
    assert attribution.shape == (48, 56)
    assert data["model"]["spec"] == tiny_models[case]


@pytest.mark.parametrize("case", CASES)
def test_cam_runs_through_the_adapter_contract(tiny_models, case, scene):
    """Grad-CAM on every family, ``torch:`` included: the tower is `vision_module()`, a ViT's
    grid `token_grid()`; nothing reads a family's private attributes."""
    import mmattr
    from mmattr.image import load_image

    adapter = _adapter(tiny_models, case)
    if adapter.vision_module() is None:
        pytest.skip(f"{case} hides its image tower")
    target = (Target.from_options(class_name="1") if case in CLASSIFIERS
              else Target.from_text("a red circle"))
    image = load_image(scene)
    e = mmattr.explain(image, target=target, model=adapter, method="gradcam")
    assert e.attribution.shape == image.shape[:2]
    assert np.isfinite(e.attribution).all() and e.attribution.max() > 0
    assert e.settings["method_settings"]["layer"]
