"""Quantus's randomisation checks run through `mmattr.integrations.quantus`: the model
parameter randomisation test (MPRT, Adebayo et al.) and the random-logit test.

A method whose map depends on the model must pass them (its map moves away from the original
as layers are randomised; the map for another class differs), and a map that ignores the
model must fail them (its similarity stays 1). The classifier is copied and randomised by
Quantus itself: the wrapper registers the adapter's modules, `explain_func` explains the copy.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import mmattr

quantus = pytest.importorskip("quantus")
from mmattr.integrations.quantus import ZeroShotClassifier, explain_func  # noqa: E402

CLASSES = ["red", "green", "blue"]


class TinyCNN(nn.Module):
    """Two convolutions and a linear head; names its classes as a module may."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(16 * 16, len(CLASSES))
        self.class_names = list(CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = TinyCNN()
    adapter = mmattr.from_module(net, size=32, mean=(0, 0, 0), std=(1, 1, 1), device="cpu")
    model = ZeroShotClassifier(adapter, CLASSES)
    x = np.random.default_rng(0).random((4, 3, 32, 32)).astype(np.float32)
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    return model, x, y


def ignores_the_model(model, inputs, targets, **kwargs):
    """A map computed from the input alone (Adebayo et al.'s edge detector stand-in)."""
    return np.asarray(inputs).mean(1, keepdims=True).astype(np.float32)


def fixed_map(model, inputs, targets, **kwargs):
    """The same map for every input, class and model (a constant up to a centre bias:
    Quantus refuses a map that is constant everywhere)."""
    h, w = np.asarray(inputs).shape[2:]
    yy, xx = np.mgrid[:h, :w]
    blob = np.exp(-((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (h * w / 8)).astype(np.float32)
    return np.repeat(blob[None, None], len(inputs), axis=0)


def test_the_wrapper_owns_the_models_modules_and_copies_with_them(setup):
    model, x, _ = setup
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in model.adapter.module.parameters()) > 0
    clone = copy.deepcopy(model)
    assert clone.adapter.module is clone.towers["module"] is not model.adapter.module
    batch = torch.from_numpy(x)
    torch.testing.assert_close(clone(batch), model(batch))
    before = model(batch).clone()
    clone.adapter.module.fc.reset_parameters()  # the copy's head only
    assert not torch.allclose(clone(batch), before)  # class rows recomputed from the new head
    torch.testing.assert_close(model(batch), before)  # the original is untouched


MODEL_DEPENDENT = [("saliency", {"method": "saliency"}),
                   ("smdl", {"method": "smdl", "division": "grid", "regions": 16})]


@pytest.mark.parametrize("name,kwargs", MODEL_DEPENDENT)
def test_mprt_passes_for_maps_that_depend_on_the_model(setup, name, kwargs):
    model, x, y = setup
    scores = quantus.MPRT(disable_warnings=True)(
        model=model, x_batch=x, y_batch=y, a_batch=None, device="cpu",
        explain_func=explain_func, explain_func_kwargs=kwargs)
    layers = [k for k in scores if k != "original"]
    # top down: the head first, then each convolution, cascading
    assert layers == ["towers.module.fc", "towers.module.conv2", "towers.module.conv1"]
    assert np.allclose(scores["original"], 1.0)
    means = [float(np.mean(scores[k])) for k in layers]
    assert means[0] < 0.5 and max(means) < 0.5, means  # far from the original once randomised


@pytest.mark.parametrize("fn", [ignores_the_model, fixed_map])
def test_mprt_and_random_logit_fail_for_maps_that_ignore_the_model(setup, fn):
    model, x, y = setup
    scores = quantus.MPRT(disable_warnings=True)(
        model=model, x_batch=x, y_batch=y, a_batch=None, device="cpu", explain_func=fn)
    assert all(np.allclose(v, 1.0) for v in scores.values())  # nothing moves: a failure
    other = quantus.RandomLogit(num_classes=len(CLASSES), disable_warnings=True)(
        model=model, x_batch=x, y_batch=y, a_batch=None, device="cpu", explain_func=fn)
    assert np.allclose(other, 1.0)  # the same map for another class


@pytest.mark.parametrize("name,kwargs", MODEL_DEPENDENT)
def test_random_logit_passes_for_class_sensitive_maps(setup, name, kwargs):
    model, x, y = setup
    other = quantus.RandomLogit(num_classes=len(CLASSES), disable_warnings=True)(
        model=model, x_batch=x, y_batch=y, a_batch=None, device="cpu",
        explain_func=explain_func, explain_func_kwargs=kwargs)
    assert len(other) == len(x) and float(np.mean(other)) < 0.5, other
