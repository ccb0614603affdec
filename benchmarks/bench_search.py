"""Benchmark of the SMDL search strategies: passes, time against the encoder's floor, AUCs, memory.

Prints a markdown table (and writes it with --out). Not a test: run it by hand, e.g.

    python benchmarks/bench_search.py --models demo vitb32 --scenes 20 --images 3 \\
        --out benchmarks/results/search_cpu.md

Three more tables (issue 20), chosen with --table:

Both models explain the scene's first caption with the 36 captions (``shapes``) as the
vocabulary (the demo's own; given to the ViT), so every curve is the target's probability.

- ``worst``: per model, score and strategy, the mean and worst per-scene difference to the
  exact greedy's insertion and deletion AUC, and the passes, on --scenes scenes of each
  renderer (datasets.shapes and datasets.altshapes; seeds from --seed) for the demo model and
  ``vit`` (the project's own earlier ViT CLIP, 128 px, patch 16, 4 layers, 0.675 zero-shot
  accuracy, read from git history: commit 7f3ed05, or --vit-folder).
- ``specificity``: two objects of one image explained in turn, by score: shared top-5
  regions, the share of the top-5 regions' area inside the named object, top-1 on it.
- ``reference``: like for like against the reference SMDL implementation (the folder holding
  its ``models/submodular_vit_torch.py``, --reference DIR; the table is skipped without it):
  the same SLICO regions, its scoring (raw prompts, logit scale 100, probability over the
  36 captions, λ = 0, 0.05, 1, 1), one image after another in this process; seconds per
  image, passes, insertion and deletion AUC from each search's own scores.

Columns, per model, N and strategy (means over the images):
- N: mean number of regions the division produced (SLICO asks for about N, never more)
- passes: forward passes per image (search + region embeddings + the curves' two end points)
- s/img: wall seconds per explanation (division, preparation, search, curves)
- floor s: passes / (the encoder's own images per second at the same batch size)
- overhead: s/img / floor s (1.0 = nothing but forward passes)
- enc s: seconds spent inside the encoder during the explanation; s/enc: s/img / enc s, the
  overhead against the encoder's own time at the batch sizes the search really used
- ins / del: insertion / deletion AUC from the search's own prefixes
- Δins: ins minus exact's on the same images; top5: overlap of the first 5 regions with exact's
- peak MB: highest RSS growth during one explanation, sampled every millisecond

Ref. Chen et al., "Less is More", ICLR 2024 (SMDL); Mirzasoleiman et al., AAAI 2015; LiMA,
arXiv 2504.00470; Minoux 1978 (lazy greedy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmattr.adapters import load_adapter  # noqa: E402
from mmattr.adapters._preprocess import Preprocess  # noqa: E402
from mmattr.adapters.base import Adapter  # noqa: E402
from mmattr.config import ExplainConfig  # noqa: E402
from mmattr.datasets.shapes import render_scene  # noqa: E402
from mmattr.explainers.smdl import SMDLExplainer  # noqa: E402
from mmattr.search import config_changes  # noqa: E402
from mmattr.targets import Target  # noqa: E402

DEFAULT_STRATEGIES = ["exact", "lazy", "lazy:batch=2", "lazy:batch=8", "stochastic",
                      "stochastic:epsilon=0.001", "bidirectional"]


class _RandomViTB32(Adapter):
    """A CLIP ViT-B/32 vision tower (and projection) with random weights, 224² input."""

    def __init__(self) -> None:
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        torch.manual_seed(0)
        cfg = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                               num_attention_heads=12, image_size=224, patch_size=32,
                               projection_dim=512)
        self.model = CLIPVisionModelWithProjection(cfg).eval().requires_grad_(False)
        self.spec = "random-clip-vit-b32"
        self.device = torch.device("cpu")
        self.preprocess = Preprocess(shortest_edge=224, resize_hw=None, crop_hw=(224, 224),
                                     mean=(0.4815, 0.4578, 0.4082), std=(0.2686, 0.2613, 0.2758))

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).image_embeds


class _PeakRSS:
    """Highest resident-set growth while the block runs, sampled on a thread."""

    def __enter__(self):
        import ctypes

        import psutil

        try:  # hand freed heap back to the OS, so growth is measured from a clean baseline
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass

        self._proc = psutil.Process()
        self.start = self._proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def mb(self) -> float:
        return (self.peak - self.start) / 2**20


def _parse(spec: str) -> tuple[str, dict]:
    """``lazy:batch=8,guard=false`` → ("lazy", {"batch": "8", "guard": "false"}): strings, the
    search's declared options convert and check them (as for ``-O``)."""
    name, _, opts = spec.partition(":")
    options = {}
    for part in filter(None, opts.split(",")):
        key, _, value = part.partition("=")
        options[key] = value
    return name, options


