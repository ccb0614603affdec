"""What a Captum, pytorch-grad-cam or Quantus user reaches for: tensors in and out, an
``nn.Module`` as the model, a fill (baseline) and a user's region map, Python-worded errors,
``progress=True``, ``Explanation.load``, inline display. Known answers on toy models."""

from __future__ import annotations

import gc
import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import mmattr
from mmattr.config import ExplainConfig
from mmattr.errors import InputError, MmattrWarning, ModelError, caller
from mmattr.regions import RegionStack

GRID = {"division": "grid", "regions": 16, "search": "exact"}
BOX_CELL = 6  # the hotbox fixture's box is cell (row 1, col 2) of a 4×4 grid


# -- tensors in and out ---------------------------------------------------------------------

def test_a_tensor_in_gives_tensors_out_with_the_same_values(hotbox, gray_image):
    ref = mmattr.explain(gray_image, text="x", model=hotbox, **GRID)
    chw = torch.from_numpy(gray_image).permute(2, 0, 1).float() / 255.0
    for image in (chw, chw[None], chw.numpy(), (chw * 255).round().to(torch.uint8)):
        e = mmattr.explain(image, text="x", model=hotbox, **GRID)
        assert e.order == ref.order
        np.testing.assert_allclose(np.asarray(e.attribution), ref.attribution)
    e = mmattr.explain(chw, text="x", model=hotbox, **GRID)
    assert torch.is_tensor(e.attribution) and e.attribution.device == hotbox.device
    assert e.attribution.dtype == torch.float32 and e.regions.dtype == torch.int64
    assert torch.is_tensor(e.region_scores) and e.region_scores.shape == (16,)
    # torch out on request, numpy out on request
    assert torch.is_tensor(mmattr.explain(gray_image, text="x", model=hotbox,
                                          return_tensors="pt", **GRID).attribution)
    assert isinstance(mmattr.explain(chw, text="x", model=hotbox, return_tensors="np",
                                     **GRID).attribution, np.ndarray)
    with pytest.raises(InputError, match="explain_batch"):
        mmattr.explain(torch.stack([chw, chw]), text="x", model=hotbox)
    with pytest.raises(InputError, match="before normalisation"):
        mmattr.explain((chw - 0.6) / 0.2, text="x", model=hotbox)  # a normalised tensor


def test_region_scores_are_the_map_per_region(hotbox, gray_image):
    e = mmattr.explain(gray_image, text="x", model=hotbox, **GRID)
    scores = e.region_scores
    assert scores.shape == (e.n_regions,) and scores.dtype == np.float32
    np.testing.assert_array_equal(scores[e.regions], e.attribution)
    assert int(np.argmax(scores)) == e.order[0] == BOX_CELL


def test_explain_batch_keeps_torch_on_the_models_device(hotbox, gray_image):
    x = torch.from_numpy(np.stack([gray_image, gray_image[::-1]])).permute(0, 3, 1, 2) / 255.0
    maps = mmattr.explain_batch(x, "x", model=hotbox, **GRID)
    assert torch.is_tensor(maps) and maps.shape == (2, 32, 32) and maps.device == hotbox.device
    np.testing.assert_array_equal(
        maps.numpy(), mmattr.explain_batch(x.numpy(), "x", model=hotbox, **GRID))
    calls = []
    mmattr.explain_batch(x, "x", model=hotbox, progress=lambda d, t: calls.append((d, t)), **GRID)
    assert calls == [(1, 2), (2, 2)]


# -- a module as the model ------------------------------------------------------------------

class TinyClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)
        self.class_names = ["cat", "dog", "fox"]

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class NoHead(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


def test_a_module_is_taken_as_a_classifier_with_its_class_names(gray_image):
    net = TinyClassifier()
    e = mmattr.explain(gray_image, class_name="dog", model=net, device="cpu", **GRID)
    assert e.model["spec"] == "torch:TinyClassifier" and e.settings["model"] == e.model["spec"]
    assert e.target["class"] == "dog"
    for _ in range(3):
        mmattr.explain(gray_image, class_name="fox", model=net, device="cpu", **GRID)
    gc.collect()
    assert len(net.fc._forward_pre_hooks) == 0  # no wrapper left hooked on the user's module
    with pytest.raises(ModelError, match="from_module") as info:
        mmattr.explain(gray_image, text="x", model=NoHead(), device="cpu")
    assert "\n" not in str(info.value) and "NoHead(" not in str(info.value)
    with pytest.raises(InputError, match="not a list"):
        mmattr.explain(gray_image, text="x", model=[net])


def test_a_torch_factory_names_its_classes(tmp_path):
    (tmp_path / "net.py").write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(3, 2)\n"
        "        self.class_names = ['cat', 'dog']\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.mean(dim=(2, 3)))\n"
        "def build():\n"
        "    return Net()\n")
    adapter = mmattr.load_adapter(f"torch:{tmp_path / 'net.py'}:build", device="cpu", cache=None)
    assert adapter.class_names == ["cat", "dog"]


# -- fill (baseline) ------------------------------------------------------------------------

@pytest.mark.parametrize("fill", ["mean", "blur", "0.25", "image"])
def test_the_region_stack_composes_exactly_over_any_fill(toy_cnn, toy_scene, fill):
    from mmattr.division import grid_labels
    from mmattr.fill import fill_image

    labels = grid_labels(40, 48, 3, 4)
    img = torch.from_numpy(toy_scene).permute(2, 0, 1).float() / 255.0
    other = np.random.default_rng(3).integers(0, 256, (40, 48, 3)).astype(np.uint8)
    base = (torch.from_numpy(other).permute(2, 0, 1).float() / 255.0 if fill == "image"
            else fill_image(img, fill))
    stack = RegionStack(toy_scene, labels, toy_cnn, fill=base)
    subsets = torch.from_numpy(np.random.default_rng(0).integers(0, 2, (5, 12))).float()
    emb_in, emb_out = stack.embed(subsets)
    pre = toy_cnn.preprocess
    for k, row in enumerate(subsets):
        shown = torch.from_numpy(row.numpy()[labels]).float()
        for composed, got in ((base + shown * (img - base), emb_in[k]),
                              (img + shown * (base - img), emb_out[k])):
            want = toy_cnn.encode_images(pre.normalize(pre.geometry(composed[None])))[0]
            torch.testing.assert_close(got, want / want.norm(), atol=2e-5, rtol=0)


def test_the_fill_decides_what_revealing_means(hotbox, gray_image):
    """Black fill: revealing the box brightens it, so its cell comes first. White fill:
    revealing the gray box darkens it, so its cell comes last."""
    black = mmattr.explain(gray_image, text="x", model=hotbox, **GRID)
    white = mmattr.explain(gray_image, text="x", model=hotbox, fill=1.0, **GRID)
    assert black.order[0] == BOX_CELL and white.order[-1] == BOX_CELL
    assert white.settings["fill"] == "1.0" and black.settings["fill"] == "black"


def test_a_fill_equal_to_the_image_hides_nothing(hotbox, gray_image):
    e = mmattr.explain(gray_image, text="x", model=hotbox, baseline=gray_image, **GRID)
    assert e.settings["fill"].startswith("image:")
    assert np.ptp(e.insertion_curve) < 1e-6 and np.ptp(e.deletion_curve) < 1e-6
    ig = mmattr.explain(gray_image, text="x", model=hotbox, method="ig", fill=gray_image,
                        options={"ig": {"steps": 4}})
    assert np.abs(ig.attribution).max() == 0  # IG from the image itself: nothing to integrate
    assert ig.settings["method_settings"]["baseline"] == ig.settings["fill"]


def test_fill_errors_are_one_line_in_the_callers_words(hotbox, gray_image):
    with pytest.raises(InputError, match="fill= or baseline="):
        mmattr.explain(gray_image, text="x", model=hotbox, fill="mean", baseline="blur")
    with pytest.raises(InputError, match=r"fill='plaid'") as info:
        mmattr.explain(gray_image, text="x", model=hotbox, fill="plaid")
    assert "\n" not in str(info.value)
    with caller("cli"), pytest.raises(InputError, match="--fill plaid"):
        ExplainConfig(fill="plaid").replace(fill="plaid")


# -- a user's region map --------------------------------------------------------------------

