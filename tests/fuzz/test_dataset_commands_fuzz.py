"""Issue 21's fuzz of the dataset commands, as a new user tried them: every case gives one line
and exit 2 with nothing of the user's touched, or correct results.

Covered: `represent` writing anywhere (a folder of the user's, ``.``, the dataset, a file, a
path under a file, a read-only place, ``--cache-dir`` a file, a conflicting subfolder: all
refused before the fit); masks read by one rule in every command (0/1, 0/255 and red-on-black
masks alike; a mask of the wrong size or a corrupt one is a bad item, skipped and listed); a
symbolic-link loop in an ImageFolder; stale results after an edit and another dataset in the
same ``--out``; a label outside the model's vocabulary; a manifest that is a folder; Typer's
parsing errors; ``demo-model train``'s options; ``dataset shapes``' folder. The SIGKILL cases
are tests/kill/test_kill_dataset_commands.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fuzzlib import assert_one_line as one_line
from fuzzlib import check_read_only_place, snapshot
from mmattr.cli.main import app
from mmattr.datasets.shapes import export_dataset, render_scene

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOY = _load(REPO / "tests" / "evaluate" / "toy_colour_model.py", "toy_colour_model_fuzz")
DIAMOND = f"torch:{REPO / 'tests' / 'representative' / 'toy_models.py'}:build_diamond"
EVAL = ["--model", "toycolour", "--division", "grid", "--regions", "4", "--steps", "5",
        "--methods", "saliency", "--metrics", "pointing,iou,energy_pointing", "--no-plots"]


def invoke(cwd: Path, args: list[str], env: dict | None = None):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, args, env=env)
    finally:
        os.chdir(old)


@pytest.fixture
def world(tmp_path) -> Path:
    """A user's folder: a dataset, a results folder of their own, a file, a cache file."""
    export_dataset(tmp_path / "ds", n_scenes=4, seed=5, size=32, n_objects=(1, 1))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "summary.json").write_text('{"mine": true}\n')
    (tmp_path / "mine" / "notes.txt").write_text("my notes\n")
    (tmp_path / "notes.txt").write_text("a file of mine\n")
    (tmp_path / "clash").mkdir()  # a folder with a subfolder named like an interpretation
    (tmp_path / "clash" / "rep00_images_00000").mkdir()
    (tmp_path / "clash" / "rep00_images_00000" / "overlay.png").write_bytes(b"mine")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.jsonl").mkdir()  # a manifest that is a folder
    (tmp_path / "bad" / "manifest.jsonl" / "x.txt").write_text("x")
    (tmp_path / "bad" / "masks").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "bad" / "masks" / "0.png")
    return tmp_path


# -- one line, exit 2, nothing touched --------------------------------------------------------

