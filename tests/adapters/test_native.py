"""The fast-start path (`mmattr.adapters._native`): a folder of a family mmattr builds in plain
torch (ALIGN) loads without transformers' model code and gives the same embeddings as
transformers' path; any folder it does not reproduce falls back to that path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmattr.adapters import _native
from mmattr.adapters.hf import HFAdapter

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "mmattr" / "demo_model" / "weights"
PROMPTS = ["a red circle", "a photo of a big blue SQUARE!!", "x", "  odd   spacing\tand ÜNICODE ",
           "a " * 40, "", "<|endoftext|> hi", "stripes"]


def _both(folder: Path, monkeypatch) -> tuple[HFAdapter, HFAdapter]:
    native = HFAdapter(str(folder), device=torch.device("cpu"))
    monkeypatch.setenv(_native.ENV, "0")
    generic = HFAdapter(str(folder), device=torch.device("cpu"))
    monkeypatch.delenv(_native.ENV)
    return native, generic


def _assert_same(native: HFAdapter, generic: HFAdapter, hw: tuple[int, int]) -> None:
    assert native.native and not generic.native
    torch.manual_seed(0)
    for shape in ((5, 3, *hw), (2, 3, hw[0] + 17, hw[1] - 9)):
        x = torch.randn(shape)
        assert torch.equal(native.encode_images(x), generic.encode_images(x))
    with pytest.warns(Warning):  # the 82-token prompt is cut to the model's limit on both
        a, b = native.encode_texts(PROMPTS), generic.encode_texts(PROMPTS)
    assert torch.equal(a, b)
    assert torch.equal(native.encode_texts(["a red circle"]), generic.encode_texts(["a red circle"]))
    for kw in (dict(padding=True, truncation=True, max_length=native._max_len),
               dict(padding="max_length", truncation=True, max_length=native._max_len),
               dict(truncation=False, verbose=False)):
        assert native.tokenizer(PROMPTS, **kw) == dict(generic.tokenizer(PROMPTS, **kw))
    for key in ("_vocab_size", "_max_len", "_pad", "_image_kwargs", "logit_scale", "logit_bias",
                "templates", "text_templates", "model_type", "default_vocabulary"):
        assert getattr(native, key) == getattr(generic, key), key
    assert native.describe() == generic.describe()
    assert native.preprocess == generic.preprocess
    # CAM and RI hook layers by path: the same module tree, class names included
    tree = lambda m: [(n, type(x).__name__) for n, x in m.named_modules()]  # noqa: E731
    assert tree(native.model) == tree(generic.model)
    assert native.token_grid() == generic.token_grid()


def test_demo_native_equals_transformers(monkeypatch):
    native, generic = _both(DEMO, monkeypatch)
    _assert_same(native, generic, native.preprocess.output_hw)


@pytest.fixture(scope="module")
def tiny_align(tmp_path_factory) -> Path:
    """A random-weight ALIGN saved by transformers, odd sizes (depthwise padding, 5×5 kernels,
    max pooling, three text layers) and the demo's tokenizer."""
    from transformers import AlignConfig, AlignModel

    folder = tmp_path_factory.mktemp("tiny_align")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(DEMO / name, folder / name)
    pre = json.loads((DEMO / "preprocessor_config.json").read_text())
    pre["size"] = {"height": 72, "width": 64}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
    torch.manual_seed(3)
    cfg = AlignConfig(
        text_config=dict(vocab_size=626, hidden_size=48, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=3, max_position_embeddings=24, pad_token_id=625),
        vision_config=dict(width_coefficient=0.25, depth_coefficient=1.4, image_size=64,
                           in_channels=[32, 16, 24], out_channels=[16, 24, 40],
                           kernel_sizes=[3, 5, 3], strides=[1, 2, 2], num_block_repeats=[1, 2, 1],
                           expand_ratios=[1, 6, 4], depthwise_padding=[2], hidden_dim=160,
                           pooling_type="max", num_hidden_layers=4),
        projection_dim=16)  # = the image tower's last width
    model = AlignModel(cfg).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    model.save_pretrained(str(folder))
    return folder


def test_tiny_align_native_equals_transformers(tiny_align, monkeypatch):
    native, generic = _both(tiny_align, monkeypatch)
    assert native.preprocess.output_hw == (72, 64)
    _assert_same(native, generic, (72, 64))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("case", ["env", "unknown_key", "missing_key", "activation", "tokenizer",
                                  "no_tokenizer_json", "renamed_weight", "fp16"])
def test_fallback_to_transformers(tiny_align, tmp_path, monkeypatch, case):
    """Every unmet precondition takes transformers' path, which still loads the folder."""
    folder = _copy(tiny_align, tmp_path / "m")
    if case == "env":
        monkeypatch.setenv(_native.ENV, "0")
    elif case == "unknown_key":
        _edit_json(folder / "config.json", lambda c: c["text_config"].update(use_new_thing=True))
    elif case == "missing_key":
        _edit_json(folder / "config.json", lambda c: c["vision_config"].pop("depthwise_padding"))
    elif case == "activation":
        _edit_json(folder / "config.json", lambda c: c["text_config"].update(hidden_act="relu"))
    elif case == "tokenizer":
        _edit_json(folder / "tokenizer_config.json", lambda c: c.update(padding_side="left"))
    elif case == "no_tokenizer_json":
        (folder / "tokenizer.json").unlink()
    elif case in ("renamed_weight", "fp16"):
        from safetensors.torch import load_file, save_file

        state = load_file(str(folder / "model.safetensors"))
        if case == "renamed_weight":  # a key the model does not have: never a partial load
            state["text_projection.extra"] = state.pop("text_projection.bias")
        else:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    got = _native.load(str(folder))
    assert not got.loaded and got.reason
    if case == "no_tokenizer_json":
        return  # transformers would need the vocab files; only the decision is checked here
    adapter = HFAdapter(str(folder), device=torch.device("cpu"))
    assert not adapter.native
    assert adapter.encode_images(torch.zeros(1, 3, 72, 64)).shape[-1] == 16


def test_native_conditions_hold_for_the_demo_and_tiny_align(tiny_align):
    for folder in (DEMO, tiny_align):
        got = _native.load(str(folder))
        assert got.loaded, got.reason
    hub = _native.load("kakaobrain/align-base")  # a hub id: transformers' path
    assert not hub.loaded and hub.reason == "not a local folder"


def test_demo_loads_without_transformers():
    """Fast start: `load_adapter("demo")` imports neither transformers nor torchvision."""
    code = ("import sys; from mmattr.adapters import load_adapter; "
            "a = load_adapter('demo', device='cpu'); assert a.native; "
            "bad = [m for m in ('transformers', 'torchvision', 'scipy', 'torch._dynamo') "
            "if m in sys.modules]; assert not bad, bad")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(_native.ENV, None)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=300)
