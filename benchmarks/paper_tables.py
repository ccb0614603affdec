"""The analogues of the SMDL paper's Table 1 and Table 2 and of seed 002's localisation table,
on a seeded held-out synthetic shapes set and the embedded demo model. Rerun it to regenerate
`docs/benchmark/`:

    python benchmarks/paper_tables.py --n 200 --seed 777 --out docs/benchmark

On a machine with several cores or GPUs, shard the scenes over processes (same tables):

    accelerate launch --multi_gpu --num_processes 2 benchmarks/paper_tables.py --n 200 ...

It builds the dataset (`export_dataset(seed=777)`; the demo model trains on seeds 0..), runs
every registered baseline and its "w/ ours" variant (SMDL over the baseline's prior division,
`smdl+prior:<method>`), plus SMDL over SLICO, through `mmattr.evaluate.evaluate_dataset`
(resumable: rerunning continues where it stopped), then writes the tables to
`OUT/paper_tables.md` with the command, the machine and the time it took.

- Table 1 (correctly predicted samples): pixel-level deletion ↓ and insertion ↑ of every map,
  same score (softmax probability over the 36 captions), same steps and fill for all methods;
  SMDL rows also give the region-level AUCs from the search's own scores (the reference's way).
- Table 2 (misclassified samples: the model's top-1 caption is not the line's caption): highest
  ground-truth probability within 25 / 50 / 75 / 100% of the pixels, and insertion.
- Localisation: pointing game, energy pointing game, IoU of the top area (the mask's size).
- Seed 002 analogues (``--road``): ROAD MoRF / LeRF and occlusion of the map's top area.
- The text side (``--text N``): which words of a caption make it match the image. N held-out
  one-object scenes per renderer (``--text-renderers``, none of them the demo's training
  renderer), each captioned with two objects of which the image holds one
  (`mmattr.datasets.two_objects`); every text method (SMDL and the text baselines; a "w/ ours"
  row on a text is SMDL over the same words) explains the caption against the image. Columns:
  the present object's colour and shape words are the first two (``keywords_top``), insertion
  and deletion AUC over words (cosine to the image, the same element curves for every method).
  Written to ``OUT/text_table.md``; ``--text-only`` skips the image tables.

Ref. Chen et al., "Less is More", ICLR 2024 (Tables 1-2); seed 002 (occlusion, ROAD, IoU).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmattr.config import ExplainConfig  # noqa: E402
from mmattr.datasets.shapes import export_dataset  # noqa: E402
from mmattr.distributed import is_main_process, wait_for_everyone  # noqa: E402
from mmattr.division import DIVIDERS  # noqa: E402
from mmattr.evaluate import evaluate_dataset, markdown_table, summarise  # noqa: E402
from mmattr.explainers import EXPLAINERS  # noqa: E402

BASELINES = ("saliency", "ig", "gradcam", "gradcampp", "scorecam", "lime", "kernelshap", "rise",
             "hsic")
LABELS = {"saliency": "Saliency", "ig": "Integrated Gradients", "gradcam": "Grad-CAM",
          "gradcampp": "Grad-CAM++", "scorecam": "Score-CAM", "lime": "LIME",
          "kernelshap": "Kernel SHAP", "rise": "RISE", "hsic": "HSIC-Attribution",
          "smdl": "SMDL (SLICO)"}
METRICS = ["insertion", "deletion", "insertion_region", "deletion_region", "highest_confidence",
           "highest_confidence_region", "pointing", "energy_pointing", "iou"]
ROAD_METRICS = ["road_morf", "road_lerf", "occlusion_map"]
TEXT_METHODS = ["smdl", "occlusion", "lime", "kernelshap", "ig", "gradxinput"]
TEXT_LABELS = {"smdl": "SMDL (words)", "occlusion": "Occlusion (leave one word out)",
               "lime": "LIME (words)", "kernelshap": "Kernel SHAP (words)",
               "ig": "Integrated Gradients (token embeddings)",
               "gradxinput": "Gradient × input (token embeddings)"}


def available_methods(wanted: list[str] | None) -> tuple[list[str], list[str]]:
    """(methods to run, baselines missing from this checkout)."""
    prior = "prior" in DIVIDERS
    have = [b for b in BASELINES if b in EXPLAINERS]
    missing = [b for b in BASELINES if b not in EXPLAINERS]
    methods = []
    for b in have:
        methods.append(b)
        if prior:
            methods.append(f"smdl+prior:{b}")
    methods.append("smdl")
    if wanted:
        methods = [m for m in wanted]
    return methods, missing


def label(method: str) -> str:
    if method.startswith("smdl+prior:"):
        return f"{LABELS.get(method.split(':', 1)[1], method)} (w/ ours)"
    return LABELS.get(method, method)


def _relabel(stats: dict) -> dict:
    return {label(m): v for m, v in stats.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="scenes in the held-out set")
    ap.add_argument("--seed", type=int, default=777, help="dataset seed (training uses 0..)")
    ap.add_argument("--size", type=int, default=64,
                    help="image side (the demo model resizes to its 128 px input)")
    ap.add_argument("--search", default=ExplainConfig().search,
                    help="SMDL search strategy (default: the toolkit's default)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N manifest lines")
    ap.add_argument("--methods", default=None,
                    help="comma-separated; default every registered baseline, its w/ ours, smdl")
    ap.add_argument("--regions", type=int, default=25, help="SMDL regions for SLICO")
    ap.add_argument("--steps", type=int, default=20, help="insertion/deletion steps")
    ap.add_argument("--model", default="demo")
    ap.add_argument("--road", action="store_true", help="also ROAD and occlusion (seed 002)")
    ap.add_argument("--work", default="benchmarks/results/paper_tables_work",
                    help="dataset and resumable per-image results")
    ap.add_argument("--out", default="docs/benchmark", help="where the tables and plots go")
    ap.add_argument("--text", type=int, default=0,
                    help="text side: held-out captioned scenes per renderer (0: skip)")
    ap.add_argument("--text-style", default="and", choices=("and", "mixed"),
                    help="the captions' phrasing (mmattr.datasets.two_objects)")
    ap.add_argument("--text-renderers", default="heldout,altshapes,fourth,fifth",
                    help="comma-separated renderers of the text side's scenes")
    ap.add_argument("--text-methods", default=",".join(TEXT_METHODS))
    ap.add_argument("--text-only", action="store_true", help="only the text-side table")
    args = ap.parse_args()

    if args.text:
        text_table(args)
    if args.text_only:
        return
    t0 = time.perf_counter()
    work, out = Path(args.work), Path(args.out)
    data = work / f"shapes_seed{args.seed}_n{args.n}_s{args.size}"
    if not (data / "manifest.jsonl").is_file() and is_main_process():
        export_dataset(data, n_scenes=args.n, seed=args.seed, size=args.size, n_objects=(1, 2))
    wait_for_everyone()
    methods, missing = available_methods(args.methods.split(",") if args.methods else None)
    metrics = METRICS + (ROAD_METRICS if args.road else [])
    # The 36 captions as the vocabulary, explicitly: any model gets the same probability score.
    cfg = ExplainConfig(model=args.model, regions=args.regions, vocabulary="shapes",
                        search=args.search)
    progress_every = max(1, (args.limit or 10_000) // 20)

    def progress(done: int, total: int) -> None:
        if done % progress_every == 0 or done == total:
            el = time.perf_counter() - t0
            eta = el / done * (total - done) if done else math.nan
            print(f"  {done}/{total} explanations, {el:.0f} s, ~{eta:.0f} s left", flush=True)

    summary = evaluate_dataset(data, methods, metrics, model=args.model,
                               out=work / "eval", config=cfg, score="probability",
                               steps=args.steps, fill="black", limit=args.limit,
                               progress=progress)
    seconds = time.perf_counter() - t0
    if not is_main_process():  # under `accelerate launch` the main process writes the tables
        return
    records = [r for r in summary.records if r["method"] in methods]
    out.mkdir(parents=True, exist_ok=True)
    for name in ("results.csv", "summary.md", "curves.png", "bars.png"):
        if (work / "eval" / name).is_file():
            shutil.copyfile(work / "eval" / name, out / name)
    text = report(args, records, methods, missing, summary, seconds)
    (out / "paper_tables.md").write_text(text)
    print(text)


def text_table(args) -> None:
    """The text-side table: `evaluate_dataset` over held-out two-object captions, per renderer
    and together, each method's worst renderer beside the mean, and the best pair of SMDL's own
    objective (every pair tried): how often greedy's answer could be the keywords at best."""
    from mmattr.datasets.two_objects import export_captions

    t0 = time.perf_counter()
    renderers = tuple(r for r in args.text_renderers.split(",") if r)
    data = (Path(args.work) / f"captions_seed{args.seed}_n{args.text}_{args.text_style}_"
            f"{'-'.join(renderers)}")
    if not (data / "manifest.jsonl").is_file() and is_main_process():
        export_captions(data, args.text, seed=args.seed, renderers=renderers, size=128,
                        style=args.text_style)
    wait_for_everyone()
    methods = [m for m in args.text_methods.split(",") if m]
    cfg = ExplainConfig(model=args.model, search=args.search)
    summary = evaluate_dataset(data, methods, ["insertion", "deletion", "keywords"],
                               model=args.model, out=Path(args.work) / f"eval_{data.name}",
                               config=cfg, score="probability", steps=args.steps, fill="black",
                               progress=None, plots=False)
    if not is_main_process():
        return
    import json

    lines_of = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    renderer_of = {rec["image"]: rec["renderer"] for rec in lines_of}
    # the cost beside the quality: encoder passes and seconds per caption (from each record,
    # so a resumed run still shows what the explanations cost when they were made)
    records = [{**r, "metrics": {**r["metrics"], "passes": r["explain_forward_passes"],
                                 "seconds": r["explain_seconds"]}}
               for r in summary.records if r["method"] in methods]
    records += best_pair_records(data, lines_of, args.model)
    seconds = time.perf_counter() - t0
    cols = ["keywords_top", "insertion", "deletion", "passes", "seconds"]
    heads = ["keywords top-2 ↑", "Insertion ↑", "Deletion ↓", "passes", "s / caption"]
    labels = {**TEXT_LABELS, "best_pair": "SMDL's objective, best pair (every pair tried)"}
    lines = ["# Benchmark: the text side (which words make a caption match the image)", "",
             f"Command: `python benchmarks/paper_tables.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: {_machine()}; load average {os.getloadavg()[0]:.1f} at the end  ",
             f"Wall time: {seconds:.0f} s ({summary.new} explanations computed now, "
             f"{summary.skipped} reused).", "",
             f"Data: `mmattr.datasets.two_objects.export_captions(seed={args.seed}, n={args.text}, "
             f"renderers={renderers}, style={args.text_style!r})`: one-object scenes of "
             "renderers the demo model was not trained on, 128 px, each captioned with the "
             "present object and an absent one (another colour, another shape) in a random "
             "order (style `and`: \"a C1 S1 and a C2 S2\"; `mixed`: eight phrasings with "
             "other filler words).", "",
             f"Model `{args.model}`. Every method explains the caption's words against the "
             "image; removal: the text modality's default (`-O text.remove=auto`: pad+hide on "
             "the demo model). keywords top-2: the present object's colour and shape words "
             "are the first two. Insertion / deletion: AUC over words of the cosine to the "
             "image, each method's order, the same element curves for every method (x: share "
             f"of the words). SMDL: default weights, {args.search} search. Best pair: for each "
             "caption every pair of words is kept alone and removed alone, and the pair with "
             "the largest (cosine kept − cosine removed), SMDL's consistency + collaboration, "
             "is its objective's own best answer of two words: where it is not the present "
             "object's words, no search over that objective puts them first (other criteria, "
             "such as LIME's average over random contexts, can).", ""]
    for renderer in (*renderers, "all"):
        rows = [r for r in records if renderer == "all" or renderer_of.get(r["image"]) == renderer]
        stats = {labels.get(m, m): v for m, v in summarise(rows, cols).items()}
        lines += [f"## {renderer}" + (" renderers together" if renderer == "all" else ""), "",
                  markdown_table(stats, cols, headers=heads), ""]
    worst = []
    for m in [*methods, "best_pair"]:
        per = {r: summarise([x for x in records if renderer_of.get(x["image"]) == r
                             and x["method"] == m], ["keywords_top"]).get(m, {})
               .get("keywords_top", (math.nan,))[0] for r in renderers}
        low = min(per, key=lambda r: per[r])
        worst.append(f"| {labels.get(m, m)} | {per[low]:.2f} ({low}) |")
    lines += ["## Worst renderer per method (keywords top-2)", "", "| method | worst |",
              "|---|---:|", *worst, "",
              "Mean ± std over captions (keywords top-2: the share of captions). Passes: "
              "text-encoder inputs per explanation (a subset costs one per prompt template and "
              "removal baseline; SMDL's include its curves, which are its search's prefixes; a "
              "baseline's curves are not counted); seconds: measured while the records were "
              "made, on the machine above, possibly beside other jobs. "
              "A \"w/ ours\" row on a text would be SMDL over the same words (the words are the "
              "elements whatever the baseline), so it is the SMDL row.", ""]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    suffix = "" if args.text_style == "and" else f"_{args.text_style}"
    (out / f"text_table{suffix}.md").write_text(text)
    print(text)