REPRESENT = ["represent", "ds", "--model", DIAMOND, "--layer", "psi", "--cache-dir", "cache"]
AUDIT = ["audit", "ds", "--model", "demo", "--explain-budget", "0"]
CASES = [
    # (case, command line, expected text)
    ("represent --out a folder of the user's", [*REPRESENT, "--out", "mine"], "mmattr did not write"),
    ("represent --out .", [*REPRESENT, "--out", "."], "mmattr did not write"),
    ("represent --out the dataset", [*REPRESENT, "--out", "ds"], "inside the dataset folder"),
    ("represent --out inside the dataset", [*REPRESENT, "--out", "ds/res"],
     "inside the dataset folder"),
    ("represent --out a file", [*REPRESENT, "--out", "notes.txt"], "is a file, not a folder"),
    ("represent --out under a file", [*REPRESENT, "--out", "notes.txt/sub"],
     "is a file, not a folder"),
    ("represent --cache-dir a file", ["represent", "ds", "--model", DIAMOND, "--out", "o",
                                      "--cache-dir", "notes.txt"], "is a file, not a folder"),
    ("represent, a conflicting subfolder", [*REPRESENT, "--out", "clash"],
     "mmattr did not write"),
    ("represent -k abc", [*REPRESENT, "--out", "o", "-k", "abc"], "'-k'"),
    ("represent -k 0", [*REPRESENT, "--out", "o", "-k", "0"], "at least 1"),
    ("audit --out a folder of the user's", [*AUDIT, "--out", "mine"], "mmattr did not write"),
    ("audit --out the dataset", [*AUDIT, "--out", "ds"], "inside the dataset folder"),
    ("audit --explain-budget -1", ["audit", "ds", "--explain-budget", "-1", "--out", "o"],
     "--explain-budget"),
    ("audit --regions 1", ["audit", "ds", "--regions", "1", "--out", "o"], "--regions"),
    ("audit, a manifest that is a folder", ["audit", "bad", "--out", "o"], "is not a file"),
    ("audit, an unknown option", ["audit", "ds", "--budget", "3"], "No such option"),
    ("evaluate --out a folder of the user's", ["evaluate", "ds", *EVAL, "--out", "mine"],
     "mmattr did not write"),
    ("evaluate --out .", ["evaluate", "ds", *EVAL, "--out", "."], "mmattr did not write"),
    ("evaluate --out the dataset", ["evaluate", "ds", *EVAL, "--out", "ds"],
     "inside the dataset folder"),
    ("evaluate --steps abc", ["evaluate", "ds", "--steps", "abc"], "--steps"),
    ("evaluate, a manifest that is a folder", ["evaluate", "bad", *EVAL, "--out", "o"],
     "is not a file"),
    ("explain, a missing argument", ["explain"], "missing IMAGE"),
    ("dataset shapes into a file", ["dataset", "shapes", "notes.txt", "--n", "2"],
     "is a file, not a folder"),
    ("dataset shapes into a folder of the user's", ["dataset", "shapes", "mine", "--n", "2"],
     "mmattr did not write"),
    ("dataset shapes --n 0", ["dataset", "shapes", "new", "--n", "0"], "--n"),
    ("demo-model train --steps 0", ["demo-model", "train", "--steps", "0", "--out", "m"],
     "--steps must be at least 1, got 0"),
    ("demo-model train --steps -5", ["demo-model", "train", "--steps", "-5", "--out", "m"],
     "--steps must be at least 1, got -5"),
    ("demo-model train --threads 0", ["demo-model", "train", "--threads", "0", "--out", "m"],
     "--threads must be at least 1"),
    ("demo-model train --out a file", ["demo-model", "train", "--steps", "1", "--out",
                                       "notes.txt"], "is a file, not a folder"),
    ("demo-model train --out a folder of the user's", ["demo-model", "train", "--steps", "1",
                                                       "--out", "mine"], "mmattr did not write"),
    ("demo-model train --steps abc", ["demo-model", "train", "--steps", "abc"], "--steps"),
]


