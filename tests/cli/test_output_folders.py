"""Output folders: never destructive, "already done" by content and settings, umask respected,
interrupted runs cleaned up by the next one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from mmattr.cli import app
from mmattr.datasets.shapes import render_scene
from mmattr.explanation import RESULT_FILES
from mmattr._io import TMP_PREFIX
from mmattr.outdir import default_out_dir
from mmattr.runs.folder import MARKER, OutputFolder, is_complete, read_marker
from mmattr.targets import Target

runner = CliRunner()
FAST = ["--division", "grid", "--regions", "4", "--search", "exact"]


def run(cwd: Path, *args: str):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, ["explain", *args, *FAST])
    finally:
        os.chdir(old)


@pytest.fixture
def scene(tmp_path) -> Path:
    path = tmp_path / "scene.png"
    Image.fromarray(render_scene(166, size=48).image).save(path)
    return path


def test_default_folder_per_target_and_method(scene, tmp_path):
    first = run(tmp_path, str(scene), "--text", "a red circle")
    second = run(tmp_path, str(scene), "--text", "a blue square")
    third = run(tmp_path, str(scene), "--text", "a red circle", "--method", "gradcam")
    assert first.exit_code == second.exit_code == third.exit_code == 0
    folders = sorted(p.name for p in (tmp_path / "explanations").iterdir())
    assert len(folders) == 3, folders
    assert all(f.startswith("scene.") for f in folders)
    assert any(".gradcam." in f for f in folders)
    labels = {json.loads((tmp_path / "explanations" / f / "explanation.json").read_text())
              ["target"]["label"] for f in folders}
    assert labels == {"a red circle", "a blue square"}
    # Same image, same target, same method → the same folder; any difference → another one.
    red = Target.from_text("a red circle")
    assert default_out_dir(scene, red, "smdl") == default_out_dir(scene, Target.from_text("a red circle"), "smdl")
    assert default_out_dir(scene, red, "smdl") != default_out_dir(scene, Target.from_text("A red circle"), "smdl")


def test_already_done_is_decided_by_content_not_path(scene, tmp_path):
    out = tmp_path / "res"
    assert run(tmp_path, str(scene), "--text", "a red circle", "--out", str(out)).exit_code == 0
    again = run(tmp_path, str(scene), "--text", "a red circle", "--out", str(out))
    assert again.exit_code == 0 and "already holds" in again.output
    old = json.loads((out / "explanation.json").read_text())
    # The same path with other pixels is new work, not "already holds".
    Image.fromarray(render_scene(7, size=48).image).save(scene)
    edited = run(tmp_path, str(scene), "--text", "a red circle", "--out", str(out))
    assert edited.exit_code == 0 and "already holds" not in edited.output, edited.output
    new = json.loads((out / "explanation.json").read_text())
    assert new["image_sha256"] != old["image_sha256"]
    # Other settings are refused in a folder that holds a result (one line, nothing touched);
    # --overwrite replaces it. A copy of the image elsewhere is the same work.
    before = (out / "explanation.json").read_bytes()
    refused = run(tmp_path, str(scene), "--text", "a red circle", "--out", str(out), "--seed", "3")
    assert refused.exit_code == 2 and "other settings (config)" in refused.output
    assert "--overwrite" in refused.output and (out / "explanation.json").read_bytes() == before
    other = run(tmp_path, str(scene), "--text", "a red circle", "--out", str(out), "--seed", "3",
                "--overwrite")
    assert other.exit_code == 0 and "already holds" not in other.output
    copy = tmp_path / "copy.png"
    copy.write_bytes(scene.read_bytes())
    same = run(tmp_path, str(copy), "--text", "a red circle", "--out", str(out), "--seed", "3")
    assert same.exit_code == 0 and "already holds" in same.output


def test_redo_keeps_user_files_and_cleans_stray_temp(scene, tmp_path):
    out = tmp_path / "res"
    assert run(tmp_path, str(scene), "--text", "a red circle", "--out", str(out)).exit_code == 0
    marker = read_marker(out)
    assert marker["state"] == "complete" and sorted(marker["files"]) == sorted(RESULT_FILES)
    (out / "my_notes.txt").write_text("mine\n")  # a user's file inside a result folder
    stray = out / f"{TMP_PREFIX}abc123"
    stray.mkdir()
    (stray / "attribution.npy").write_bytes(b"half")
    legacy = tmp_path / ".res.k2j4h5g6"  # what older versions left beside the folder
    legacy.mkdir()
    (legacy / "overlay.png").write_bytes(b"x")
    theirs = tmp_path / ".res.notmine"  # not mmattr's pattern: left alone
    theirs.mkdir()
    again = run(tmp_path, str(scene), "--text", "a red circle", "--out", str(out))
    assert "already holds" in again.output  # skipping still cleans up
    assert not stray.exists() and not legacy.exists() and theirs.exists()
    redo = run(tmp_path, str(scene), "--text", "a blue square", "--out", str(out), "--overwrite")
    assert redo.exit_code == 0, redo.output
    assert (out / "my_notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in out.iterdir()) == sorted([*RESULT_FILES, MARKER, "my_notes.txt"])
    assert json.loads((out / "explanation.json").read_text())["target"]["label"] == "a blue square"


def test_empty_and_legacy_folders_are_usable(scene, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert OutputFolder(empty, "explain").state == "empty"
    assert run(tmp_path, str(scene), "--text", "a red circle", "--out", str(empty)).exit_code == 0
    assert is_complete(empty)
    # A folder an older version wrote (no marker, only its files) is recognised as mmattr's.
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in RESULT_FILES:
        (legacy / name).write_bytes(b"old")
    (legacy / "explanation.json").write_text(json.dumps({"mmattr_version": "0.0.1"}))
    from mmattr.outdir import legacy_result

    assert OutputFolder(legacy, "explain", {}, recognise=legacy_result).state == "same"
    assert run(tmp_path, str(scene), "--text", "a red circle", "--out", str(legacy)).exit_code == 0
    assert is_complete(legacy)
    # An explanation.json not written by mmattr does not make a folder ours.
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "explanation.json").write_text("{}")
    result = run(tmp_path, str(scene), "--text", "a red circle", "--out", str(tmp_path / "fake"))
    assert result.exit_code == 2 and (tmp_path / "fake" / "explanation.json").read_text() == "{}"


@pytest.mark.parametrize("mask,dir_mode,file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600),
                                                      (0o002, 0o775, 0o664)])
def test_permissions_follow_the_umask(scene, tmp_path, mask, dir_mode, file_mode):
    old = os.umask(mask)
    try:
        out = tmp_path / "a" / "res"
        assert run(tmp_path, str(scene), "--text", "a red circle", "--out", str(out)).exit_code == 0
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == dir_mode
    assert out.stat().st_mode & 0o777 == dir_mode
    for p in out.iterdir():
        assert p.stat().st_mode & 0o777 == file_mode, p.name


def test_summary_on_stdout_and_long_prompt_warning(scene, tmp_path):
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(app, ["explain", str(scene), *FAST, "--text",
                                          "a red circle " * 60, "--out", "o"])
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    assert "insertion AUC" in result.stdout and "insertion AUC" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    import re

    assert "limit of 32 tokens" in warnings[0]
    assert int(re.search(r"prompt is (\d+) tokens", warnings[0]).group(1)) >= 180  # 180 words
    # The summary shows the start of the prompt, not 700 characters of it.
    assert max(len(line) for line in result.stdout.splitlines()) < 160


def test_progress_lines_without_a_terminal(monkeypatch, capsys):
    from mmattr.runs.progress import ProgressLines

    ticks = iter([0.0, 1.0, 6.0, 7.0, 13.0, 14.0])
    update = ProgressLines("smdl explanation", interval=5.0, clock=lambda: next(ticks))
    for done in (1, 2, 3, 4, 5):
        update(done, 5)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["smdl explanation: 2/5 (40%), 6 s, about 9 s left",
                     "smdl explanation: 4/5 (80%), 13 s, about 3 s left",
                     "smdl explanation: 5/5 (100%), 14 s"]
    quiet = ProgressLines("x", interval=5.0, clock=iter([0.0, 1.0, 2.0]).__next__)
    quiet(1, 2)
    quiet(2, 2)
    assert capsys.readouterr().err == ""  # a quick run stays quiet


def test_models_reads_at_80_columns():
    """At 80 columns one block per family (a five-column table folded every cell): each line
    fits, every spec is there whole (wrapped only between words), the state is said once."""
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    assert "…" not in result.output and "│" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    from mmattr.adapters import list_model_families

    specs: dict[str, str] = {}
    family, in_spec = None, False
    for line in result.output.splitlines():
        if line and not line.startswith(" "):
            family = line.split()[0]
            assert line.count("(") == 1 and ("installed" in line)
        elif line.startswith("  spec "):
            specs[family], in_spec = line[len("  spec"):].strip(), True
        elif line.startswith(" " * 9) and in_spec:
            specs[family] += " " + line.strip()
        else:
            in_spec = False
    for row in list_model_families():
        assert specs[row["name"]] == row["syntax"], row["name"]
    wide = CliRunner().invoke(app, ["models"], env={"COLUMNS": "160"}, terminal_width=160)
    assert "┃ family" in wide.output  # a wide console keeps the table


def test_what_a_killed_save_leaves_is_recognised(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / f"{TMP_PREFIX}k2j4h5.tmp").write_text("{")  # the marker's temporary file
    (out / f"{TMP_PREFIX}x1").mkdir()
    (tmp_path / f"{TMP_PREFIX}probe").mkdir()  # a write probe beside it
    folder = OutputFolder(out, "explain")
    assert folder.state == "empty"
    folder.tidy()
    folder.close()
    assert list(out.iterdir()) == [] and not (tmp_path / f"{TMP_PREFIX}probe").exists()
    (out / f"{TMP_PREFIX}k2j4h5.tmp").write_text("{")
    (out / "mine.txt").write_text("x")
    with pytest.raises(Exception, match="did not write"):
        OutputFolder(out, "explain")
    assert sorted(p.name for p in out.iterdir()) == [f"{TMP_PREFIX}k2j4h5.tmp", "mine.txt"]
