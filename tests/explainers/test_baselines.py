"""Baselines against known answers (toy encoders, a linear model, exact Shapley values) and
against peer implementations on the same network (pytorch-grad-cam, sklearn's Ridge)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmattr
from mmattr.adapters._preprocess import Preprocess
from mmattr.adapters.base import Adapter
from mmattr.config import ExplainConfig
from mmattr.explainers import EXPLAINERS
from mmattr.explainers._common import CURVE_STEPS, target_embedding
from mmattr.explainers.hsic import binary_lhs, hsic_scores
from mmattr.explainers.perturbation import (kernel_shap_values, lime_kernel, shapley_samples,
                                            weighted_ridge)
from mmattr.targets import Target

BASELINES = ["saliency", "ig", "gradcam", "gradcampp", "scorecam", "lime", "kernelshap", "rise",
             "hsic"]


class LinearAdapter(Adapter):
    """emb = A · x (x the normalised 3×8×8 input): the cosine's gradient has a closed form."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.A = torch.randn(3, 3 * 8 * 8, generator=g, dtype=torch.float64)
        self.spec = "toy:linear"
        self.preprocess = Preprocess(shortest_edge=None, resize_hw=(8, 8), crop_hw=None,
                                     mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        self.device = torch.device("cpu")

    def encode_images(self, pixels):
        return pixels.flatten(1).double() @ self.A.T

    def encode_texts(self, prompts):
        return torch.tensor([[1.0, 0.5, -0.2]]).repeat(len(prompts), 1)


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(16, 6)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


class CNNAdapter(Adapter):
    def __init__(self) -> None:
        self.model = TinyCNN().eval().requires_grad_(False)
        self.spec = "toy:cnn"
        self.preprocess = Preprocess(shortest_edge=24, resize_hw=None, crop_hw=(24, 24),
                                     mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        self.device = torch.device("cpu")

    def encode_images(self, pixels):
        return self.model(pixels)

    def encode_texts(self, prompts):
        return torch.linspace(-1, 1, 6)[None].repeat(len(prompts), 1)

    def vision_module(self):
        return self.model


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    """A random-weight tiny transformers CLIP ViT folder (64 px, patch 8), the ViT case the CAM
    cross-checks need (the shipped demo model has a convolutional tower)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from mmattr.demo_model.train import build_tokenizer

    folder = tmp_path_factory.mktemp("tiny_clip")
    torch.manual_seed(0)
    tok = build_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=32, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, projection_dim=64)
    vision = dict(image_size=64, patch_size=8, hidden_size=64, intermediate_size=128,
                  num_hidden_layers=4, num_attention_heads=2, projection_dim=64)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=64)).save_pretrained(folder)
    tok.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_clip(tiny_clip_dir):
    from mmattr.adapters.hf import HFAdapter

    return HFAdapter(str(tiny_clip_dir), device=torch.device("cpu"))


def _scene(size=80):
    from mmattr.datasets.shapes import render_scene

    return render_scene(2, size=size)


def _explainer(name, **cfg):
    return EXPLAINERS.get(name)(ExplainConfig(**cfg))


# ---------------------------------------------------------------- known answers: gradients

def test_saliency_matches_closed_form_gradient():
    adapter = LinearAdapter()
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    t = target_embedding(adapter, Target.from_text("x")).double()
    res = _explainer("saliency").attribute(image, t.float(), adapter)
    # cos = e·t/|e|, e = A((x/255 - 0.5)/0.25): ∂cos/∂x = Aᵀ(t/|e| - (e·t)e/|e|³) / (255·0.25)
    x = torch.from_numpy(image).permute(2, 0, 1).double() / 255
    e = adapter.A @ ((x - 0.5) / 0.25).flatten()
    n = e.norm()
    g = (adapter.A.T @ (t / n - (e @ t) * e / n ** 3)) / 0.25
    expected = g.view(3, 8, 8).abs().amax(0).numpy()
    np.testing.assert_allclose(res.attribution, expected, rtol=1e-4, atol=1e-7)


def test_saliency_only_inside_the_hot_box(hotbox, gray_image):
    e = mmattr.explain(gray_image, text="x", model=hotbox, method="saliency")
    inside = np.zeros(gray_image.shape[:2], bool)
    inside[8:16, 16:24] = True
    assert np.all(e.attribution[inside] > 0) and np.all(e.attribution[~inside] == 0)
    assert e.order == [] and e.curve_score == "cosine" and len(e.curve_x) == CURVE_STEPS + 1


def test_integrated_gradients_completeness(hotbox, gray_image):
    e = mmattr.explain(gray_image, text="x", model=hotbox, method="ig")
    t = target_embedding(hotbox, Target.from_text("x"))
    x = torch.from_numpy(gray_image).permute(2, 0, 1)[None].float() / 255
    f = lambda p: F.normalize(hotbox.encode_images(p), dim=-1) @ t  # noqa: E731
    gap = float(f(x) - f(torch.zeros_like(x)))
    assert e.attribution.sum() == pytest.approx(gap, rel=1e-3)
    assert e.forward_passes == 50
    assert np.abs(e.attribution[:8]).max() == 0


# ---------------------------------------------------------------- peers: pytorch-grad-cam

def _pgc_scores(adapter, name, layer, reshape, pixels, t):
    pgc = pytest.importorskip("pytorch_grad_cam")
    cls = {"gradcam": pgc.GradCAM, "gradcampp": pgc.GradCAMPlusPlus, "scorecam": pgc.ScoreCAM}[name]

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = adapter.model

        def forward(self, x):
            return adapter.forward_images(x)

    scale = adapter.logit_scale if name == "scorecam" else 1.0
    target = lambda out: scale * (F.normalize(out.float(), dim=-1) @ t)  # noqa: E731
    with cls(model=Wrapper(), target_layers=[layer], reshape_transform=reshape) as cam:
        cam.batch_size = 64
        return cam(input_tensor=pixels.clone().requires_grad_(name != "scorecam"),
                   targets=[target])[0]


@pytest.mark.parametrize("name", ["gradcam", "gradcampp", "scorecam"])
def test_cam_equals_pytorch_grad_cam_on_vit(tiny_clip, name):
    image = _scene().image
    explainer = _explainer(name)
    t = target_embedding(tiny_clip, Target.from_text("a red circle"))
    pixels = explainer._input(image, tiny_clip)
    ours, info = explainer.cam_at_input(pixels, t, tiny_clip)
    assert info["layer"] == "encoder.layers.3.layer_norm1"  # inside vision_module()
    cfg = tiny_clip.model.config.vision_config
    gh = gw = cfg.image_size // cfg.patch_size  # 8×8 here: nothing assumes 14×14
    reshape = lambda a: a[:, 1:].reshape(a.shape[0], gh, gw, a.shape[2]).permute(0, 3, 1, 2)  # noqa
    layer = tiny_clip.model.vision_model.encoder.layers[-1].layer_norm1
    ref = _pgc_scores(tiny_clip, name, layer, reshape, pixels, t)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("name", ["gradcam", "gradcampp", "scorecam"])
def test_cam_equals_pytorch_grad_cam_on_cnn(name):
    adapter = CNNAdapter()
    image = _scene(40).image
    explainer = _explainer(name)
    t = target_embedding(adapter, Target.from_text("x"))
    pixels = explainer._input(image, adapter)
    ours, info = explainer.cam_at_input(pixels, t, adapter)
    assert info["layer"] == "features"  # the last module with a spatial output
    ref = _pgc_scores(adapter, name, adapter.model.features, None, pixels, t)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)


def test_cam_layer_override_and_errors(tiny_clip, hotbox, gray_image):
    image = _scene().image
    e = mmattr.explain(image, text="a red circle", model=tiny_clip, method="gradcam",
                       layer="vision_model.encoder.layers.-2.layer_norm1")
    assert e.settings["method_settings"]["layer"] == "vision_model.encoder.layers.-2.layer_norm1"
    assert e.attribution.shape == image.shape[:2]
    with pytest.raises(mmattr.InputError, match="no submodule"):
        mmattr.explain(image, text="x", model=tiny_clip, method="gradcam", layer="vision_model.nope")
    with pytest.raises(mmattr.ModelError, match="torch model"):
        mmattr.explain(gray_image, text="x", model=hotbox, method="gradcam")


def test_cam_hooks_removed(tiny_clip):
    layer = tiny_clip.model.vision_model.encoder.layers[-1].layer_norm1
    before = len(layer._forward_hooks)
    mmattr.explain(_scene().image, text="a red circle", model=tiny_clip, method="scorecam")
    assert len(layer._forward_hooks) == before


# ---------------------------------------------------------------- perturbation: known answers

@pytest.mark.parametrize("name", ["lime", "kernelshap"])
def test_region_methods_rank_the_hot_cell_first(hotbox, gray_image, name):
    e = mmattr.explain(gray_image, text="x", model=hotbox, method=name, division="grid",
                       regions=16)
    assert e.order[0] == 6 and e.n_regions == 16
    assert np.all(e.attribution[8:16, 16:24] == e.attribution.max())
    assert e.forward_passes == 1000
    assert e.insertion_auc > e.deletion_auc


@pytest.mark.parametrize("name", ["rise", "hsic"])
def test_mask_methods_peak_in_the_hot_box(hotbox, gray_image, name):
    e = mmattr.explain(gray_image, text="x", model=hotbox, method=name)
    r, c = np.unravel_index(np.argmax(e.attribution), e.attribution.shape)
    assert 8 <= r < 16 and 16 <= c < 24
    assert e.forward_passes == {"rise": 4000, "hsic": 1536}[name]


@pytest.mark.parametrize("name", ["rise", "lime", "kernelshap", "hsic"])
def test_sampled_methods_do_not_depend_on_batch_size(hotbox, gray_image, name):
    a = mmattr.explain(gray_image, text="x", model=hotbox, method=name, batch_size=7,
                       division="grid", regions=9, options=FAST)
    b = mmattr.explain(gray_image, text="x", model=hotbox, method=name, batch_size=256,
                       division="grid", regions=9, options=FAST)
    np.testing.assert_allclose(a.attribution, b.attribution, rtol=1e-5, atol=1e-6)


def test_lime_regression_equals_lime_and_sklearn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    from sklearn.metrics import pairwise_distances

    rng = np.random.default_rng(0)
    z = rng.integers(0, 2, (300, 12)).astype(float)
    z[0] = 1
    z[1] = 0  # a row of zeros too
    y = z @ rng.normal(size=12) + 0.3 * z[:, 0] * z[:, 1] + rng.normal(scale=0.05, size=300)
    # lime_image: distances = cosine to the first row, kernel sqrt(exp(-d²/w²)), Ridge(α=1).
    d = pairwise_distances(z, z[:1], metric="cosine").ravel()
    w_ref = np.sqrt(np.exp(-(d ** 2) / 0.25 ** 2))
    w = lime_kernel(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(w, w_ref, rtol=1e-10)
    ref = sklearn.Ridge(alpha=1.0).fit(z, y, sample_weight=w_ref)
    coef, intercept = weighted_ridge(torch.from_numpy(z), torch.from_numpy(y), torch.from_numpy(w))
    np.testing.assert_allclose(coef.numpy(), ref.coef_, rtol=1e-8, atol=1e-10)
    assert intercept == pytest.approx(ref.intercept_, rel=1e-8)


def test_kernel_shap_gives_exact_shapley_values():
    n = 6
    u = np.array([0.5, -1.0, 2.0, 0.0, 1.5, 0.3])

    def game(s):  # not additive: pair and triple interactions
        s = np.asarray(s, float)
        return s @ u + 2 * s[0] * s[1] - s[2] * s[3] * s[4] + 0.7 * s[5] * s[0]

    exact = np.zeros(n)
    for i in range(n):
        for s in itertools.product([0, 1], repeat=n):
            if s[i]:
                continue
            k = sum(s)
            weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            with_i = list(s)
            with_i[i] = 1
            exact[i] += weight * (game(with_i) - game(s))
    z, w, enumerated = shapley_samples(n, 1000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert enumerated and z.shape[0] == 2 ** n - 2
    y = torch.tensor([game(row) for row in z.numpy()])
    phi = kernel_shap_values(z, y, w, game(np.zeros(n)), game(np.ones(n)))
    np.testing.assert_allclose(phi.numpy(), exact, atol=1e-9)
    # Sampled coalitions (more features than samples can enumerate) stay close.
    z, w, enumerated = shapley_samples(n, 40, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert not enumerated and torch.all((z.sum(1) > 0) & (z.sum(1) < n))


def test_hsic_finds_the_relevant_dimension():
    gen = torch.Generator().manual_seed(0)
    x = binary_lhs(512, 10, gen, torch.device("cpu"))
    assert torch.all(x.sum(0) == 256)  # Latin hypercube: each column exactly half on
    y = 1.0 + 2.0 * x[:, 3]
    s = hsic_scores(x, y)
    # y depends on x3 alone: its HSIC stands far above the chance level of the others.
    assert int(s.argmax()) == 3 and s[3] > 20 * s[[0, 1, 2, 4, 5, 6, 7, 8, 9]].max()
    # The estimator by its definition, tr(K H L H) / n with the Dirac input kernel.
    n = 512
    H = torch.eye(n, dtype=torch.float64) - 1 / n
    w = y.double().median()
    L = torch.exp(-((y[:, None] - y[None]) ** 2).double() / (2 * w ** 2))
    K = (x[:, 5, None] == x[None, :, 5]).double()
    assert float(s[5]) == pytest.approx(float(torch.trace(K @ H @ L @ H)) / n, rel=1e-9)


# ---------------------------------------------------------------- every target kind, save

@pytest.mark.parametrize("name", ["saliency", "gradcam", "rise"])
def test_baselines_take_every_target_kind(tiny_clip, tmp_path, name):
    scene = _scene(48)
    target_png = tmp_path / "ref.png"
    from PIL import Image

    Image.fromarray(_scene(48).image[::-1]).save(target_png)
    targets = [Target.from_text("a red circle"), Target.from_options(class_name="circle"),
               Target.from_options(image=target_png),
               Target.from_options(embedding=np.ones(64, np.float32))]
    for target in targets:
        e = mmattr.explain(scene.image, model=tiny_clip, target=target, method=name, regions=9,
                           options=FAST)
        assert e.attribution.shape == (48, 48) and np.isfinite(e.attribution).all()
        assert np.ptp(e.attribution) > 0 and len(e.insertion_curve) == CURVE_STEPS + 1
    out = e.save(tmp_path / name)
    assert (out / "curves.png").is_file() and (out / "overlay.png").is_file()


def test_every_method_through_the_cli(tiny_clip_dir, tmp_path):
    """`mmattr explain --method NAME` for every baseline and smdl w/ a prior division."""
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from mmattr.cli.main import app

    image = tmp_path / "scene.png"
    Image.fromarray(_scene(48).image).save(image)
    runner = CliRunner()
    runs = [["--method", m] for m in BASELINES] + [
        ["--method", "smdl", "--division", "prior:hsic", "--regions", "6"],
        ["--method", "smdl", "--division", "seeds", "--regions", "6"]]
    for extra in runs:
        out = tmp_path / "_".join(extra).replace(":", "-")
        result = runner.invoke(app, ["explain", str(image), "--text", "a red circle", "--model",
                                     f"hf:{tiny_clip_dir}", "--regions", "9", "--out", str(out),
                                     *FAST_FLAGS, *extra])
        assert result.exit_code == 0, (extra, result.output)
        data = json.loads((out / "explanation.json").read_text())
        assert data["method"] == extra[1]
        method = extra[1] if extra[1] != "smdl" else "hsic" if "prior:hsic" in extra else None
        if method in FAST:  # the -O options reached the method: explanation.json says so
            assert data["settings"]["options"][method] == {
                **data["settings"]["options"][method], **FAST[method]}
        assert np.load(out / "attribution.npy").shape == (48, 48)
    assert data["settings"]["division"] == "seeds"
    bad = runner.invoke(app, ["explain", str(image), "--text", "x", "--model", f"hf:{tiny_clip_dir}",
                              "--division", "prior:smdl", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "baseline" in bad.output and "Traceback" not in bad.output


#: fewer samples: these tests check the plumbing; the known-answer tests use the defaults
FAST = {"rise": {"masks": 32}, "lime": {"samples": 32}, "kernelshap": {"samples": 32},
        "hsic": {"designs": 32}, "ig": {"steps": 4}}
FAST_FLAGS = [arg for component, opts in FAST.items() for name, value in opts.items()
              for arg in ("-O", f"{component}.{name}={value}")]


def test_map_cache_computes_a_prior_once(hotbox, gray_image, monkeypatch):
    """With a run context's `MapCache` (as `mmattr evaluate` runs each item), `saliency` then
    `smdl+prior:saliency` on the same image compute the saliency map once; the explanations
    equal those made apart. No module state: a call without the context caches nothing."""
    from mmattr.explainers import EXPLAINERS
    from mmattr.runs.context import MapCache, RunContext

    cls = EXPLAINERS.get("saliency")
    calls = []
    original = cls.attribute

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "attribute", counting)
    apart = [mmattr.explain(gray_image, text="x", model=hotbox, method="saliency"),
             mmattr.explain(gray_image, text="x", model=hotbox, division="prior:saliency",
                            regions=9)]
    assert len(calls) == 2
    ctx = RunContext.per_item(MapCache())
    together = [mmattr.explain(gray_image, text="x", model=hotbox, method="saliency",
                               context=ctx),
                mmattr.explain(gray_image, text="x", model=hotbox, division="prior:saliency",
                               regions=9, context=ctx)]
    # Another target is another map.
    mmattr.explain(gray_image, text="y", model=hotbox, method="saliency", context=ctx)
    assert len(calls) == 4 and len(ctx.maps) == 2
    np.testing.assert_array_equal(apart[0].attribution, together[0].attribution)
    assert apart[1].order == together[1].order
    np.testing.assert_array_equal(apart[1].regions, together[1].regions)
    # Without the context nothing is cached.
    mmattr.explain(gray_image, text="x", model=hotbox, method="saliency")
    assert len(calls) == 5
