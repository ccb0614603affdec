"""SIGKILL while `mmattr explain` saves, then rerun: nothing lost, nothing duplicated.

`killhook` stops a real `mmattr explain` process just before the k-th disk step of its save
(folders made, files written, renamed, chmod-ed, temporary folders removed). After each kill
the folder must still be one a rerun accepts, a user's file in it must be intact, and the rerun
must leave exactly one complete result, equal to an uninterrupted run's, with no temporary
folder inside or beside it. The default run kills at one random step of each of two scenarios (a
new folder, and a folder holding an earlier result plus a user's file); ``-m slow`` at 12 steps
of each (spread over the whole save, the first and last included): 24 kill points.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mmattr.cli import app
from mmattr.datasets.shapes import render_scene
from mmattr.explanation import RESULT_FILES
from mmattr._io import TMP_PREFIX, is_temp
from mmattr.runs.folder import MARKER, OutputFolder, is_complete, read_marker

HERE = Path(__file__).parent
REPO = HERE.parent.parent
TOY = f"torch:{REPO / 'tests' / 'adapters' / 'tiny_models.py'}:build_encoder"
ARGS = ["--division", "grid", "--regions", "4", "--search", "exact", "--model", TOY]
runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The image, an uninterrupted reference result, and the number of steps of one save."""
    root = tmp_path_factory.mktemp("kill")
    image = root / "scene.png"
    Image.fromarray(render_scene(166, size=48).image).save(image)
    sys.path.insert(0, str(HERE))
    import killhook

    with pytest.MonkeyPatch.context() as mp:
        state = killhook.install(-1, setattr_=mp.setattr)
        result = runner.invoke(app, ["explain", str(image), "--text", "a red circle", *ARGS,
                                     "--out", str(root / "reference")])
    assert result.exit_code == 0, result.output
    return image, root / "reference", state["steps"]


def _explain(image: Path, out: Path, text: str = "a red circle", extra: tuple = ()):
    return runner.invoke(app, ["explain", str(image), "--text", text, *ARGS, "--out", str(out),
                               *extra])


def _killed_run(image: Path, out: Path, step: int, tmp: Path, extra: tuple = ()) -> int:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    # Output to files, not pipes; its own session, so nothing it started can outlive the test.
    with open(tmp / "stdout.txt", "w") as so, open(tmp / "stderr.txt", "w") as se:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "killhook.py"), str(step), str(tmp / "steps.txt"),
             "explain", str(image), "--text", "a red circle", *ARGS, "--out", str(out), *extra],
            env=env, cwd=tmp, stdout=so, stderr=se, start_new_session=True)
        try:
            return proc.wait(timeout=900)
        finally:
            try:
                os.killpg(proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()


def _consistent_after_kill(out: Path, user_file: Path | None) -> None:
    """What a reader may see right after the kill: a folder a rerun accepts, a user's file
    intact, and a marker saying "complete" only over a complete, readable set of files."""
    if user_file is not None:
        assert user_file.read_text() == "mine\n"
    if not out.exists():
        return
    marker = read_marker(out)
    if marker is None:  # killed before the folder was marked: empty but for mmattr's temp files
        assert all(is_temp(p.name) for p in out.iterdir()), sorted(p.name for p in out.iterdir())
        assert OutputFolder(out, "explain", lock=False).state == "empty"
        return
    if marker["state"] == "complete":
        assert is_complete(out)
        json.loads((out / "explanation.json").read_text())
        np.load(out / "attribution.npy")


def _check_rerun(out: Path, reference: Path, image: Path, user_file: Path | None,
                 extra: tuple = ()) -> None:
    result = _explain(image, out, extra=extra)
    assert result.exit_code == 0, result.output
    extra = {user_file.name} if user_file is not None else set()
    assert sorted(p.name for p in out.iterdir()) == sorted({*RESULT_FILES, MARKER, *extra})
    if user_file is not None:
        assert user_file.read_text() == "mine\n"
    siblings = sorted(p.name for p in out.parent.iterdir())
    assert siblings == [out.name], siblings  # no temporary folder left beside it
    above = [p.name for p in out.parent.parent.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert above == [], above  # nor a write probe one level up
    assert is_complete(out)
    got = json.loads((out / "explanation.json").read_text())
    want = json.loads((reference / "explanation.json").read_text())
    assert got["order"] == want["order"] and got["target"]["label"] == "a red circle"
    np.testing.assert_array_equal(np.load(out / "attribution.npy"),
                                  np.load(reference / "attribution.npy"))
    again = _explain(image, out)  # finished work is skipped, not done twice
    assert again.exit_code == 0 and "already holds" in again.output


def _scenario(kind: str, image: Path, tmp: Path) -> tuple[Path, Path | None]:
    """A new folder, or one holding an earlier result (another target: replaced with
    --overwrite) and a user's file."""
    out = tmp / "parent" / "res"
    if kind == "new":
        return out, None
    out.parent.mkdir()
    assert _explain(image, out, text="a blue square").exit_code == 0
    user = out / "user.txt"
    user.write_text("mine\n")
    return out, user


def _count_steps(setup, kind: str, tmp: Path) -> int:
    """The disk steps of one save in this scenario (an earlier result needs no new folder)."""
    import killhook

    image = setup[0]
    tmp.mkdir()
    out, _ = _scenario(kind, image, tmp)
    with pytest.MonkeyPatch.context() as mp:
        state = killhook.install(-1, setattr_=mp.setattr)
        assert _explain(image, out, extra=_extra(kind)).exit_code == 0
    return state["steps"]


def _extra(kind: str) -> tuple:
    return ("--overwrite",) if kind == "earlier result" else ()


def _kill_and_rerun(setup, kind: str, step: int, tmp: Path) -> None:
    image, reference, _ = setup
    out, user = _scenario(kind, image, tmp)
    code = _killed_run(image, out, step, tmp, _extra(kind))
    assert code == -9, f"step {step}: the run was not killed (exit {code})"
    _consistent_after_kill(out, user)
    _check_rerun(out, reference, image, user, _extra(kind))


def test_save_has_steps_to_kill(setup):
    assert setup[2] >= 10  # folder, marker, temp folder, 5 files, renames, marker, cleanup


@pytest.mark.parametrize("kind", ["new", "earlier result"])
def test_kill_at_a_random_step(setup, kind, tmp_path):
    n = _count_steps(setup, kind, tmp_path / "count")
    step = random.Random(f"issue14-{kind}").randrange(n)
    _kill_and_rerun(setup, kind, step, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["new", "earlier result"])
def test_kill_at_many_steps(setup, kind, tmp_path):
    n = _count_steps(setup, kind, tmp_path / "count")
    steps = sorted({round(i * (n - 1) / 11) for i in range(12)})
    assert len(steps) == 12
    for step in steps:
        case = tmp_path / f"step{step}"
        case.mkdir()
        _kill_and_rerun(setup, kind, step, case)