def _throughput(adapter: Adapter, batch: int, seconds: float = 2.0) -> float:
    """The encoder's own images per second at `batch` images per call (the floor)."""
    h, w = adapter.preprocess.output_hw
    x = torch.randn(batch, 3, h, w, device=adapter.device)
    with torch.inference_mode():
        adapter.encode_images(x)
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or done < 3 * batch:
            adapter.encode_images(x)
            done += batch
    return done / (time.perf_counter() - t0)


def _cases(model: str, count: int, seed0: int):
    for i in range(count):
        scene = render_scene(seed0 + i, size=224)
        if model == "demo":
            yield scene.image, Target.from_text(scene.labels[0])
        else:
            yield scene.image, None


class _EncoderClock:
    """Adds up the seconds spent inside the encoder (synchronous on the CPU)."""

    def __init__(self, adapter: Adapter) -> None:
        self.seconds = 0.0
        inner = adapter.encode_images

        def timed(pixels):
            t0 = time.perf_counter()
            out = inner(pixels)
            self.seconds += time.perf_counter() - t0
            return out

        adapter.encode_images = timed


def _run_model(model: str, args, rows: list[dict]) -> dict:
    adapter = load_adapter("demo") if model == "demo" else _RandomViTB32()
    clock = _EncoderClock(adapter)
    caps = dict(tuple(int(v) for v in c.split("=")) for c in args.cap) if model == "demo" else {}
    count = args.scenes if model == "demo" else args.images
    info = {"model": adapter.spec, "images": count}
    before = _throughput(adapter, BATCH)
    for n in (args.vitb_regions or args.regions) if model != "demo" else args.regions:
        cfg = ExplainConfig(model=adapter.spec, regions=n, batch_size=args.batch_size,
                            division="slico")
        for i, (image, target) in enumerate(_cases(model, caps.get(n, count), args.seed)):
            if target is None:  # random weights: explain the image's match with itself
                with torch.inference_mode():
                    emb = adapter.encode_images(adapter.preprocess(torch.from_numpy(image)[None]))
                target = Target.from_options(embedding=emb[0].numpy())
            for spec in args.strategies:
                name, options = _parse(spec)
                if model != "demo" and (f"{n}:{spec}" in args.vitb_skip or (
                        f"{n}:{spec}" in args.vitb_first_only and i > 0)):
                    continue
                if model == "demo" and f"{n}:{spec}" in args.demo_skip:
                    continue
                clock.seconds = 0.0
                with _PeakRSS() as mem:
                    # the strategy's options reach the explainer through its settings
                    e = SMDLExplainer(cfg.replace(**config_changes(name, options))).explain(
                        image, target, adapter)
                rows.append({"model": model, "N": n, "strategy": spec, "image": i,
                             "regions": e.n_regions, "passes": e.forward_passes,
                             "seconds": e.seconds, "search_s": e.timings["search"],
                             "encoder_s": clock.seconds,
                             "ins": e.insertion_auc, "del": e.deletion_auc, "order": e.order,
                             "mb": mem.mb})
                if args.rows:  # every row as it comes, so an interrupted run keeps its results
                    with args.rows.open("a") as fh:
                        fh.write(json.dumps({**rows[-1], "throughput": before}) + "\n")
                print(f"# {model} N={n} img={i} {spec}: {e.forward_passes} passes "
                      f"{e.seconds:.2f}s ins {e.insertion_auc:.4f}", file=sys.stderr, flush=True)
    # Measured before and after (the machine is shared): the floor uses the faster one.
    after = _throughput(adapter, BATCH)
    info["throughput"] = max(before, after)
    info["throughput_range"] = (min(before, after), max(before, after))
    return info


