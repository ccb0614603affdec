"""One copy of each mechanism: no import circles, one pixel curve (explanation.json's AUC is the
insertion metric's), one ranking, one vocabulary, one zero-shot prediction."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mmattr
from mmattr.metrics import EvalContext, TargetScore, make_metric
from mmattr.ranking import pixel_rank, top_fraction
from mmattr.targets import Target

ROOT = Path(__file__).resolve().parents[2]


def _graph_tool():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_import_circles_and_the_layers_hold():
    tool = _graph_tool()
    modules = tool.module_graph()
    packages = tool.package_graph(modules)
    assert tool.cycles(modules) == [] and tool.cycles(packages) == []
    below = {  # package → packages it must never import (directly or not)
        "mmattr.metrics": {"mmattr.explainers", "mmattr.division", "mmattr.api", "mmattr.cli"},
        "mmattr.division": {"mmattr.explainers", "mmattr.metrics", "mmattr.api"},
        "mmattr.vocabulary": {"mmattr.datasets", "mmattr.adapters"},
        "mmattr.adapters": {"mmattr.explainers", "mmattr.metrics", "mmattr.division",
                            "mmattr.demo_model"},
    }

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in packages.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    for pkg, banned in below.items():
        assert not (reach(pkg) & banned), (pkg, reach(pkg) & banned)


def test_the_graph_script_prints_and_passes():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "import_graph.py")],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "0 circles" in out.stdout and "layer 0:" in out.stdout


def test_the_planted_circle_is_found():
    tool = _graph_tool()
    assert tool.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_pixel_rank_known_answer_numpy_and_torch_agree():
    s = np.array([[0.5, 0.9, 0.5], [0.1, 0.9, np.nan]])
    expected = np.array([[2, 0, 3], [4, 1, 5]])  # ties in raster order, NaN last
    np.testing.assert_array_equal(pixel_rank(s), expected)
    np.testing.assert_array_equal(pixel_rank(torch.tensor(s)).numpy(), expected)
    np.testing.assert_array_equal(top_fraction(s, 0.5), expected < 3)


@pytest.mark.parametrize("method", ["saliency", "rise"])
def test_explanation_auc_equals_the_insertion_metric(hotbox, gray_image, method):
    e = mmattr.explain(gray_image, text="x", model=hotbox, method=method, seed=0)
    scorer = TargetScore(hotbox, Target.from_text("x"), score=e.curve_score)
    ctx = EvalContext(image=gray_image, score_fn=scorer)
    ins = make_metric("insertion").evaluate(e, ctx)
    dele = make_metric("deletion").evaluate(e, ctx)
    assert ins["insertion"] == pytest.approx(e.insertion_auc, abs=1e-6)
    assert dele["deletion"] == pytest.approx(e.deletion_auc, abs=1e-6)
    assert ins["insertion_curve"] == pytest.approx(e.insertion_curve, abs=1e-6)
    assert e.settings["curve"]["steps"] == len(e.curve_x) - 1 == make_metric("insertion").steps


class _ThreeClassToy(mmattr.Adapter):
    """Embedding = mean colour; the class 'red' / 'green' / 'blue' embeds as its axis."""

    def __init__(self) -> None:
        from mmattr.preprocess import Preprocess

        self.spec, self.device = "toy:rgb", torch.device("cpu")
        self.templates = ("{}",)
        self.preprocess = Preprocess(None, (8, 8), None, (0, 0, 0), (1, 1, 1))

    def encode_images(self, pixels):
        return pixels.mean(dim=(2, 3))

    def encode_texts(self, prompts):
        axes = {"red": 0, "green": 1, "blue": 2}
        return torch.eye(3)[[axes[p] for p in prompts]]


def test_zero_shot_predict_known_answer_and_batch_independent():
    from mmattr.zeroshot import predict

    toy = _ThreeClassToy()
    classes = toy.class_embeddings(["red", "green", "blue"])
    images = torch.zeros(5, 3, 12, 12)
    for i, c in enumerate([0, 2, 1, 2, 0]):
        images[i, c] = 1.0
    out = predict(toy, images, classes, batch_size=2)
    assert out.top1.tolist() == [0, 2, 1, 2, 0]
    assert out.labels(["red", "green", "blue"]) == ["red", "blue", "green", "blue", "red"]
    # logit_scale 100 · cosine: the right class has all the probability
    assert torch.allclose(out.probabilities.max(-1).values, torch.ones(5), atol=1e-6)
    one = predict(toy, images, classes, batch_size=5)
    torch.testing.assert_close(one.logits, out.logits)
    # from embeddings, no adapter: the same answer; uint8 HWC images too
    emb = images.mean(dim=(2, 3))
    assert predict(None, emb, classes).top1.tolist() == out.top1.tolist()
    hwc = (images.permute(0, 2, 3, 1) * 255).to(torch.uint8)
    assert predict(toy, hwc, classes).top1.tolist() == out.top1.tolist()


def test_target_score_predict_is_zero_shot_predict(tmp_path):
    toy = _ThreeClassToy()
    names_file = tmp_path / "rgb.txt"
    names_file.write_text("red\ngreen\nblue\n")
    scorer = TargetScore(toy, Target.from_text("green"), vocabulary=str(names_file))
    img = torch.zeros(2, 3, 6, 6)
    img[0, 1] = 1
    img[1, 2] = 1
    assert scorer.predict(img) == ["green", "blue"]
    assert scorer.target_index == 1 and scorer.vocabulary_source == str(names_file)


def test_vocabulary_is_built_once_and_appends_a_missing_target(tmp_path):
    from mmattr.datasets.shapes import captions
    from mmattr.vocabulary import build_vocabulary, builtin_vocabularies

    assert builtin_vocabularies()["shapes"] == captions()  # the asset file is the world's list
    toy = _ThreeClassToy()
    names_file = tmp_path / "rg.txt"
    names_file.write_text("red\ngreen\n")
    v = build_vocabulary(str(names_file), Target.from_text("blue"), toy)
    assert v.names == ["red", "green", "blue"] and v.target_index == 2
    assert v.source.endswith("+ target")
    torch.testing.assert_close(v.embeddings, torch.eye(3))
    assert build_vocabulary(None, Target.from_text("blue"), toy) is None


def test_baseline_inputs_are_composed_on_the_adapters_device():
    from mmattr.explainers._common import image_tensor

    img = np.full((4, 5, 3), 255, np.uint8)
    t = image_tensor(img, torch.device("meta"))  # meta: no memory, but the device is kept
    assert t.device.type == "meta" and t.shape == (1, 3, 4, 5)
    assert torch.equal(image_tensor(img, torch.device("cpu")), torch.ones(1, 3, 4, 5))


def test_search_options_reach_the_search_through_the_settings():
    """benchmarks/bench_search.py passes ``lazy:batch=8`` this way: the explainer builds its
    search from the settings, so nothing is monkeypatched and no option is dropped."""
    from mmattr.config import ExplainConfig
    from mmattr.search import config_changes, search_from_config

    cfg = ExplainConfig().replace(**config_changes("lazy", {"batch": 8}))
    assert search_from_config(cfg).settings() == {"strategy": "lazy", "batch": 8, "guard": True,
                                                  "flat": 0.01, "near": 0.01}
    cfg = ExplainConfig().replace(**config_changes("stochastic", {"epsilon": 0.001}))
    assert search_from_config(cfg).options["epsilon"] == 0.001
    with pytest.raises(mmattr.InputError, match="no option"):
        config_changes("exact", {"batch": 2})
    bench = (ROOT / "benchmarks" / "bench_search.py").read_text()
    assert "config_changes(name, options)" in bench and "make_search =" not in bench


class _EchoText(_ThreeClassToy):
    """Text embedding: the prompt's length in dimension 0 (templates change it, visibly)."""

    def encode_texts(self, prompts):
        return torch.tensor([[float(len(p)), 1.0, 0.0] for p in prompts])


