"""Every bad input a new user tried: one line on stderr, exit 2, and the output location exactly
as it was (no folder made, no file replaced, no temporary folder left behind).

Issue 14's list plus the inputs that already worked (truncated, zero-byte, a directory, 1×1,
empty text, unknown spec, bad YAML). Good-but-unusual inputs (16-bit, CMYK) must explain the
same picture as their 8-bit RGB twin.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fuzzlib import assert_one_line, check_read_only_place, snapshot
from mmattr.cli import app
from mmattr.datasets.shapes import render_scene

runner = CliRunner()
FAST = ["--division", "grid", "--regions", "9", "--search", "exact"]


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


@pytest.fixture
def world(tmp_path) -> Path:
    """A folder like a user's: photos, notes, a results folder of their own."""
    (tmp_path / "photos").mkdir()
    scene = render_scene(166, size=64).image
    Image.fromarray(scene).save(tmp_path / "photos" / "scene.png")
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x\n")
    (tmp_path / "mine" / "sub").mkdir()
    (tmp_path / "mine" / "sub" / "keep.txt").write_text("keep\n")
    data = (tmp_path / "photos" / "scene.png").read_bytes()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "cut.png").write_bytes(data[: len(data) // 3])
    (tmp_path / "bad" / "zero.png").write_bytes(b"")
    (tmp_path / "bad" / "bomb.png").write_bytes(png_header_only(100000, 100000))
    (tmp_path / "bad" / "text.png").write_text("not an image")
    (tmp_path / "bad" / "a_folder.png").mkdir()
    Image.new("RGB", (1, 1)).save(tmp_path / "bad" / "one.png")
    (tmp_path / "bad" / "bad.yaml").write_text("regions: [1, 2\n")
    (tmp_path / "bad" / "unknown.yaml").write_text("nosuch_setting: 3\n")
    return tmp_path


SCENE = "photos/scene.png"
# (name, image, extra args, --out (None: default folder), expected text in the one line)
CASES = [
    ("out holds user files", SCENE, [], "mine", "mmattr did not write"),
    ("out is a file", SCENE, [], "notes.txt", "is a file, not a folder"),
    ("out is the image's folder", SCENE, [], "photos", "mmattr did not write"),
    ("out under a regular file", SCENE, [], "notes.txt/sub", "is a file, not a folder"),
    ("out is .", SCENE, [], ".", "mmattr did not write"),
    ("decompression bomb", "bad/bomb.png", [], "out", "too large to decode safely"),
    ("truncated", "bad/cut.png", [], "out", "truncated or corrupt"),
    ("zero bytes", "bad/zero.png", [], "out", "not an image"),
    ("not an image", "bad/text.png", [], "out", "not an image"),
    ("a directory", "bad/a_folder.png", [], "out", "not a file"),
    ("missing", "bad/missing.png", [], "out", "not found"),
    ("1x1", "bad/one.png", [], "out", "too small"),
    ("empty text", SCENE, ["--text", "   "], "out", "empty"),
    ("no target", SCENE, ["--no-text"], "out", "no target"),
    ("unknown spec", SCENE, ["--model", "nosuch"], "out", "unknown model family"),
    ("hub id without family", SCENE, ["--model", "openai/clip-vit-base-patch32"], "out",
     "--model hf:openai/clip-vit-base-patch32"),
    ("missing hf folder", SCENE, ["--model", "hf:/no/such/folder"], "out", "cannot load"),
    ("bad YAML", SCENE, ["--config", "bad/bad.yaml"], "out", "not valid YAML"),
    ("unknown setting", SCENE, ["--config", "bad/unknown.yaml"], "out", "unknown config setting"),
    ("unknown division", SCENE, ["--division", "voronoi"], "out", "unknown division"),
    ("unknown method", SCENE, ["--method", "magic"], "out", "unknown method"),
    ("regions beyond pixels", SCENE, ["--regions", "99999"], "out", "more than the image"),
    ("bad max_side", SCENE, ["--max-side", "0"], "out", "max_side must be at least 1"),
    ("default out blocked by a file", SCENE, [], None, "is a file, not a folder"),
]


def _invoke(world: Path, image: str, extra: list[str], out: str | None):
    args = ["explain", image, *FAST]
    if "--no-text" in extra:
        extra = [a for a in extra if a != "--no-text"]
    elif "--text" not in extra:
        args += ["--text", "a red circle"]
    args += extra
    if out is not None:
        args += ["--out", out]
    cwd = os.getcwd()
    os.chdir(world)
    try:
        return runner.invoke(app, args)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("name,image,extra,out,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(world, name, image, extra, out, expect):
    if out is None:  # the default output folder's parent is a file
        (world / "explanations").write_text("a file of mine\n")
    before = snapshot(world)
    result = _invoke(world, image, extra, out)
    assert_one_line(result, expect)
    assert snapshot(world) == before, f"{name}: the output location changed"


def test_read_only_place(world, tmp_path_factory):
    check_read_only_place(world, lambda out: _invoke(world, SCENE, [], out))


def test_dataset_shapes_on_a_file(world):
    before = snapshot(world)
    cwd = os.getcwd()
    os.chdir(world)
    try:
        result = runner.invoke(app, ["dataset", "shapes", "photos/scene.png", "--n", "2"])
        assert_one_line(result, "is a file, not a folder")
        result = runner.invoke(app, ["dataset", "shapes", "mine", "--n", "2"])
        assert_one_line(result, "mmattr did not write")
    finally:
        os.chdir(cwd)
    assert snapshot(world) == before


def test_tokenizer_beyond_embedding_table(world, tmp_path_factory):
    import torch
    from transformers import CLIPModel

    from mmattr.demo_model import DEMO_MODEL_DIR

    broken = tmp_path_factory.mktemp("broken-clip")
    for f in DEMO_MODEL_DIR.iterdir():
        if f.suffix == ".json" and f.name != "config.json":
            shutil.copy(f, broken / f.name)
    model = CLIPModel.from_pretrained(DEMO_MODEL_DIR)
    old = model.text_model.embeddings.token_embedding
    model.text_model.embeddings.token_embedding = torch.nn.Embedding(10, old.embedding_dim)
    model.config.text_config.vocab_size = 10
    model.save_pretrained(broken)
    before = snapshot(world)
    result = _invoke(world, SCENE, ["--model", f"hf:{broken}"], "out")
    text = assert_one_line(result, "embedding table has 10 rows")
    assert "tokenizer" in text
    assert snapshot(world) == before


def _order(world: Path, image: str, out: str) -> list[int]:
    import json

    result = _invoke(world, image, [], out)
    assert result.exit_code == 0, result.output
    return json.loads((world / out / "explanation.json").read_text())["order"]


def test_16bit_and_cmyk_explain_like_their_8bit_twin(world):
    rgb = np.asarray(Image.open(world / SCENE).convert("RGB"))
    gray = rgb.mean(axis=2).round().astype(np.uint8)
    Image.fromarray(gray).save(world / "photos" / "gray8.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(world / "photos" / "gray16.png")
    assert Image.open(world / "photos" / "gray16.png").mode == "I;16"
    cmyk = Image.fromarray(rgb).convert("CMYK")
    cmyk.save(world / "photos" / "scene_cmyk.tif")
    assert _order(world, "photos/gray16.png", "o16") == _order(world, "photos/gray8.png", "o8")
    assert _order(world, "photos/scene_cmyk.tif", "ocmyk") == _order(world, SCENE, "orgb")
