"""The README's Python blocks run as pasted, and examples/notebook.ipynb runs headless and
shows what it promises: the inline overlay, a tensor round trip on the model's device, a
custom fill and a user's region map."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(markdown: str) -> list[str]:
    """The ```python fenced blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


BLOCKS = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["MMATTR_CACHE"] = str(tmp_path / "cache")  # the audit's embedding cache stays here
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    return env


def test_the_readme_has_its_python_blocks():
    assert len(BLOCKS) >= 4
    joined = "\n".join(BLOCKS)
    assert "PointingGame" in joined and "mmattr.audit(" in joined and "fill=" in joined


@pytest.mark.parametrize("index", range(len(BLOCKS)),
                         ids=[f"block{i}-{b.splitlines()[0][:30]}" for i, b in enumerate(BLOCKS)])
def test_readme_python_block_runs_as_pasted(index, tmp_path):
    code = BLOCKS[index]
    if "import quantus" in code and importlib.util.find_spec("quantus") is None:
        pytest.skip("quantus is not installed (pip install 'mmattr[quantus]')")
    # a fresh interpreter in an empty folder, as a reader pasting the block would have
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, f"README block {index} failed:\n{code}\n{out.stderr[-3000:]}"
    if "division=labels" in code:  # the block says the red pixels come first
        assert out.stdout.strip().splitlines()[-1].startswith("[2,"), out.stdout
    if "PointingGame" in code:
        lines = out.stdout.strip().splitlines()
        assert lines[-2] == "[True, True, True, True]", out.stdout
        assert max(float(v) for v in re.findall(r"-?\d+\.\d+", lines[-1])) < 0.5, out.stdout


def _kernel_dir(tmp_path: Path) -> Path:
    """A kernel spec for this very interpreter, so the notebook runs on the environment under
    test whatever kernels the machine has registered."""
    spec = tmp_path / "kernels" / "mmattr-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mmattr test", "language": "python"}))
    return tmp_path


def execute_notebook(path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch,
                     timeout: int = 300):
    """The notebook at `path`, executed headless (nbclient) in `workdir` on this interpreter,
    with this tree first on the kernel's path."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(path, as_version=4)
    monkeypatch.setenv("JUPYTER_PATH", str(_kernel_dir(workdir)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="mmattr-test",
                            resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def _outputs(cell) -> tuple[str, set[str]]:
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
    kinds = {k for o in cell.outputs for k in o.get("data", {})}
    return text, kinds


def test_the_notebook_runs_headless_and_shows_what_it_promises(tmp_path, monkeypatch):
    nb = execute_notebook(ROOT / "examples" / "notebook.ipynb", tmp_path, monkeypatch)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, errors
    first = _outputs(code[0])[1]
    # the inline overlay: an Explanation as the cell's value, as HTML (with the pictures) and PNG
    assert {"text/html", "image/png"} <= first
    page = next(o["data"]["text/html"] for o in code[0].outputs if "text/html" in o.get("data", {}))
    assert page.count("<img") == 2 and "a red circle" in page
    tensors, _ = _outputs(code[1])  # the round trip asserts its device inside the cell
    assert re.search(r"attribution \(224, 224\) on (cpu|cuda)", tensors), tensors
    fill_text, fill_kinds = _outputs(code[2])
    assert "fill blur" in fill_text and "image/png" in fill_kinds  # e.plot() shown inline
    region_text, region_kinds = _outputs(code[3])
    assert "red first" in region_text and "image/png" in region_kinds
    assert "image/png" in _outputs(code[4])[1]  # plot(ax=...) into the user's figure
    assert not any("Warning" in _outputs(c)[0] for c in code), [_outputs(c)[0] for c in code]