@pytest.mark.parametrize("case,args,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(world, case, args, expect):
    before = snapshot(world)
    one_line(invoke(world, args), expect)
    assert snapshot(world) == before, f"{case}: something changed"


@pytest.mark.parametrize("command", ["represent", "evaluate", "audit", "dataset",
                                     "demo-model train"])
def test_a_read_only_place(world, command):
    args = {"represent": REPRESENT, "evaluate": ["evaluate", "ds", *EVAL], "audit": AUDIT,
            "dataset": ["dataset", "shapes", "--n", "2"],
            "demo-model train": ["demo-model", "train", "--steps", "1"]}[command]
    if command == "dataset":
        check_read_only_place(world, lambda out: invoke(world, [*args, out]))
    else:
        check_read_only_place(world, lambda out: invoke(world, [*args, "--out", out]))


# -- masks: one rule in every command ----------------------------------------------------------

def _mask_variants(world: Path) -> dict[str, Path]:
    """The same objects' masks written as 0/255 gray, 0/1 gray, red on black RGB, a palette."""
    base = world / "ds"
    lines = [json.loads(x) for x in (base / "manifest.jsonl").read_text().splitlines()]
    out = {}
    for kind in ("gray255", "gray01", "red", "palette"):
        d = world / f"ds-{kind}"
        shutil.copytree(base, d)
        for x in lines:
            m = np.asarray(Image.open(base / x["mask"])) > 0
            p = d / x["mask"]
            if kind == "gray01":
                Image.fromarray(m.astype(np.uint8)).save(p)
            elif kind == "red":
                rgb = np.zeros((*m.shape, 3), np.uint8)
                rgb[m, 0] = 200
                Image.fromarray(rgb).save(p)
            elif kind == "palette":
                img = Image.fromarray(m.astype(np.uint8), mode="L").convert("P")
                img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
                img.save(p)
        out[kind] = d
    return out


def test_masks_read_alike_in_evaluate(world):
    """0/1 and red-on-black masks score like 0/255 ones (they used to read as empty: every
    pointing and IoU 0.0000)."""
    scores = {}
    for kind, data in _mask_variants(world).items():
        r = invoke(world, ["evaluate", str(data), *EVAL, "--out", f"ev-{kind}"])
        assert r.exit_code == 0, r.output
        from mmattr.evaluate import read_results

        recs = sorted(read_results(world / f"ev-{kind}"), key=lambda x: x["image"])
        scores[kind] = [(x["metrics"]["pointing"], x["metrics"]["iou"]) for x in recs]
    assert scores["gray255"] == scores["gray01"] == scores["red"] == scores["palette"]
    assert any(iou > 0 for _, iou in scores["gray255"])


def test_mask_rule_known_answers(tmp_path):
    from mmattr.runs.dataset import ItemError, load_mask

    m = np.zeros((4, 5), np.uint8)
    m[1:3, 2:4] = 1
    want = m.astype(bool)
    cases = {"01.png": Image.fromarray(m), "0255.png": Image.fromarray(m * 255),
             "16bit.png": Image.fromarray(m.astype(np.uint16) * 300),
             "red.png": Image.fromarray(np.stack([m * 9, 0 * m, 0 * m], -1)),
             "rgba.png": Image.fromarray(np.stack([m * 9, 0 * m, 0 * m, 255 + 0 * m], -1)
                                         .astype(np.uint8)),
             "bilevel.png": Image.fromarray(m.astype(bool))}
    for name, img in cases.items():
        img.save(tmp_path / name)
        np.testing.assert_array_equal(load_mask(tmp_path / name, (4, 5)), want, err_msg=name)
    with pytest.raises(ItemError, match="is 5x4, its image 37x10"):
        load_mask(tmp_path / "01.png", (10, 37))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ItemError, match="cannot read mask"):
        load_mask(tmp_path / "broken.png", (4, 5))


def _break_masks(world: Path) -> tuple[Path, list[dict]]:
    """A copy of the dataset whose second mask is 10×37 and third corrupt."""
    d = world / "ds-badmasks"
    shutil.copytree(world / "ds", d)
    lines = [json.loads(x) for x in (d / "manifest.jsonl").read_text().splitlines()]
    Image.new("L", (10, 37), 255).save(d / lines[1]["mask"])
    (d / lines[2]["mask"]).write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    return d, lines


def test_bad_masks_are_bad_items_in_evaluate(world):
    data, lines = _break_masks(world)
    r = invoke(world, ["evaluate", str(data), *EVAL, "--out", "ev"])
    assert r.exit_code == 0 and "2 items skipped" in r.output, r.output
    summary = (world / "ev" / "summary.md").read_text()
    assert "Skipped items: 2" in summary
    assert f"- {lines[1]['image']} (manifest line 2): mask " in summary and "10x37" in summary
    assert f"- {lines[2]['image']} (manifest line 3): cannot read mask" in summary


def test_bad_masks_are_bad_items_in_represent_and_encoding(world):
    from mmattr.representative.run import load_references
    from mmattr.runs import read_dataset

    data, lines = _break_masks(world)
    images, _, ids, notes = load_references(data)
    assert len(images) == 2 and lines[1]["image"] not in ids and lines[2]["image"] not in ids
    assert len(notes) == 2 and any("10x37" in n for n in notes)
    # the audit's encoding stage reads masks by the same rule: the same two are bad
    from mmattr.runs import EmbeddingCache, encode_items

    enc = encode_items(TOY.ColourAdapter(), read_dataset(data).items,
                       cache=EmbeddingCache(world / "cache"))
    assert sorted(b.image for b in enc.bad) == sorted([lines[1]["image"], lines[2]["image"]])
    assert len(enc.items) == 2

