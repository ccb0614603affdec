"""Figure helpers (`mmattr.vizworker`): the files they draw are the in-process ones byte for
byte; a helper that fails leaves the figure to the parent; none start once torch is loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import os, sys
from pathlib import Path
from types import SimpleNamespace
import numpy as np
from mmattr import vizworker

out = Path(sys.argv[1])
assert vizworker.start(1) == 1 and "torch" not in sys.modules
rng = np.random.default_rng(0)
image = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
regions = (np.arange(90)[:, None] // 30 * 4 + np.arange(120)[None, :] // 30).astype(np.int32)
attribution = rng.random(12).astype(np.float32)[regions]
curves = SimpleNamespace(curve_x=[0, .3, 1], insertion_curve=[.1, .5, .9],
                         deletion_curve=[.9, .4, .1], insertion_auc=.5, deletion_auc=.4,
                         curve_score="probability", method="smdl", target={"label": "a cat"})
jobs = lambda tag: [("save_overlay", (out / f"overlay{tag}.png", image, attribution, regions, [3, 1, 7]),
                     {"title": "a cat"}), ("save_curves", (out / f"curves{tag}.png", curves), {})]
vizworker.draw(jobs("_helper"))  # one helper draws both, one after the other
assert vizworker.available() == 1
try:  # a figure a helper cannot write: drawn again in-process, which raises the real error
    vizworker.draw([("save_curves", (out / "missing" / "c.png", curves), {})])
except FileNotFoundError:
    pass
else:
    raise AssertionError("no error")
assert vizworker.available() == 0  # the failed helper is gone
assert vizworker.start(2) == 2  # two helpers: one figure each
vizworker.draw(jobs("_two"))
assert vizworker.available() == 2
vizworker.stop()
assert vizworker.available() == 0
vizworker.draw(jobs("_local"))  # no helper: in-process
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="helpers are forked on Linux only")
def test_helpers_draw_the_same_files(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MMATTR_FIGURE_WORKERS", None)
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    for name in ("overlay", "curves"):
        local = (tmp_path / f"{name}_local.png").read_bytes()
        assert (tmp_path / f"{name}_helper.png").read_bytes() == local
        assert (tmp_path / f"{name}_two.png").read_bytes() == local


def test_no_helpers_once_torch_is_loaded():
    import torch  # noqa: F401

    from mmattr import vizworker

    assert vizworker.start(2) == 0 and vizworker.available() == 0