def best_pair_records(data: Path, lines: list[dict], model: str) -> list[dict]:
    """Per caption, whether the best pair of words under SMDL's own criterion (every pair kept
    alone and removed alone, scored as consistency + collaboration) is the keywords: the share
    no search over that objective can beat on this metric."""
    import itertools

    import mmattr
    from mmattr.image import load_image
    from mmattr.metrics.words import keywords_first
    from mmattr.modalities.text import TextElements
    from mmattr.targets import Target

    adapter = mmattr.load_adapter(model)
    out = []
    for rec in lines:
        elements = TextElements(rec["text"], adapter)
        target = adapter.encode_target(Target.from_image(load_image(data / rec["image"])))
        pairs = list(itertools.combinations(range(elements.n), 2))
        subsets = torch.zeros(len(pairs), elements.n)
        for i, pair in enumerate(pairs):
            subsets[i, list(pair)] = 1.0
        kept, removed = elements.embed(subsets)
        best = pairs[int((kept @ target - removed @ target).argmax())]
        labels = [e.label for e in elements.elements()]
        top, _ = keywords_first(labels, list(best), rec["keywords"])
        out.append({"image": rec["image"], "method": "best_pair", "metrics": {"keywords_top": top}})
    return out


def _machine() -> str:
    dev = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else
           f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores "
           f"visible, torch {torch.__version__}, {torch.get_num_threads()} threads)")
    return f"{platform.system()} {platform.release()}; {dev}; Python {platform.python_version()}"