def test_a_label_map_is_the_division(hotbox, gray_image):
    labels = np.zeros((32, 32), np.int64)
    labels[8:16, 16:24] = 7  # the box
    labels[20:, :] = 3
    e = mmattr.explain(gray_image, text="x", model=hotbox, division=labels, search="exact")
    assert e.n_regions == 3 and e.settings["division"].startswith("labels:")
    # the same partition, relabelled 0..N-1 in the order of the labels
    np.testing.assert_array_equal(e.regions, np.searchsorted([0, 3, 7], labels))
    assert e.order[0] == 2  # label 7, the box
    half = torch.from_numpy(labels[::2, ::2].copy())  # a tensor at half size: resized
    np.testing.assert_array_equal(
        mmattr.explain(gray_image, text="x", model=hotbox, division=half,
                       search="exact").regions, e.regions)
    with pytest.raises(InputError, match="label map is 16x32"):
        mmattr.explain(gray_image, text="x", model=hotbox, division=labels[:32, :16])
    with pytest.raises(InputError, match="integer labels"):
        mmattr.explain(gray_image, text="x", model=hotbox, division=labels + 0.5)


def test_a_label_map_file_from_the_command_line(tmp_path, hotbox, gray_image):
    labels = np.arange(32)[:, None] // 16 * 2 + np.arange(32)[None, :] // 16
    np.save(tmp_path / "map.npy", labels)
    e = mmattr.explain(gray_image, text="x", model=hotbox, division=f"labels:{tmp_path}/map.npy")
    assert e.n_regions == 4


# -- the caller's words, warnings said once -------------------------------------------------

def test_python_callers_read_keywords_and_the_cli_reads_flags(hotbox, gray_image, tmp_path):
    with pytest.raises(InputError, match=r"regions=100000 is more") as info:
        mmattr.explain(gray_image, text="x", model=hotbox, division="grid", regions=100000)
    assert "--" not in str(info.value)
    with caller("cli"), pytest.raises(InputError, match=r"--regions 100000 is more"):
        mmattr.explain(gray_image, text="x", model=hotbox, division="grid", regions=100000)
    e = mmattr.explain(gray_image, text="x", model=hotbox, **GRID)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"^folder .* already holds files"):
        e.save(tmp_path)
    with pytest.raises(InputError, match="named like a picture"):
        e.save(tmp_path / "single.png")
    assert not (tmp_path / "single.png").exists()
    with pytest.raises(InputError, match="no target: pass text=, class_name="):
        mmattr.explain(gray_image, model=hotbox)


def test_options_for_an_unused_component_and_a_changed_count_are_said_once(hotbox, gray_image):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        for _ in range(3):
            mmattr.explain(gray_image, text="x", model=hotbox, division="grid", regions=10,
                           options={"rise": {"masks": 10}})
    messages = [str(w.message) for w in seen if issubclass(w.category, MmattrWarning)]
    assert len(messages) == 2, messages
    assert any("options for rise are not used" in m for m in messages)
    assert any("makes 9 regions" in m and "regions=10" in m for m in messages)
    assert all(w.filename == __file__ for w in seen)  # the caller's line, not mmattr's


def test_progress_true_is_a_tqdm_bar(hotbox, gray_image, capsys):
    mmattr.explain(gray_image, text="x", model=hotbox, progress=True, **GRID)
    assert "smdl explanation" in capsys.readouterr().err
    with pytest.raises(InputError, match="progress="):
        mmattr.explain(gray_image, text="x", model=hotbox, progress="yes")


# -- results: save, load, source, display ---------------------------------------------------

def test_save_and_load_round_trip_with_the_source(tmp_path):
    path = tmp_path / "scene.png"
    path.write_bytes(mmattr.examples.scene_path().read_bytes())
    e = mmattr.explain(path, text="a red circle", division="grid", regions=9)
    assert e.source == str(path.resolve()) and len(e.image_sha256) == 64
    e.save(tmp_path / "out")
    back = mmattr.Explanation.load(tmp_path / "out")
    assert back.order == e.order and back.insertion_auc == e.insertion_auc
    assert back.source == e.source and back.settings == json.loads(json.dumps(e.settings))
    np.testing.assert_array_equal(back.image, e.image)
    np.testing.assert_array_equal(back.attribution, e.attribution)
    np.testing.assert_array_equal(back.regions, e.regions)
    path.unlink()
    with pytest.warns(MmattrWarning, match="gray"):
        gray = mmattr.Explanation.load(tmp_path / "out")
    assert gray.image.shape == e.image.shape and (gray.image == 128).all()
    with pytest.raises(InputError, match="no explanation.json"):
        mmattr.Explanation.load(tmp_path)


