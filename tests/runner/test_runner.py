"""Known-answer tests of the runs package: reading (manifest, ImageFolder, symbolic links),
the mask rule, resume keyed by content, dedupe, bad items, the output folder's rules and its
lock, and the embedding store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmattr.adapters._preprocess import Preprocess
from mmattr.adapters.base import Adapter
from mmattr.errors import InputError
from mmattr.runs import (EmbeddingCache, ItemError, OutputFolder, ProgressLines, encode_items,
                         file_digest, load_item_image, model_key, read_dataset, run_items)


def _png(path: Path, colour=(200, 30, 30), size=(12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _manifest(root: Path, lines: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


# -- reading ---------------------------------------------------------------------------------

def test_manifest_keys_dedupe_masks_and_missing_files(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    _png(tmp_path / "m1.png", (255, 255, 255))
    _png(tmp_path / "m2.png", (0, 0, 0))
    root = _manifest(tmp_path, [
        {"image": "a.png", "text": "a cat", "mask": "m1.png"},
        {"image": "a.png", "text": "a cat", "mask": "m2.png"},      # other mask: distinct
        {"image": "./a.png", "text": "a cat", "mask": "m1.png"},    # same line again: dropped
        {"image": "b.png", "label": "dog"},                          # text falls back to label
        {"image": "gone.png", "text": "x"},                          # missing: bad, not fatal
        {"image": "b.png", "text": "y", "mask": "nomask.png"},       # missing mask: bad
    ])
    data = read_dataset(root)
    assert data.kind == "manifest"
    assert [it.line for it in data.items] == [1, 2, 4]
    assert len({it.key for it in data.items}) == 3
    assert data.duplicates == [3]
    assert data.items[2].text == "dog" and data.items[2].label == "dog"
    assert data.items[0].mask_path == root / "m1.png"
    assert [(b.line, b.image) for b in data.bad] == [(5, "gone.png"), (6, "b.png")]
    assert "image file not found" in data.bad[0].reason and "mask" in data.bad[1].reason
    assert data.classes == ["dog"]


def test_manifest_need_and_empty(tmp_path):
    _png(tmp_path / "a.png")
    root = _manifest(tmp_path / "d", [{"image": "../a.png"}])
    with pytest.raises(InputError, match=r"manifest.jsonl:1: needs a 'label'"):
        read_dataset(root, need=("label",))
    with pytest.raises(InputError, match="needs a 'text'"):
        read_dataset(root, need=("text",))
    root = _manifest(tmp_path / "e", [{"image": "x.png", "text": "t"}])
    with pytest.raises(InputError, match="no usable image .*image file not found"):
        read_dataset(root)
    (tmp_path / "f").mkdir()
    with pytest.raises(InputError, match="no manifest.jsonl"):
        read_dataset(tmp_path / "f")
    with pytest.raises(InputError, match="dataset folder not found"):
        read_dataset(tmp_path / "nope")


def test_imagefolder_matches_torchvision(tmp_path):
    tv = pytest.importorskip("torchvision.datasets")
    root = tmp_path / "set"
    _png(root / "zebra" / "1.png")
    _png(root / "zebra" / "sub" / "2.JPG")
    _png(root / "apple" / "b.png")
    _png(root / "apple" / "a.webp")
    (root / "apple" / "notes.txt").write_text("not an image")
    _png(root / "loose.png")  # a file at the top is no class, as in torchvision
    data = read_dataset(root)
    ref = tv.ImageFolder(str(root))
    assert data.kind == "imagefolder"
    assert data.classes == ref.classes == ["apple", "zebra"]
    assert [(str(it.path), it.label) for it in data.items] == \
        [(p, ref.classes[k]) for p, k in ref.samples]
    assert data.items[0].key == "apple/a.webp" and data.items[0].text == "apple"
    (root / ".cache").mkdir()  # a hidden folder is no class here
    assert read_dataset(root).classes == ["apple", "zebra"]


# -- running ---------------------------------------------------------------------------------

def _items(tmp_path, n=4):
    lines = []
    for i in range(n):
        _png(tmp_path / "data" / f"{i}.png", (10 * i, 0, 0))
        lines.append({"image": f"{i}.png", "text": f"t{i}"})
    return read_dataset(_manifest(tmp_path / "data", lines)).items


def _work(calls: list, fail_on: set | None = None):
    def work(item, tasks):
        for t in tasks:
            calls.append((item.image, t))
            if fail_on and (item.image, t) in fail_on:
                raise ItemError(f"cannot read {item.image}")
            yield t, {"value": int(item.image[0]) * 10 + len(t)}
    return work


def test_run_resumes_dedupes_and_repairs(tmp_path):
    items = _items(tmp_path)
    out = tmp_path / "out"
    calls: list = []
    with OutputFolder(out, "test", {"k": 1}, records="results") as folder:
        res = run_items(folder, items[:2], ("a", "bb"), _work(calls))
    assert (res.new, res.done_before, res.bad) == (4, 0, [])
    assert calls == [("0.png", "a"), ("0.png", "bb"), ("1.png", "a"), ("1.png", "bb")]
    # a kill mid-write leaves half a line: cut on the next run, that record redone
    with open(out / "results.jsonl", "rb+") as f:
        data = f.read()
        f.seek(0)
        f.truncate()
        f.write(data[:-7])
    calls.clear()
    with OutputFolder(out, "test", {"k": 1}, records="results") as folder:
        res = run_items(folder, items, ("a", "bb"), _work(calls))
    assert calls == [("1.png", "bb"), ("2.png", "a"), ("2.png", "bb"), ("3.png", "a"),
                     ("3.png", "bb")]
    assert (res.new, res.done_before) == (5, 3)
    lines = (out / "results.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert len(recs) == 8 == len({(r["item"], r["task"]) for r in recs})
    assert {(r["item"], r["task"]): r["value"] for r in recs}[(items[3].key, "bb")] == 32
    assert folder.log.read() == recs == res.records
    calls.clear()
    with OutputFolder(out, "test", {"k": 1}, records="results") as folder:
        res = run_items(folder, items, ("a", "bb"), _work(calls))
    assert calls == [] and (res.new, res.done_before) == (0, 8)
    # a duplicated line (two runs racing, a rerun beside a killed one) is read once
    with open(out / "results.jsonl", "a") as f:
        f.write(lines[0] + "\n")
    with OutputFolder(out, "test", {"k": 1}, records="results") as folder:
        res = run_items(folder, items, ("a", "bb"), _work(calls))
    assert calls == [] and len(res.records) == 8 and res.done_before == 8


def test_bad_item_is_skipped_counted_and_retried(tmp_path):
    items = _items(tmp_path)
    calls: list = []
    with OutputFolder(tmp_path / "out", "test", {}, records="records") as folder:
        res = run_items(folder, items, ("a", "bb"), _work(calls, {("1.png", "bb")}))
    assert res.new == 7 and [(b.image, b.line) for b in res.bad] == [("1.png", 2)]
    assert "cannot read 1.png" in res.bad[0].describe()
    keys = {(r["item"], r["task"]) for r in folder.log.read()}
    assert (items[1].key, "a") in keys and (items[1].key, "bb") not in keys  # kept what it made
    calls.clear()
    with OutputFolder(tmp_path / "out", "test", {}, records="records") as folder:
        res = run_items(folder, items, ("a", "bb"), _work(calls))
    assert calls == [("1.png", "bb")] and res.new == 1 and res.bad == []


def test_a_record_is_reused_only_for_the_same_content(tmp_path):
    """An edited image is worked on again; its old record is never read as the item's."""
    items = _items(tmp_path, 3)
    out = tmp_path / "out"
    with OutputFolder(out, "test", {}, records="records") as folder:
        first = run_items(folder, items, ("a",), _work([]))
    _png(items[1].path, (99, 99, 99))  # new pixels, same path
    calls: list = []
    with OutputFolder(out, "test", {}, records="records") as folder:
        res = run_items(folder, items, ("a",), _work(calls))
    assert calls == [("1.png", "a")] and (res.new, res.done_before) == (1, 2)
    assert len(res.records) == 3 and len(folder.log.read()) == 4  # the stale one is not used
    by_item = {r["item"]: r["digest"] for r in res.records}
    assert by_item[items[1].key] == file_digest(items[1].path)
    assert by_item[items[1].key] != {r["item"]: r["digest"] for r in first.records}[items[1].key]


