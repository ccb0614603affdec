"""Per-component typed options: declared once, validated once, reachable from YAML, the CLI
(-O COMPONENT.NAME=VALUE) and Python, with one-line errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import mmattr
from mmattr.cli.main import app
from mmattr.config import ExplainConfig, from_dict, load_config
from mmattr.errors import InputError
from mmattr.options import (describe, option, options_markdown, parse_assignments,
                            parse_options)

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


# ---------------------------------------------------------------- the mechanism, on its own

@dataclass(frozen=True)
class _Demo:
    count: int = option(3, "how many", min=1)
    ratio: float = option(0.5, "a fraction", above=0, below=1)
    mode: str = option("a", "which one", choices=("a", "b"))
    path: str | None = option(None, "a file, or none")
    flag: bool = option(False, "on or off")


def test_parse_options_converts_cli_strings_to_the_declared_types():
    o = parse_options(_Demo, {"count": "7", "ratio": "0.25", "mode": "b", "path": "none",
                              "flag": "yes"}, component="demo")
    assert o == _Demo(count=7, ratio=0.25, mode="b", path=None, flag=True)
    assert parse_options(_Demo, None, component="demo") == _Demo()
    assert parse_options(_Demo, {"count": 4.0, "path": Path("x.pth")}, component="demo").path == "x.pth"


@pytest.mark.parametrize("data, message", [
    ({"cuont": 2}, "the demo method has no option 'cuont' (did you mean count?); it takes count, "
                   "ratio, mode, path, flag"),
    ({"count": "many"}, "the demo method's count must be an integer, got 'many'"),
    ({"count": True}, "the demo method's count must be an integer, got True"),
    ({"count": 2.5}, "the demo method's count must be an integer, got 2.5"),
    ({"count": 0}, "the demo method's count must be at least 1, got 0"),
    ({"ratio": 1}, "the demo method's ratio must be in (0, 1), got 1.0"),
    ({"ratio": "nan"}, "the demo method's ratio must be a number, got 'nan'"),
    ({"mode": "c"}, "the demo method's mode must be one of a, b, got 'c'"),
    ({"mode": None}, "the demo method's mode must be a string, got none"),
    ({"path": 3}, "the demo method's path must be a string or none, got 3"),
    ({"flag": "maybe"}, "the demo method's flag must be true or false, got 'maybe'"),
])
def test_parse_options_errors_are_one_line(data, message):
    with pytest.raises(InputError) as err:
        parse_options(_Demo, data, component="demo", kind="method")
    assert str(err.value) == message


def test_describe_and_markdown():
    rows = {i.name: i for i in describe(_Demo)}
    assert rows["count"].type == "int" and rows["count"].default == 3
    assert rows["count"].constraint == ">= 1" and rows["ratio"].constraint == "in (0, 1)"
    assert rows["path"].type == "str | None" and rows["mode"].constraint == "one of a, b"
    table = options_markdown([("method", "demo", _Demo)])
    assert "| `demo.path` | method | `str \\| None` | `none` |  | a file, or none |" in table


def test_parse_assignments():
    assert parse_assignments(["rise.masks=2000", "lazy.batch = 8", "sam.checkpoint=a=b.pth"]) == {
        "rise": {"masks": "2000"}, "lazy": {"batch": "8"}, "sam": {"checkpoint": "a=b.pth"}}
    for bad in ("rise", "rise.masks", "masks=3", ".masks=3", "rise.=3"):
        with pytest.raises(InputError, match="write COMPONENT.NAME=VALUE"):
            parse_assignments([bad])


# ---------------------------------------------------------------- the config

def test_config_options_section_flat_keys_and_merging(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("method: rise\noptions:\n  rise: {masks: 64, p1: 0.25}\n  lazy: {batch: '8'}\n"
                 "search_shortlist: 3\nlayer: features\n")
    cfg = load_config(f)
    assert cfg.options == {"bidirectional": {"shortlist": 3}, "gradcam": {"layer": "features"},
                           "gradcampp": {"layer": "features"}, "lazy": {"batch": 8},
                           "rise": {"masks": 64, "p1": 0.25}, "scorecam": {"layer": "features"}}
    # the command line's -O merges option by option; a flat flag wins over the file
    more = cfg.replace(options={"rise": {"masks": "32"}}, search_shortlist=5)
    assert more.options["rise"] == {"masks": 32, "p1": 0.25}
    assert more.options["bidirectional"] == {"shortlist": 5}
    # defaults are not kept: spelling one out is the same config
    assert ExplainConfig().replace(options={"rise": {"masks": 4000}}) == ExplainConfig()
    # the old constructor keywords still set options
    assert ExplainConfig(search_epsilon=0.2).options == {"stochastic": {"epsilon": 0.2}}


@pytest.mark.parametrize("data, message", [
    ({"options": {"rsie": {"masks": 1}}}, "unknown component 'rsie' in options (did you mean rise?)"),
    ({"options": {"rise": {"mask": 1}}}, "the rise method has no option 'mask' (did you mean masks?)"),
    ({"options": {"rise": {"masks": 0}}}, "the rise method's masks must be at least 1, got 0"),
    ({"options": {"lazy": {"batch": "x"}}}, "the lazy search's batch must be an integer, got 'x'"),
    ({"options": {"sam": {"model": "vit_x"}}}, "the sam division's model must be one of vit_b"),
    ({"options": {"rise": 3}}, "options of 'rise' must be a mapping"),
    ({"options": [1]}, "options must be a mapping"),
    ({"prior_grid": 0}, "setting prior_grid (the prior division's grid) must be at least 1, got 0"),
    ({"rise": {"masks": 2}}, "unknown config setting(s): rise"),
])
def test_bad_options_in_config(data, message):
    with pytest.raises(InputError) as err:
        from_dict(data)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_every_component_declares_valid_options():
    """The contract over the registries: every divider, search, method and modality's Options is
    a frozen dataclass of scalars whose defaults pass its own checks, each with a line of help."""
    from mmattr.registry import declared_options

    rows = declared_options()
    kinds = {kind for kind, _, _ in rows}
    assert kinds == {"division", "search", "method", "modality"}
    for kind, name, cls in rows:
        assert parse_options(cls, {}, component=name, kind=kind) == cls()
        for info in describe(cls):
            assert info.help, f"{name}.{info.name} has no help"
    names = {name for _, name, _ in rows}
    assert {"rise", "lime", "kernelshap", "ig", "hsic", "scorecam", "sam", "prior", "slico",
            "lazy", "stochastic", "bidirectional", "image", "text", "audio"} <= names


def test_docs_options_table_is_current():
    """docs/OPTIONS.md is `mmattr options --markdown`: regenerate it when an option changes."""
    from mmattr.options import options_markdown as md
    from mmattr.registry import declared_options

    text = (REPO / "docs" / "OPTIONS.md").read_text(encoding="utf-8")
    assert md(declared_options()) in text, "run: mmattr options --markdown (see docs/OPTIONS.md)"


# ---------------------------------------------------------------- a new method, one option

@pytest.fixture
def toy_method():
    """A throwaway method with one declared option, and a toy model the CLI can load."""
    from mmattr.adapters import ADAPTERS, register_adapter
    from mmattr.adapters._preprocess import Preprocess
    from mmattr.adapters.base import Adapter
    from mmattr.explainers import EXPLAINERS, register_explainer
    from mmattr.explainers._common import MapExplainer, MapResult

    class Brightness(MapExplainer):
        """The image's brightness, times `gain`."""

        name = "brightness"

        @dataclass(frozen=True)
        class Options:
            gain: float = option(1.0, "scales the map", min=0, max=10)   # <- the one line

        def attribute(self, image, target_emb, adapter, progress=None) -> MapResult:
            return MapResult(image.mean(2) / 255.0 * self.opts.gain, forward_passes=0,
                             settings={"gain": self.opts.gain})

    class Mean(Adapter):
        def __init__(self) -> None:
            self.spec = "meantoy"
            self.preprocess = Preprocess(shortest_edge=None, resize_hw=(16, 16), crop_hw=None,
                                         mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
            self.device = torch.device("cpu")

        def encode_images(self, pixels):
            m = pixels.mean(dim=(1, 2, 3))
            return torch.stack([m, torch.full_like(m, 0.1)], 1)

        def encode_texts(self, prompts):
            return torch.tensor([[1.0, 0.0]]).repeat(len(prompts), 1)

    register_explainer("brightness")(Brightness)
    register_adapter("meantoy", syntax="meantoy", help="test-only")(
        lambda arg, device, dtype="auto": Mean())
    yield Brightness
    EXPLAINERS.unregister("brightness")
    ADAPTERS.unregister("meantoy")


def _image(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)
    return path


def test_a_new_option_from_python_yaml_and_cli(toy_method, tmp_path):
    image = _image(tmp_path)
    # Python
    e = mmattr.explain(image, text="x", model="meantoy", method="brightness",
                       options={"brightness": {"gain": 3}})
    assert e.settings["options"]["brightness"] == {"gain": 3.0}
    plain = mmattr.explain(image, text="x", model="meantoy", method="brightness")
    np.testing.assert_allclose(e.attribution, 3 * plain.attribution, rtol=1e-6)
    assert plain.settings["options"]["brightness"] == {"gain": 1.0}  # resolved: the default
    # YAML
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: brightness\nmodel: meantoy\noptions:\n  brightness: {gain: 2.5}\n")
    e = mmattr.explain(image, text="x", config=cfg)
    assert e.settings["options"]["brightness"] == {"gain": 2.5}
    # CLI, on top of the YAML file
    out = tmp_path / "out"
    r = runner.invoke(app, ["explain", str(image), "--text", "x", "--config", str(cfg),
                            "-O", "brightness.gain=4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "explanation.json").read_text())
    assert data["settings"]["options"]["brightness"] == {"gain": 4.0}
    assert data["settings"]["method_settings"] == {"gain": 4.0}
    # listed by `mmattr options`
    r = runner.invoke(app, ["options", "brightness"])
    assert r.exit_code == 0 and "brightness.gain  float = 1.0 [in [0, 10]]  scales the map" in r.output


def test_a_new_option_out_of_range_is_one_line_everywhere(toy_method, tmp_path):
    image = _image(tmp_path)
    message = "the brightness method's gain must be in [0, 10], got 11.0"
    with pytest.raises(InputError, match=r"must be in \[0, 10\]"):
        mmattr.explain(image, text="x", model="meantoy", method="brightness",
                       options={"brightness": {"gain": 11}})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("options:\n  brightness: {gain: 11}\n")
    with pytest.raises(InputError, match=r"must be in \[0, 10\]"):
        load_config(cfg)
    r = runner.invoke(app, ["explain", str(image), "--text", "x", "--model", "meantoy",
                            "--method", "brightness", "-O", "brightness.gain=11",
                            "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and r.output.strip() == f"error: {message}"
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------- the CLI's -O errors

@pytest.mark.parametrize("flag, message", [
    ("rise", "error: -O 'rise': write COMPONENT.NAME=VALUE, e.g. rise.masks=2000"),
    ("rsie.masks=3", "error: unknown component 'rsie' in options (did you mean rise?)"),
    ("rise.mask=3", "error: the rise method has no option 'mask' (did you mean masks?)"),
    ("rise.masks=lots", "error: the rise method's masks must be an integer, got 'lots'"),
    ("stochastic.epsilon=2", "error: the stochastic search's epsilon must be in (0, 1), got 2.0"),
])
def test_cli_bad_option_is_exit_2_and_one_line(tmp_path, flag, message):
    image = _image(tmp_path)
    for command in (["explain", str(image), "--text", "x"],
                    ["evaluate", str(tmp_path), "--out", str(tmp_path / "ev")]):
        r = runner.invoke(app, [*command, "-O", flag])
        assert r.exit_code == 2, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), r.output


def test_cli_options_listing():
    r = runner.invoke(app, ["options"])
    assert r.exit_code == 0
    for line in ("rise.masks  int = 4000 [>= 1]", "lazy.batch  int = 2 [>= 1]",
                 "exact (search): no options", "sam.model"):
        assert line in r.output
    r = runner.invoke(app, ["options", "nope"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from mmattr.cli.main import app\n"
            "try: app(['--help'])\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert r.returncode == 0, r.stderr