def report(args, records, methods, missing, summary, seconds) -> str:
    correct = lambda r: r.get("correct") is True  # noqa: E731
    wrong = lambda r: r.get("correct") is False  # noqa: E731
    items = {(r["image"], r["text"]) for r in records}
    n_wrong = len({(r["image"], r["text"]) for r in records if wrong(r)})
    from mmattr.distributed import world_size

    launcher = (f"accelerate launch --multi_gpu --num_processes {world_size()} "
                if world_size() > 1 else "python ")
    cmd = launcher + "benchmarks/paper_tables.py " + " ".join(sys.argv[1:])
    per_img = np.mean([r["explain_seconds"] + r["metric_seconds"] for r in records]) if records else 0
    lines = [
        "# Benchmark: analogues of the SMDL paper's Tables 1-2 and seed 002's localisation table",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {_machine()}  ",
        f"Wall time of this run: {seconds:.0f} s ({summary.new} explanations computed now, "
        f"{summary.skipped} reused from earlier runs of the same command); "
        f"{per_img:.2f} s per explanation incl. metrics; "
        f"{sum(r['explain_seconds'] + r['metric_seconds'] for r in records):.0f} s summed over "
        f"all {len(records)} explanations in the tables.",
        "",
        f"Data: held-out synthetic shapes, `export_dataset(seed={args.seed}, n_scenes={args.n}, "
        f"size={args.size}, n_objects=(1, 2))`, one manifest line per object; "
        f"{len(items)} lines evaluated{' (--limit ' + str(args.limit) + ')' if args.limit else ''}, "
        f"{n_wrong} of them misclassified by the demo model (its top-1 caption over the 36 is "
        "another one: in two-object scenes usually the other object).",
        "",
        f"Model `{args.model}`. Score: softmax probability of the line's caption over the 36 "
        f"captions. Pixel-level curves: {args.steps} steps, black fill (0 in pixel space), "
        "pixels ranked by the map, ties in raster order. Region-level: the SMDL search's own "
        f"prefix scores. SMDL: λ = (0, 0.05, 1, 1), {args.search} search, SLICO with at most "
        f"{args.regions} regions; w/ ours: prior division 10×10 cells, 4 per region (25 regions). "
        "A w/ ours row reuses its baseline's map of the same image (`mmattr evaluate` computes "
        "it once), so its explain seconds exclude the prior's own time.",
        "",
    ]
    if missing:
        lines += [f"**Not run here:** {', '.join(missing)} (not registered in this checkout: the "
                  "baselines issue adds them) and therefore their w/ ours rows. Rerun the command "
                  "once they exist; finished rows are reused.", ""]
    t1 = ["deletion", "insertion", "deletion_region", "insertion_region"]
    lines += ["## Table 1: correctly predicted samples", "",
              markdown_table(_relabel(summarise(records, t1, correct)), t1,
                             headers=["Deletion ↓ (pixel)", "Insertion ↑ (pixel)",
                                      "Deletion ↓ (region)", "Insertion ↑ (region)"]), ""]
    t2 = [f"highest_confidence@{b}" for b in (25, 50, 75, 100)] + ["insertion"]
    lines += ["## Table 2: misclassified samples (ground-truth caption)", "",
              markdown_table(_relabel(summarise(records, t2, wrong)), t2,
                             headers=["(0-25%) ↑", "(0-50%) ↑", "(0-75%) ↑", "(0-100%) ↑",
                                      "Insertion ↑"]), ""]
    t2r = [f"highest_confidence_region@{b}" for b in (25, 50, 75, 100)] + ["insertion_region"]
    smdl_rows = [r for r in records if r["method"].startswith("smdl")]
    if smdl_rows:
        lines += ["Same, from the SMDL search's own region prefixes (the reference's way):", "",
                  markdown_table(_relabel(summarise(smdl_rows, t2r, wrong)), t2r,
                                 headers=["(0-25%) ↑", "(0-50%) ↑", "(0-75%) ↑", "(0-100%) ↑",
                                          "Insertion ↑"]), ""]
    t3 = ["pointing", "energy_pointing", "iou"]
    lines += ["## Localisation against the ground-truth masks (all samples)", "",
              markdown_table(_relabel(summarise(records, t3)), t3,
                             headers=["Pointing game ↑", "Energy pointing ↑",
                                      "IoU of top area ↑"]), ""]
    if args.road:
        t4 = ["road_morf", "road_lerf", "occlusion_map_increase_b", "occlusion_map_drop_s",
              "occlusion_map_road_increase_b", "occlusion_map_road_drop_s"]
        lines += ["## Seed 002 analogues: ROAD and occlusion of the map's top area", "",
                  markdown_table(_relabel(summarise(records, t4)), t4,
                                 headers=["ROAD MoRF ↓", "ROAD LeRF ↑", "occl. b: share ↑",
                                          "occl. s: drop ↑", "ROAD b: share ↑",
                                          "ROAD s: drop ↑"]), ""]
    lines += ["Mean ± std over samples. Per-image values: `results.csv`; all metrics: "
              "`summary.md`; dataset-mean curves: `curves.png`; bars: `bars.png`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