def test_templates_none_default_imagenet80_and_file(tmp_path):
    from mmattr.api import with_templates
    from mmattr.config import ExplainConfig
    from mmattr.vocabulary import DEFAULT_TEMPLATES, load_templates

    assert load_templates("none") == ("{}",) and load_templates("default") == DEFAULT_TEMPLATES
    eighty = load_templates("imagenet80")
    assert len(eighty) == 80 == len(set(eighty)) and all(t.count("{}") == 1 for t in eighty)
    f = tmp_path / "t.txt"
    f.write_text("# mine\nx {} y\n")
    assert load_templates(str(f)) == ("x {} y",)
    f.write_text("no slot\n")
    with pytest.raises(mmattr.InputError, match="exactly one"):
        ExplainConfig().replace(templates=str(f))
    with pytest.raises(mmattr.InputError, match="neither a file"):
        ExplainConfig().replace(templates="imagenet81")

    toy = _EchoText()
    toy.templates = DEFAULT_TEMPLATES
    # a text target is the raw prompt by default: len("ab") = 2 → (2, 1, 0) normalised
    raw = toy.encode_target(Target.from_text("ab"))
    torch.testing.assert_close(raw, torch.nn.functional.normalize(torch.tensor([2.0, 1.0, 0.0]), dim=0))
    view = with_templates(toy, "default")
    assert view is not toy and toy.text_templates == ("{}",)  # the loaded adapter is untouched
    assert not torch.allclose(view.encode_target(Target.from_text("ab")), raw)
    assert with_templates(toy, None) is toy


def test_the_demo_model_keeps_its_training_templates():
    from mmattr.adapters.hf import trained_templates
    from mmattr.demo_model import DEMO_MODEL_DIR

    recorded = json_templates = __import__("json").loads(
        (DEMO_MODEL_DIR / "training.json").read_text())["templates"]
    assert trained_templates(str(DEMO_MODEL_DIR)) == tuple(recorded) == tuple(json_templates)


def test_help_and_version_load_no_torch():
    """Startup is fast by construction: the CLI's help path imports neither torch nor the
    command modules that need it (figures: benchmarks/bench_startup.py)."""
    code = ("import sys, io, contextlib\n"
            "from mmattr.cli.main import app\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    try:\n"
            "        app(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "assert 'evaluate' in out.getvalue(), out.getvalue()\n"
            "heavy = [m for m in ('torch', 'transformers', 'mmattr.cli.evaluate') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr


def test_lazy_evaluate_command_still_runs(tmp_path):
    from typer.testing import CliRunner

    from mmattr.cli.main import app

    result = CliRunner().invoke(app, ["evaluate", "--help"])
    assert result.exit_code == 0 and "--metrics" in result.output