def test_load_item_image_turns_any_failure_into_item_error(tmp_path):
    items = _items(tmp_path, 2)
    items[0].path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ItemError, match="0.png"):
        load_item_image(items[0])
    assert load_item_image(items[1]).shape == (10, 12, 3)


def test_folder_written_only_with_first_record(tmp_path):
    items = _items(tmp_path, 2)
    out = tmp_path / "new" / "out"

    def broken(item, tasks):
        raise RuntimeError("model failed to load")
        yield  # pragma: no cover

    with pytest.raises(RuntimeError):
        with OutputFolder(out, "test", {"v": 1}, records="records") as folder:
            run_items(folder, items, ("a",), broken)
    assert not (tmp_path / "new").exists()
    # a marker and nothing else (killed between the two writes) blocks nothing
    out.mkdir(parents=True)
    (out / ".mmattr").write_text(json.dumps({"tool": "mmattr", "command": "test",
                                             "settings": {"v": 1}, "state": "writing",
                                             "files": []}))
    with OutputFolder(out, "test", {"v": 2}, records="records") as folder:
        run_items(folder, items, ("a",), _work([]))
    assert json.loads((out / ".mmattr").read_text())["settings"] == {"v": 2}


def test_folder_rules(tmp_path):
    items = _items(tmp_path, 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"holds files mmattr did not write \(notes.txt\)"):
        OutputFolder(out, "test", {})
    assert os.listdir(out) == ["notes.txt"]
    with pytest.raises(InputError, match="is a file"):
        OutputFolder(out / "notes.txt", "test", {})
    with pytest.raises(InputError, match="cannot create"):
        OutputFolder(out / "notes.txt" / "sub", "test", {})
    with pytest.raises(InputError, match="inside the dataset folder"):
        OutputFolder(tmp_path / "data" / "results", "test", {}, avoid=[tmp_path / "data"])

    out = tmp_path / "res"
    with OutputFolder(out, "test", {"v": 1}, records="records") as folder:
        run_items(folder, items, ("a",), _work([]))
        folder.write_text("report.txt", "r")
    with pytest.raises(InputError, match=r"other settings \(v\)"):
        OutputFolder(out, "test", {"v": 2})
    with pytest.raises(InputError, match="a result of `mmattr test`"):
        OutputFolder(out, "audit", {"v": 1})
    (out / "user.txt").write_text("keep me")        # the user's file in our folder
    (out / ".mmattr-tmp-abcd1234.tmp").write_text("")  # a killed run's temporary file
    calls: list = []
    with OutputFolder(out, "test", {"v": 2}, records="records", overwrite=True) as folder:
        res = run_items(folder, items, ("a",), _work(calls))
    assert len(calls) == 2 and len(res.records) == 2  # everything redone, nothing old read
    assert sorted(os.listdir(out)) == [".mmattr", "records.jsonl", "user.txt"]
    assert (out / "user.txt").read_text() == "keep me"