def test_an_explanation_displays_inline(hotbox, gray_image):
    from matplotlib.figure import Figure

    e = mmattr.explain(torch.from_numpy(gray_image).permute(2, 0, 1), text="a box",
                       model=hotbox, **GRID)
    text = repr(e)
    assert len(text) < 300 and "array" not in text and "'a box'" in text and "16 regions" in text
    assert e._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    page = e._repr_html_()
    assert page.count("<img") == 2 and "a box" in page and "insertion AUC" in page
    fig = e.plot()
    assert isinstance(fig, Figure) and len(fig.axes) >= 2
    assert isinstance(e.plot(kind="curves"), Figure)
    holder = Figure()
    ax = holder.subplots()
    assert e.plot(ax=ax) is holder and ax.images
    with pytest.raises(InputError, match="kind="):
        e.plot(kind="bars")


def test_the_packaged_scene_is_the_repositorys(tmp_path):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2] / "examples" / "scene.png"
    np.testing.assert_array_equal(mmattr.examples.scene(), mmattr.load_image(repo))
    assert mmattr.examples.scene().shape == (224, 224, 3)


def test_audit_and_ri_results_have_a_summary_for_notebooks():
    from pathlib import Path

    from mmattr.audit.core import AuditResult
    from mmattr.representative.groups import GroupInterpretation

    bare = AuditResult(Path("a"), {}, [], 1.0)  # fields the summary lacks: rows left out
    assert "no failure slice" in bare._repr_html_() and "AuditResult(" in repr(bare)

    class _Slice:
        names = [("on stripes", 3.2)]
        size, accuracy = 12, 0.25

    full = AuditResult(Path("a"), {"accuracy": {"value": 0.9, "ci_low": 0.8, "ci_high": 0.95},
                                   "calibration": {"ece": 0.05}, "dataset": {"images": 40}},
                       [_Slice()], 1.0)
    page = full._repr_html_()
    assert "90.0%" in page and "on stripes (+3.2)" in page and "25.0%" in page and "0.050" in page
    failed = GroupInterpretation("cats", 3, None, {}, "too few reference images")
    assert "too few reference images" in failed._repr_html_()


def test_the_command_line_reads_flags_and_takes_a_fill_and_a_label_map(tmp_path):
    from typer.testing import CliRunner

    from mmattr.cli.main import app

    scene = str(mmattr.examples.scene_path())
    base = ["explain", scene, "--text", "a red circle", "--device", "cpu"]
    bad = CliRunner().invoke(app, [*base, "--division", "grid", "--regions", "100000",
                                   "--out", str(tmp_path / "a")])
    assert bad.exit_code == 2 and "--regions 100000 is more" in bad.output
    bad = CliRunner().invoke(app, [*base, "--fill", "plaid", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "--fill plaid" in bad.output and "fill=" not in bad.output
    labels = np.zeros((224, 224), np.int64)
    labels[:, 112:] = 1
    np.save(tmp_path / "halves.npy", labels)
    ok = CliRunner().invoke(app, [*base, "--division", f"labels:{tmp_path / 'halves.npy'}",
                                  "--fill", "mean", "--out", str(tmp_path / "c")])
    assert ok.exit_code == 0, ok.output
    data = json.loads((tmp_path / "c" / "explanation.json").read_text())
    assert data["n_regions"] == 2 and data["settings"]["fill"] == "mean"
    assert data["settings"]["division"] == f"labels:{tmp_path / 'halves.npy'}"


def test_a_near_miss_class_is_suggested_once():
    net = TinyClassifier()
    net.class_names = ["red", "Green, lime", "blue"]
    adapter = mmattr.from_module(net, size=16, device="cpu")
    with pytest.raises(ModelError) as info:
        adapter.class_index("rde")
    assert str(info.value).count("'red'") == 1, str(info.value)
    with pytest.raises(ModelError, match="did you mean 'Green, lime'"):
        adapter.class_index("lmie")