def _table(rows: list[dict], infos: dict[str, dict], strategies: list[str]) -> str:
    out = []
    for model, info in infos.items():
        ips = info["throughput"]
        lo, hi = info["throughput_range"]
        out.append(f"\n### {info['model']} ({info['images']} images; encoder alone "
                   f"{lo:.1f} to {hi:.1f} images/s at batch {BATCH}, floor uses {hi:.1f})\n")
        out.append("| N | strategy | images | regions | passes | ×fewer | s/img | floor s | overhead | "
                   "enc s | s/enc | ins | Δins | del | top5 | peak MB |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        sel = [r for r in rows if r["model"] == model]
        for n in sorted({r["N"] for r in sel}):
            exact = {r["image"]: r for r in sel if r["N"] == n and r["strategy"] == "exact"}
            for spec in strategies:
                rs = [r for r in sel if r["N"] == n and r["strategy"] == spec]
                if not rs:
                    continue
                passes = np.mean([r["passes"] for r in rs])
                secs = np.mean([r["seconds"] for r in rs])
                floor = passes / ips
                enc = np.mean([r["encoder_s"] for r in rs])
                paired = [r for r in rs if r["image"] in exact]
                ex_passes = np.mean([exact[r["image"]]["passes"] for r in paired]) if paired else np.nan
                fewer = ex_passes / np.mean([r["passes"] for r in paired]) if paired else np.nan
                dins = (np.mean([r["ins"] - exact[r["image"]]["ins"] for r in paired])
                        if paired else np.nan)
                top5 = (np.mean([len(set(r["order"][:5]) & set(exact[r["image"]]["order"][:5])) / 5
                                 for r in paired]) if paired else np.nan)
                out.append(
                    f"| {n} | {spec} | {len(rs)} | {np.mean([r['regions'] for r in rs]):.1f} | "
                    f"{passes:.0f} | {fewer:.2f} | {secs:.3f} | {floor:.3f} | {secs / floor:.2f} | "
                    f"{enc:.3f} | {secs / enc:.2f} | "
                    f"{np.mean([r['ins'] for r in rs]):.4f} | {dins:+.4f} | "
                    f"{np.mean([r['del'] for r in rs]):.4f} | {top5:.2f} | "
                    f"{np.max([r['mb'] for r in rs]):.0f} |")
    return "\n".join(out)


# -- issue 20: worst cases, prompt specificity, the reference --------------------------------

#: the commit whose mmattr/demo_model/weights/ held the project's earlier ViT CLIP
VIT_COMMIT = "7f3ed05"
WORST_STRATEGIES = ["exact", "lazy", "lazy:guard=false", "stochastic", "stochastic:guard=true",
                    "bidirectional", "beam"]


def _vit_folder(args) -> Path:
    """The earlier demo ViT CLIP as a transformers folder: --vit-folder, or written from git
    history into a temporary folder (no download; the weights are in the repository's past)."""
    import subprocess
    import tempfile

    if args.vit_folder:
        return args.vit_folder
    root = Path(__file__).resolve().parents[1]
    folder = Path(tempfile.gettempdir()) / f"mmattr-vit-clip-{VIT_COMMIT}"
    if (folder / "model.safetensors").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    names = subprocess.run(["git", "-C", str(root), "ls-tree", "--name-only", VIT_COMMIT,
                            "mmattr/demo_model/weights/"], capture_output=True, text=True,
                           check=True).stdout.split()
    for name in names:
        blob = subprocess.run(["git", "-C", str(root), "show", f"{VIT_COMMIT}:{name}"],
                              capture_output=True, check=True).stdout
        (folder / Path(name).name).write_bytes(blob)
    return folder


def _model(name: str, args) -> Adapter:
    if name == "demo":
        return load_adapter("demo", cache=None)
    return load_adapter(f"hf:{_vit_folder(args)}", cache=None)


def _scene(renderer: str, seed: int, n_objects: int | None = None):
    from mmattr.datasets.altshapes import render_alt_scene

    render = render_scene if renderer == "shapes" else render_alt_scene
    return render(seed, size=224, n_objects=n_objects)


def _done(path: Path | None) -> dict[str, dict]:
    if path is None or not path.is_file():
        return {}
    return {r["key"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def _keep(path: Path | None, row: dict) -> None:
    if path is not None:
        with path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


def _load_note() -> str:
    try:
        return "load average %.2f, %.2f, %.2f" % os.getloadavg()
    except OSError:
        return "load average unknown"


def _worst(args) -> str:
    rows = _done(args.rows)
    strategies = args.strategies if args.strategies != DEFAULT_STRATEGIES else WORST_STRATEGIES
    if "exact" not in strategies:
        strategies = ["exact", *strategies]
    for model in args.models:
        adapter = _model(model, args)
        for renderer in args.renderers:
            for seed in range(args.seed, args.seed + args.scenes):
                scene = _scene(renderer, seed)
                target = Target.from_text(scene.labels[0])
                for score in args.scores:
                    for spec in strategies:
                        key = f"{model}|{renderer}|{seed}|{score}|{spec}"
                        if key in rows:
                            continue
                        name, options = _parse(spec)
                        cfg = ExplainConfig(model=adapter.spec, regions=49, score=score,
                                            vocabulary="shapes", batch_size=args.batch_size,
                                            seed=seed, **config_changes(name, options))
                        e = SMDLExplainer(cfg).explain(scene.image, target, adapter)
                        row = {"key": key, "model": model, "renderer": renderer, "seed": seed,
                               "score": score, "strategy": spec, "ins": e.insertion_auc,
                               "del": e.deletion_auc, "passes": e.forward_passes,
                               "seconds": e.seconds, "regions": e.n_regions,
                               "score_used": e.settings["score_used"]}
                        rows[key] = row
                        _keep(args.rows, row)
                        print(f"# {key}: {e.forward_passes} passes ins {e.insertion_auc:.4f}",
                              file=sys.stderr, flush=True)
    return _worst_markdown(list(rows.values()), strategies)


def _worst_markdown(rows: list[dict], strategies: list[str]) -> str:
    out = ["| model | score | strategy | scenes | passes | ×fewer | mean Δins | worst Δins | "
           "scenes Δins < −0.05 | mean Δdel | worst Δdel |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        for score in dict.fromkeys(r["score"] for r in rows):
            exact = {(r["renderer"], r["seed"]): r for r in rows if r["model"] == model
                     and r["score"] == score and r["strategy"] == "exact"}
            for spec in strategies:
                sel = [r for r in rows if r["model"] == model and r["score"] == score
                       and r["strategy"] == spec and (r["renderer"], r["seed"]) in exact]
                if not sel:
                    continue
                ref = [exact[(r["renderer"], r["seed"])] for r in sel]
                dins = np.array([r["ins"] - e["ins"] for r, e in zip(sel, ref)])
                ddel = np.array([r["del"] - e["del"] for r, e in zip(sel, ref)])
                passes = np.mean([r["passes"] for r in sel])
                worst = sel[int(np.argmin(dins))]
                out.append(
                    f"| {model} | {score} | {spec} | {len(sel)} | {passes:.0f} | "
                    f"{np.mean([e['passes'] for e in ref]) / passes:.2f} | {dins.mean():+.4f} | "
                    f"{dins.min():+.3f} ({worst['renderer']} {worst['seed']}) | "
                    f"{int((dins < -0.05).sum())} | {ddel.mean():+.4f} | {ddel.max():+.3f} |")
    return "\n".join(out)


def _specificity(args) -> str:
    rows = _done(args.rows)
    scores = args.scores
    for model in args.models:
        adapter = _model(model, args)
        for renderer in args.renderers:
            for seed in range(args.seed, args.seed + args.scenes):
                scene = _scene(renderer, seed, n_objects=2)
                for score in scores:
                    key = f"spec|{model}|{renderer}|{seed}|{score}"
                    if key in rows:
                        continue
                    cfg = ExplainConfig(model=adapter.spec, score=score, vocabulary="shapes",
                                        batch_size=args.batch_size)
                    found = []
                    for label, mask in zip(scene.labels, scene.masks):
                        e = SMDLExplainer(cfg).explain(scene.image, Target.from_text(label),
                                                       adapter)
                        top = np.isin(e.regions, e.order[:5])
                        first = e.regions == e.order[0]
                        found.append({"top5": e.order[:5], "area": float((top & mask).sum()
                                                                          / top.sum()),
                                      "top1_on": float((first & mask).sum() / first.sum()) >= 0.5,
                                      "ins": e.insertion_auc, "used": e.settings["score_used"]})
                    row = {"key": key, "model": model, "renderer": renderer, "seed": seed,
                           "score": score, "used": found[0]["used"],
                           "shared": len(set(found[0]["top5"]) & set(found[1]["top5"])),
                           "area": np.mean([f["area"] for f in found]),
                           "top1_on": np.mean([f["top1_on"] for f in found]),
                           "ins": np.mean([f["ins"] for f in found])}
                    rows[key] = row
                    _keep(args.rows, row)
                    print(f"# {key}: shared {row['shared']}", file=sys.stderr, flush=True)
    out = ["| model | renderer | score (used) | scenes | shared top-5 regions (mean) | "
           "scenes sharing ≥ 2 | top-5 area in the named object | top-1 on it | insertion AUC |",
           "|---|---|---|---|---|---|---|---|---|"]
    sel_all = list(rows.values())
    for model in dict.fromkeys(r["model"] for r in sel_all):
        for renderer in [*dict.fromkeys(r["renderer"] for r in sel_all), "both"]:
            for score in dict.fromkeys(r["score"] for r in sel_all):
                sel = [r for r in sel_all if r["model"] == model and r["score"] == score
                       and renderer in (r["renderer"], "both")]
                if not sel:
                    continue
                used = "/".join(sorted({r["used"] for r in sel}))
                out.append(
                    f"| {model} | {renderer} | {score} ({used}) | {len(sel)} | "
                    f"{np.mean([r['shared'] for r in sel]):.2f} | "
                    f"{sum(r['shared'] >= 2 for r in sel)} | "
                    f"{np.mean([r['area'] for r in sel]):.3f} | "
                    f"{np.mean([r['top1_on'] for r in sel]):.2f} | "
                    f"{np.mean([r['ins'] for r in sel]):.3f} |")
    return "\n".join(out)


class _ReferenceModel(torch.nn.Module):
    """What the reference's CLIP scripts hand it: images → unit-norm image features; counts
    the images it encodes (its passes)."""

    def __init__(self, adapter: Adapter) -> None:
        super().__init__()
        self.adapter = adapter
        self.passes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes += int(x.shape[0])
        with torch.inference_mode():
            return torch.nn.functional.normalize(self.adapter.encode_images(x).float(), dim=-1)


def _reference(args) -> str:
    import copy
    import importlib.util

    from mmattr.api import with_templates
    from mmattr.datasets.shapes import captions
    from mmattr.division import make_divider
    from mmattr.metrics import auc

    path = args.reference / "models" / "submodular_vit_torch.py" if args.reference else None
    if path is None or not path.is_file():
        print("# reference table skipped: pass --reference DIR, the folder holding the "
              "reference's models/submodular_vit_torch.py", file=sys.stderr)
        return ""
    os.environ.setdefault("TQDM_DISABLE", "1")  # its per-step progress bar, not our output
    spec = importlib.util.spec_from_file_location("smdl_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]

    # Like for like: raw prompts (no templates), logit scale 100, the 36 captions.
    adapter = copy.copy(with_templates(_model(args.reference_model, args), "none"))
    adapter.logit_scale = 100.0
    names = captions()
    vocab_file = Path(tempfile_dir()) / "captions36.txt"
    vocab_file.write_text("\n".join(names) + "\n")
    with torch.inference_mode():
        vocab = adapter.class_embeddings(names).float()
    ref_model = _ReferenceModel(adapter)

    def preprocess(image: np.ndarray) -> torch.Tensor:
        return adapter.preprocess(torch.from_numpy(np.ascontiguousarray(image))[None])[0]

    rows = _done(args.rows)
    strategies = args.strategies if args.strategies != DEFAULT_STRATEGIES else [
        "exact", "lazy", "lazy:guard=false"]
    for seed in range(args.seed, args.seed + args.scenes):
        scene = _scene("altshapes", seed)
        label = scene.labels[0]
        labels = make_divider("slico", 49).divide(scene.image)
        area = np.bincount(labels.ravel(), minlength=labels.max() + 1) / labels.size
        key = f"ref|{args.reference_model}|{seed}|reference"
        if key not in rows:
            regions = [scene.image * (labels == i)[..., None] for i in range(labels.max() + 1)]
            smdl = module.MultiModalSubModularExplanation(
                ref_model, 100.0 * vocab, preprocess, k=len(regions), lambda1=0.0,
                lambda2=0.05, lambda3=1.0, lambda4=1.0, device="cpu")
            inner = smdl.get_merge_set
            order: list[int] = []

            def record(partition, inner=inner, order=order):
                # It returns images; the ids of its ordering are what get_merge_set returns.
                found = inner(partition)
                order.extend(int(i) for i in found)
                return found

            smdl.get_merge_set = record
            ref_model.passes = 0
            t0 = time.perf_counter()
            _, _, saved = smdl(regions, names.index(label))
            seconds = time.perf_counter() - t0
            # Its own scores give the curves: consistency = p(prefix shown), collaboration =
            # 1 - p(prefix removed); the ends (black, full image) in one extra batch.
            with torch.inference_mode():
                ends = ref_model(torch.stack([preprocess(np.zeros_like(scene.image)),
                                              preprocess(scene.image)]))
                p_ends = (ends @ (100.0 * vocab).T).softmax(-1)[:, names.index(label)].tolist()
            x = np.concatenate([[0.0], np.cumsum(area[order])])
            x[-1] = 1.0
            ins = [p_ends[0], *saved["consistency_score"]]
            dele = [p_ends[1], *(1.0 - np.array(saved["collaboration_score"]))]
            rows[key] = {"key": key, "seed": seed, "strategy": "reference", "seconds": seconds,
                         "passes": ref_model.passes + 2, "ins": auc(x, ins),
                         "del": auc(x, dele)}
            _keep(args.rows, rows[key])
            print(f"# {key}: {seconds:.2f} s, ins {rows[key]['ins']:.4f}", file=sys.stderr,
                  flush=True)
        for spec_ in strategies:
            key = f"ref|{args.reference_model}|{seed}|{spec_}"
            if key in rows:
                continue
            name, options = _parse(spec_)
            cfg = ExplainConfig(model=adapter.spec, division="slico", regions=49,
                                score="probability", vocabulary=str(vocab_file),
                                batch_size=args.batch_size, **config_changes(name, options))
            t0 = time.perf_counter()
            e = SMDLExplainer(cfg).explain(scene.image, Target.from_text(label), adapter)
            seconds = time.perf_counter() - t0
            rows[key] = {"key": key, "seed": seed, "strategy": spec_, "seconds": seconds,
                         "passes": e.forward_passes, "ins": e.insertion_auc,
                         "del": e.deletion_auc}
            _keep(args.rows, rows[key])
            print(f"# {key}: {seconds:.2f} s, ins {e.insertion_auc:.4f}", file=sys.stderr,
                  flush=True)
    sel = [r for r in rows.values() if r["key"].startswith(f"ref|{args.reference_model}|")
           and args.seed <= r["seed"] < args.seed + args.scenes]
    ref = [r for r in sel if r["strategy"] == "reference"]
    ref_s = np.mean([r["seconds"] for r in ref])
    out = ["| search | images | s/image | × faster than the reference | passes | insertion AUC | "
           "deletion AUC |", "|---|---|---|---|---|---|---|"]
    for spec_ in ["reference", *strategies]:
        rs = [r for r in sel if r["strategy"] == spec_]
        if rs:
            s_img = np.mean([r["seconds"] for r in rs])
            out.append(f"| {'reference (exact greedy)' if spec_ == 'reference' else 'mmattr ' + spec_} | "
                       f"{len(rs)} | {s_img:.3f} | {ref_s / s_img:.1f} | "
                       f"{np.mean([r['passes'] for r in rs]):.0f} | "
                       f"{np.mean([r['ins'] for r in rs]):.4f} | {np.mean([r['del'] for r in rs]):.4f} |")
    return "\n".join(out)


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


def _cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one) for the tables' headers."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _issue20_table(args, argv) -> str:
    cpu = _cpu_name()
    before = _load_note()
    body = {"worst": _worst, "specificity": _specificity, "reference": _reference}[args.table](args)
    if not body:
        return ""
    header = (f"command: python benchmarks/bench_search.py {' '.join(argv or sys.argv[1:])}\n"
              f"machine: {cpu}, {os.cpu_count()} cores (shared), torch {torch.__version__}, "
              f"{args.threads} thread(s), no GPU; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"{before} before, {_load_note()} after\n")
    return header + "\n" + body + "\n"


BATCH = 64


def main(argv: list[str] | None = None) -> int:
    global BATCH
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["demo", "vitb32"], choices=["demo", "vitb32", "vit"],
                   help="cost: demo, vitb32 (random weights); the issue-20 tables: demo, vit")
    p.add_argument("--scenes", type=int, default=20, help="demo-model scenes")
    p.add_argument("--images", type=int, default=3, help="random ViT-B/32 images")
    p.add_argument("--regions", type=int, nargs="+", default=[25, 49, 100])
    p.add_argument("--strategies", nargs="+", default=DEFAULT_STRATEGIES)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1000, help="first scene seed")
    p.add_argument("--vitb-first-only", nargs="*", default=[],
                   help="N:strategy pairs the ViT-B/32 runs on its first image only (CPU time)")
    p.add_argument("--cap", nargs="*", default=[],
                   help="N=count: the demo model runs only `count` scenes at that N (CPU time)")
    p.add_argument("--demo-skip", nargs="*", default=[],
                   help="N:strategy pairs the demo model does not run")
    p.add_argument("--vitb-skip", nargs="*", default=[],
                   help="N:strategy pairs the ViT-B/32 does not run (CPU time)")
    p.add_argument("--vitb-regions", type=int, nargs="+", default=None,
                   help="N values for the ViT-B/32 (default: --regions)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--table-from", type=Path, nargs="*", default=None,
                   help="print the table of rows saved with --rows instead of measuring")
    p.add_argument("--rows", type=Path, default=None, help="append every measured row (JSONL)")
    p.add_argument("--table", choices=["cost", "worst", "specificity", "reference"], default="cost",
                   help="cost (the default): passes, time, memory; worst / specificity / "
                        "reference: the tables of issue 20 (module docstring)")
    p.add_argument("--renderers", nargs="+", default=["shapes", "altshapes"],
                   choices=["shapes", "altshapes"])
    p.add_argument("--scores", nargs="+", default=["cosine", "probability"],
                   help="worst: SMDL scores (cosine, probability, auto)")
    p.add_argument("--vit-folder", type=Path, default=None,
                   help="the ViT CLIP folder (default: read from git history, commit 7f3ed05)")
    p.add_argument("--reference", type=Path, default=None,
                   help="reference: folder holding the reference's models/submodular_vit_torch.py")
    p.add_argument("--reference-model", default="vit", choices=["demo", "vit"])
    args = p.parse_args(argv)
    BATCH = args.batch_size
    torch.set_num_threads(args.threads)
    if args.table != "cost":
        text = _issue20_table(args, argv)
        print(text)
        if args.out and text:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        return 0
    rows: list[dict] = []
    if args.table_from:  # render rows saved by earlier (possibly interrupted) runs
        rows = [json.loads(line) for f in args.table_from for line in f.read_text().splitlines()]
        infos = {}
        for m in dict.fromkeys(r["model"] for r in rows):
            ips = [r["throughput"] for r in rows if r["model"] == m and r["throughput"]]
            infos[m] = {"model": m, "images": len({r["image"] for r in rows if r["model"] == m}),
                        "throughput": max(ips), "throughput_range": (min(ips), max(ips))}
    else:
        infos = {m: _run_model(m, args, rows) for m in args.models}
    cpu = _cpu_name()
    header = (f"command: python benchmarks/bench_search.py {' '.join(argv or sys.argv[1:])}\n"
              f"machine: {cpu}, {os.cpu_count()} cores (shared), torch {torch.__version__}, "
              f"{args.threads} thread(s), no GPU; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    text = header + "\n" + _table(rows, infos, args.strategies) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
