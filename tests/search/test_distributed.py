"""Sharding across processes: a no-op without a launcher; same orderings with 2 CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mmattr
from mmattr import distributed
from mmattr.demo_model import DEMO_MODEL_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_no_launcher_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.world_size() == 1 and distributed.rank() == 0
    assert distributed.is_main_process() and not distributed.is_distributed()
    items = list(range(7))
    assert distributed.shard_items(items) == items
    assert distributed.gather_items(items) == items
    with distributed.process_out_dir(tmp_path / "out") as where:
        assert where == tmp_path / "out"
    distributed.wait_for_everyone()


def test_shutdown_leaves_the_process_group_and_is_a_no_op_without_one():
    import torch.distributed as dist

    distributed.shutdown()  # nothing joined: nothing to do
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{distributed.free_port()}",
                            rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        distributed.shutdown()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.parametrize("argv,code,synchronize", [
    (["--version"], 0, True),                          # a clean finish waits for the peers
    (["explain", "missing.png", "--text", "a"], 2, False),  # an error does not
])
def test_the_cli_always_leaves_the_process_group(argv, code, synchronize, monkeypatch, capsys):
    from mmattr.cli.main import main

    calls = []
    monkeypatch.setattr(distributed, "shutdown", lambda synchronize=True: calls.append(synchronize))
    monkeypatch.setattr(sys, "argv", ["mmattr", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    assert (exc.value.code or 0) == code
    assert calls == [synchronize]


@pytest.mark.parametrize("count,size", [(10, 3), (2, 4), (0, 2), (9, 1), (48, 2)])
def test_shards_cover_every_item_once_in_order(count, size):
    shares = [distributed.shard_bounds(count, index=r, size=size) for r in range(size)]
    rows = [i for start, stop, _ in shares for i in range(start, stop)]
    assert rows == list(range(count))
    per = shares[0][2]
    assert all(stop - start <= per for start, stop, _ in shares)


_SCRIPT = r"""
import json, os, runpy, sys
from mmattr import distributed
mine = distributed.shard_items(list(range(5)))
every = distributed.gather_items([x * 10 for x in mine])
if distributed.is_main_process():
    json.dump({"world": distributed.world_size(), "every": every}, open(sys.argv[1], "w"))
sys.argv = ["mmattr", *sys.argv[2:]]
runpy.run_module("mmattr", run_name="__main__")
"""


@pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").is_file(), reason="no demo model")
def test_two_processes_give_the_same_orderings(tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` (CPU-only: gloo) splits each step's batch; same result."""
    pytest.importorskip("accelerate")
    from PIL import Image

    from mmattr.datasets.shapes import render_scene

    scene = render_scene(3, 64)
    Image.fromarray(scene.image).save(tmp_path / "scene.png")
    script = tmp_path / "launched.py"
    script.write_text(_SCRIPT)
    out = tmp_path / "two"
    args = ["explain", str(tmp_path / "scene.png"), "--text", scene.labels[0], "--model", "demo",
            "--division", "grid", "--regions", "9", "--search", "lazy", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--main_process_port", str(distributed.free_port()),
         "--mixed_precision", "no", "--dynamo_backend", "no",
         str(script), str(tmp_path / "shards.json"), *args],
        env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shards = json.loads((tmp_path / "shards.json").read_text())
    assert shards == {"world": 2, "every": [0, 10, 20, 30, 40]}
    two = json.loads((out / "explanation.json").read_text())
    assert two["settings"]["search_settings"]["processes"] == 2
    one = mmattr.explain(scene.image, text=scene.labels[0], model="demo", division="grid",
                         regions=9, search="lazy")
    assert one.settings["search_settings"]["processes"] == 1
    assert two["order"] == one.order
    assert two["forward_passes"] == one.forward_passes
    np.testing.assert_allclose(two["insertion_curve"], one.insertion_curve, atol=1e-5)
    # Only the main process wrote: exactly one result folder, no stray temporary ones.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".two", "two"))) == ["two"]