def test_other_settings_are_refused_even_without_records(tmp_path):
    """A report without records (an audit with no explanation yet) is a result too."""
    out = tmp_path / "res"
    with OutputFolder(out, "test", {"dataset": "a"}, records="records") as folder:
        folder.write_text("report.html", "<p>a</p>")
        folder.finish()
    with pytest.raises(InputError, match=r"other settings \(dataset\)"):
        OutputFolder(out, "test", {"dataset": "b"}, records="records")
    assert (out / "report.html").read_text() == "<p>a</p>"


def test_one_run_at_a_time(tmp_path):
    """The folder's lock: a second run (another process) is refused while one holds it."""
    import subprocess
    import sys

    out = tmp_path / "res"
    with OutputFolder(out, "test", {}) as folder:
        folder.write_text("a.txt", "a")
        code = ("from mmattr.runs import OutputFolder; from mmattr.errors import InputError\n"
                f"try:\n    OutputFolder({str(out)!r}, 'test', {{}})\n"
                "except InputError as e:\n    print(e)\n")
        got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
        assert "in use by another mmattr run" in got.stdout, got.stdout + got.stderr
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert got.stdout == "" and got.returncode == 0, got.stdout + got.stderr


def test_progress_lines(capsys):
    p = ProgressLines("encode", interval=0.0, unit="items")
    p(0, 3)
    p(1, 3)
    p(3, 3)
    p(3, 3)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("encode: 1/3 items (33%)") and err[1].startswith("encode: 3/3")
    assert len(err) == 2


# -- the embedding cache ---------------------------------------------------------------------