def test_symlink_loop_in_an_imagefolder(tmp_path):
    """`selfdir -> .` inside a class and `up -> ..` at the top add nothing: 21 files are 21
    images (it used to be 101, one of them 41 times)."""
    from mmattr.runs import read_dataset

    root = tmp_path / "folders"
    for k in range(21):
        d = root / ("a" if k < 11 else "b")
        d.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (k * 10, 0, 0)).save(d / f"{k}.png")
    (root / "a" / "selfdir").symlink_to(".")
    (root / "b" / "up").symlink_to("..")
    (root / "loop").symlink_to(".")  # a class that is the dataset itself
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(outside / "far.png")
    (root / "b" / "far").symlink_to(outside)  # outside the dataset: followed once
    (root / "b" / "far2").symlink_to(outside)
    (root / "b" / "again.png").symlink_to(root / "a" / "0.png")  # a file twice: read once
    data = read_dataset(root)
    assert data.classes == ["a", "b"]
    assert len(data.items) == 22 and len({os.path.realpath(it.path) for it in data.items}) == 22
    assert data.linked_twice == 1


# -- the audit -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audit-set") / "ds"
    export_dataset(root, n_scenes=16, seed=5, size=32, n_objects=(1, 1))
    return root


def test_audit_label_outside_the_models_vocabulary(small_set, tmp_path):
    d = tmp_path / "ds"
    shutil.copytree(small_set, d)
    lines = [json.loads(x) for x in (d / "manifest.jsonl").read_text().splitlines()]
    lines[0]["label"] = "a purple dragon"
    (d / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    before = snapshot(d)
    text = one_line(invoke(tmp_path, ["audit", "ds", "--out", "o", "--explain-budget", "0"],
                           env={"MMATTR_CACHE": str(tmp_path / "cache")}),
                    "'a purple dragon' is not in the vocabulary of model demo")
    assert "--vocabulary" in text
    assert snapshot(d) == before and not (tmp_path / "o").exists()


def test_audit_bad_masks_skipped_and_listed_all_white_is_fine(small_set, tmp_path):
    """A 10×37 mask and a corrupt one are bad items, skipped and counted (never resized or
    silently dropped); an all-white mask on an explained image is a valid mask."""
    import mmattr
    from mmattr.audit import AuditSettings

    d = tmp_path / "ds"
    shutil.copytree(small_set, d)
    lines = [json.loads(x) for x in (d / "manifest.jsonl").read_text().splitlines()]
    Image.new("L", (10, 37), 255).save(d / lines[1]["mask"])
    (d / lines[2]["mask"]).write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    for x in lines[3:]:
        Image.new("L", (32, 32), 255).save(d / x["mask"])  # every other object fills its image
    r = mmattr.audit(d, "demo", out=tmp_path / "out", explain_budget=2,
                     settings=AuditSettings(cache_dir=str(tmp_path / "cache"), explain_regions=9))
    skipped = {s["image"]: s["reason"] for s in r.summary["skipped"]}
    assert set(skipped) == {lines[1]["image"], lines[2]["image"]}
    assert "10x37" in skipped[lines[1]["image"]]
    assert r.summary["accuracy"]["n"] == 14 and r.summary["occlusion"]["n"] == 14
    assert len(r.summary["explanations"]) == 2


def test_audit_refuses_another_dataset_model_or_setting(small_set, tmp_path):
    """Another dataset, model or region count in an audit's --out is refused without
    --overwrite even when it holds no explanation yet."""
    env = {"MMATTR_CACHE": str(tmp_path / "cache")}
    other = tmp_path / "other"
    shutil.copytree(small_set, other)
    r = invoke(tmp_path, ["audit", str(small_set), "--out", "o", "--explain-budget", "0"], env)
    assert r.exit_code == 0, r.output
    assert not list((tmp_path / "o").glob("explanations*.jsonl"))
    before = snapshot(tmp_path / "o")
    for args, what in ((["audit", "other", "--out", "o"], "dataset"),
                       (["audit", str(small_set), "--out", "o", "--model", "demo-biased"],
                        "model"),
                       (["audit", str(small_set), "--out", "o", "--regions", "16"],
                        "explain_regions")):
        text = one_line(invoke(tmp_path, [*args, "--explain-budget", "0"], env), "other settings")
        assert what in text and "--overwrite" in text
    assert snapshot(tmp_path / "o") == before


def test_audit_redoes_explanations_of_edited_images(small_set, tmp_path):
    import mmattr
    from mmattr.audit import AuditSettings
    from mmattr.runs import file_digest

    d = tmp_path / "ds"
    shutil.copytree(small_set, d)
    settings = AuditSettings(cache_dir=str(tmp_path / "cache"), explain_regions=9)
    first = mmattr.audit(d, "demo", out=tmp_path / "o", explain_budget=2, settings=settings)
    explained = [e["image"] for e in first.summary["explanations"]]
    assert explained
    for rel in explained:  # new pixels at the same paths
        Image.fromarray(render_scene(np.random.default_rng(99), size=32, n_objects=1).image) \
            .save(d / rel)
    second = mmattr.audit(d, "demo", out=tmp_path / "o", explain_budget=2, settings=settings)
    records = [json.loads(x) for f in sorted((tmp_path / "o").glob("explanations*.jsonl"))
               for x in f.read_text().splitlines()]
    from mmattr.runs.dataset import combine_digests

    lines = {json.loads(x)["image"]: json.loads(x)
             for x in (d / "manifest.jsonl").read_text().splitlines()}
    for e in second.summary["explanations"]:
        x = lines[e["image"]]
        now = combine_digests(file_digest(d / x["image"]), file_digest(d / x["mask"]))
        used = [r for r in records if r["item"].startswith(json.dumps([x["image"]])[:-1])
                and r["digest"] == now]
        assert {r["task"] for r in used} >= {"predicted", "true"}, e["image"]
        assert e["predicted"]["insertion_auc"] == next(
            r for r in used if r["task"] == "predicted")["insertion_auc"]


# -- evaluate ------------------------------------------------------------------------------

def test_evaluate_redoes_edited_images_and_refuses_another_dataset(world):
    from mmattr.evaluate import read_results

    data = world / "ds-edit"
    shutil.copytree(world / "ds", data)
    r = invoke(world, ["evaluate", str(data), *EVAL, "--out", "ev"])
    assert r.exit_code == 0 and "4 new, 0 already done" in r.output, r.output
    lines = [json.loads(x) for x in (data / "manifest.jsonl").read_text().splitlines()]
    old = {x["image"]: x["metrics"]["iou"] for x in read_results(world / "ev")}
    # the first image's mask moves to the opposite corner: a fresh IoU, not the stored one
    m = np.asarray(Image.open(data / lines[0]["mask"])) > 0
    Image.fromarray((np.rot90(m, 2) * 255).astype(np.uint8)).save(data / lines[0]["mask"])
    r = invoke(world, ["evaluate", str(data), *EVAL, "--out", "ev"])
    assert r.exit_code == 0 and "1 new, 3 already done" in r.output, r.output
    rows = (world / "ev" / "results.csv").read_text().splitlines()
    assert len(rows) == 5  # the stale record is not reported beside the fresh one
    fresh = {}
    r2 = invoke(world, ["evaluate", str(data), *EVAL, "--out", "ev-fresh"])
    assert r2.exit_code == 0
    fresh = {x["image"]: x["metrics"]["iou"] for x in read_results(world / "ev-fresh")}
    import csv

    got = {row["image"]: float(row["iou"]) for row in csv.DictReader(
        open(world / "ev" / "results.csv"))}
    assert got == pytest.approx(fresh) and got[lines[0]["image"]] != pytest.approx(
        old[lines[0]["image"]])
    # another dataset into the same --out: refused, nothing mixed
    before = snapshot(world / "ev")
    text = one_line(invoke(world, ["evaluate", "ds", *EVAL, "--out", "ev"]), "other settings")
    assert "dataset" in text
    assert snapshot(world / "ev") == before


def test_dataset_shapes_rerun_and_overwrite(tmp_path):
    r = invoke(tmp_path, ["dataset", "shapes", "d", "--n", "2", "--size", "16"])
    assert r.exit_code == 0, r.output
    again = invoke(tmp_path, ["dataset", "shapes", "d", "--n", "2", "--size", "16"])
    assert again.exit_code == 0 and "already holds" in again.output
    (tmp_path / "d" / "notes.txt").write_text("mine")
    one_line(invoke(tmp_path, ["dataset", "shapes", "d", "--n", "3", "--size", "16"]),
             "other settings (n)")
    r = invoke(tmp_path, ["dataset", "shapes", "d", "--n", "1", "--size", "16", "--overwrite"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "d" / "images").iterdir()) == ["00000.png"]
    assert (tmp_path / "d" / "notes.txt").read_text() == "mine"
