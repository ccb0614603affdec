"""`--num-processes N` reruns the same command line under accelerate (the launch itself is
exercised in tests/search/test_distributed.py and tests/evaluate/test_evaluate_sharded.py)."""

import sys

import pytest
from typer.testing import CliRunner

from mmattr import distributed
from mmattr.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["explain", "evaluate"])
def test_num_processes_relaunches_without_the_flag(command, tmp_path, monkeypatch):
    seen = {}

    def fake_relaunch(n, args):
        seen["n"], seen["args"] = n, list(args)
        return 3  # the launched run's exit code becomes ours

    monkeypatch.setattr(distributed, "relaunch", fake_relaunch)
    first = [command, str(tmp_path / "x.png"), "--text", "a red circle"] if command == "explain" \
        else [command, str(tmp_path)]
    argv = [*first, "--num-processes", "2", "--out", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", ["mmattr", *argv])
    result = runner.invoke(app, argv)
    assert result.exit_code == 3, result.output
    assert seen == {"n": 2, "args": [*first, "--out", str(tmp_path / "out")]}
    assert not (tmp_path / "out").exists()


def test_num_processes_must_be_positive(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path), "--num-processes", "0"])
    assert result.exit_code == 2 and "--num-processes must be at least 1" in result.output


def test_num_processes_without_accelerate_is_one_line(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "accelerate" else real(name, *a))
    monkeypatch.setattr(distributed, "relaunch", lambda n, args: pytest.fail("must not launch"))
    result = runner.invoke(app, ["evaluate", str(tmp_path), "--num-processes", "2"])
    assert result.exit_code == 2
    assert "--num-processes needs accelerate" in result.output
    assert len(result.output.strip().splitlines()) == 1