class CountingAdapter(Adapter):
    """Embeds an image as its mean RGB through a linear layer; counts the images it encodes."""

    def __init__(self, scale: float = 1.0) -> None:
        self.spec = "counting"
        self.preprocess = Preprocess(shortest_edge=None, resize_hw=(8, 8), crop_hw=None,
                                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        self.device = torch.device("cpu")
        self.head = torch.nn.Linear(3, 4)
        with torch.no_grad():
            self.head.weight.copy_(torch.arange(12.0).reshape(4, 3) * scale)
            self.head.bias.zero_()
        self.seen = 0
        self.batches: list[int] = []

    def encode_images(self, pixels):
        self.seen += pixels.shape[0]
        self.batches.append(pixels.shape[0])
        return self.head(pixels.mean(dim=(2, 3)))


def _expected(colour) -> np.ndarray:
    x = np.asarray(colour, np.float64) / 255 * 2 - 1
    return (np.arange(12.0).reshape(4, 3) @ x).astype(np.float32)


def test_encode_caches_and_invalidates_on_content(tmp_path):
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 0, 0), (9, 9, 9)]
    lines = []
    for i, c in enumerate(colours):
        _png(tmp_path / "d" / f"{i}.png", c)
        lines.append({"image": f"{i}.png", "text": "x"})
    (tmp_path / "d" / "4.png").write_bytes(b"not a png")  # corrupt: skipped, listed
    data = read_dataset(_manifest(tmp_path / "d", lines))
    cache = EmbeddingCache(tmp_path / "cache")
    a = CountingAdapter()
    enc = encode_items(a, data.items, cache=cache, batch_size=2)
    assert [it.image for it in enc.items] == ["0.png", "1.png", "2.png", "3.png"]
    assert [b.image for b in enc.bad] == ["4.png"] and "4.png" in enc.bad[0].reason
    assert a.seen == 3  # 0.png and 3.png hold the same bytes: encoded once
    assert max(a.batches) <= 2
    np.testing.assert_allclose(enc.vectors, np.stack([_expected(c) for c in colours[:4]]),
                               atol=1e-5)
    assert enc.digests[0] == enc.digests[3] == file_digest(data.items[0].path)

    a2 = CountingAdapter()  # a rerun: everything read back, nothing encoded
    again = encode_items(a2, data.items, cache=cache, batch_size=3)
    assert a2.seen == 0 and again.encoded == 0 and again.cached == 4
    np.testing.assert_array_equal(again.vectors, enc.vectors)

    _png(data.items[1].path, (0, 0, 120))  # edited in place: new content, encoded again
    a3 = CountingAdapter()
    third = encode_items(a3, data.items, cache=cache)
    assert a3.seen == 1
    np.testing.assert_allclose(third.vectors[1], _expected((0, 0, 120)), atol=1e-5)

    a4 = CountingAdapter(scale=2.0)  # other weights: another model key, all encoded
    assert model_key(a4) != model_key(a3) and model_key(CountingAdapter()) == model_key(a3)
    fourth = encode_items(a4, data.items, cache=cache)
    assert a4.seen == 3
    np.testing.assert_allclose(fourth.vectors, 2 * third.vectors, atol=1e-4)

    none = encode_items(CountingAdapter(), data.items, cache=None, batch_size=1)
    np.testing.assert_allclose(none.vectors, third.vectors, atol=1e-6)


def test_cache_damaged_file_is_a_miss_and_prune_keeps_recent(tmp_path):
    cache = EmbeddingCache(tmp_path / "c", max_bytes=3 * 144)
    vec = np.arange(4, dtype=np.float32)
    for i in range(5):
        cache.put("m", f"{i:02d}" * 10, vec + i)
        t = 1_000_000 + i
        os.utime(cache.path("m", f"{i:02d}" * 10), (t, t))
    size = cache.path("m", "00" * 10).stat().st_size
    assert size == 144  # the bound above holds three vectors
    assert cache.get("m", "01" * 10)[0] == 1.0  # a hit: now the most recently used
    cache.prune()
    left = sorted(p.stem[:2] for p in (tmp_path / "c" / "m").rglob("*.npy"))
    assert left == ["01", "03", "04"]
    cache.path("m", "03" * 10).write_bytes(b"\x93NUMPY broken")
    assert cache.get("m", "03" * 10) is None
