"""Representative Interpretations vs CAMs on unseen images, as the paper's Table 1 and 2.

Reference images (fit) and unseen images (never used to fit) are single-object scenes of the
synthetic shapes world with different seeds. RI is fitted on the references; |V|
interpretations are made at the reference images nearest to k-means centres of ψ (the paper's
V). Each unseen image e then reuses the channel weights of the RI interpretation whose region
covers it (several: the one covering most references; none: the nearest centre), and the CAM
baselines (Grad-CAM, Grad-CAM++, Score-CAM at the same layer ψ, for the centre image's
predicted class) reuse the weights of the nearest centre image by Euclidean distance in ψ.
Average Drop / Average Increase keep the top 20% of the pixels of each map (the rest black)
and score the softmax probability of e's predicted class (seed 003 eq. 7-8). Coverage (CVR)
and accuracy against the model (ACU-MD) and the labels (ACU-GT) of the regions are reported on
the reference and the unseen set.

    python benchmarks/bench_representative.py --model demo-classifier

Ref. Lam et al., "Finding Representative Interpretations on Convolutional Neural Networks",
ICCV 2021 (Table 1, Table 2).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmattr.adapters import load_adapter  # noqa: E402
from mmattr.datasets.altshapes import render_alt_scene  # noqa: E402
from mmattr.datasets.shapes import render_scene  # noqa: E402
from mmattr.explainers._common import to_image_space  # noqa: E402
from mmattr.explainers.cam import gradcam_weights, gradcampp_weights, scorecam_masks  # noqa: E402
from mmattr.metrics.curves import average_drop_increase  # noqa: E402
from mmattr.representative import RepresentativeInterpretations, RIOptions, region_heatmap  # noqa: E402
from mmattr.representative.explainer import same_class, sketch  # noqa: E402

METHODS = ("RI", "Grad-CAM", "Grad-CAM++", "Score-CAM")


RENDERERS = {"shapes": render_scene, "altshapes": render_alt_scene}


def scenes(n: int, seed: int, size: int, renderer: str = "shapes"
           ) -> tuple[list[np.ndarray], list[str]]:
    images, labels = [], []
    render = RENDERERS[renderer]
    for i in range(n):
        s = render(np.random.default_rng((seed, i)), size=size, n_objects=1)
        images.append(s.image)
        labels.append(s.labels[0])
    return images, labels


def cam_weights(ri: RepresentativeInterpretations, images: list[np.ndarray], batch: int
                ) -> dict[str, torch.Tensor]:
    """(V, C) channel weights of each CAM at ψ for each image's own predicted class."""
    head = ri.head
    pixels = head.pixels(images)
    psi, logits = head.features(pixels)
    cls = logits.argmax(1)
    t = psi.clone().requires_grad_(True)
    with torch.enable_grad():
        score = head.logits(t).gather(1, cls[:, None]).sum()
        (grad,) = torch.autograd.grad(score, t)
    act, g = head.grid(psi), head.grid(grad)
    out = {"Grad-CAM": gradcam_weights(g), "Grad-CAM++": gradcampp_weights(act, g)}
    hw = tuple(pixels.shape[-2:])
    scores = []
    with torch.inference_mode():
        for v in range(len(images)):
            masks = scorecam_masks(act[v], hw)
            rows = []
            for s in range(0, masks.shape[0], batch):
                x = pixels[v:v + 1] * masks[s:s + batch, None]
                rows.append(ri.adapter.logits(ri.adapter.encode_images(x), head.vocab)[:, cls[v]])
            scores.append(torch.softmax(torch.cat(rows).float(), dim=0))
    out["Score-CAM"] = torch.stack(scores)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="demo-classifier")
    ap.add_argument("--layer", default=None)
    ap.add_argument("--refs", type=int, default=720, help="reference images (fit)")
    ap.add_argument("--unseen", type=int, default=360, help="unseen images per renderer")
    ap.add_argument("--renderers", default="shapes,altshapes",
                    help="renderers of the unseen sets (altshapes: the second generator)")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--interpretations", type=int, default=None,
                    help="|V| (default 2 × predicted classes; the paper uses 10 × classes with "
                         "2,500 references per class)")
    ap.add_argument("--boundaries", type=int, default=50)
    ap.add_argument("--sampler", default="gradient")
    ap.add_argument("--keep", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=None, help="write the table (markdown) here too")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    t0 = time.time()
    adapter = load_adapter(args.model, device="auto")
    refs, ref_labels = scenes(args.refs, 1000 + args.seed, args.size)
    ri = RepresentativeInterpretations(adapter, RIOptions(
        layer=args.layer, boundaries=args.boundaries, sampler=args.sampler, seed=args.seed,
        batch_size=args.batch_size, min_class_refs=1)).fit(refs, ref_labels)
    fit = ri.fitted
    t_fit = time.time() - t0
    k = args.interpretations or 2 * len(np.unique(fit.preds))
    centres = ri.representatives(k)
    interps = [ri.explain_reference(int(i)) for i in centres]
    t_explain = time.time() - t0 - t_fit
    weights = cam_weights(ri, [refs[int(i)] for i in centres], args.batch_size)
    cent_sk = fit.sketch[torch.as_tensor(centres)].float()
    region_cls = np.array([it.predicted for it in interps])
    sizes = np.array([it.coverage for it in interps])[:, None]

    def assign(images):
        """Interpretation of each image (covering one with most references, else nearest
        centre), whether a region covers it, the nearest centre, predictions, ψ flattened."""
        flat, logits = ri.features(images)
        nearest = torch.cdist(sketch(flat, seed=args.seed).float(), cent_sk).argmin(1).cpu().numpy()
        cover = np.stack([ri.covers(it, flat) for it in interps])          # (V, M)
        covered = cover.any(0)
        which = np.where(covered, np.where(cover, sizes, -1).argmax(0), nearest)
        return which, covered, nearest, logits.argmax(1).cpu().numpy()

    def region_row(name, images, labels):
        which, covered, _, pred = assign(images)
        names = fit.meta["class_names"]
        md = (region_cls[which] == pred)[covered].mean() if covered.any() else float("nan")
        gt = np.array([same_class(names[c], lab) for c, lab in zip(region_cls[which], labels)])
        model_gt = np.array([same_class(names[p], lab) for p, lab in zip(pred, labels)])
        return (name, covered.mean(), md, gt[covered].mean() if covered.any() else float("nan"),
                model_gt.mean())

    rows_t2 = [region_row("reference (shapes)", refs, ref_labels)]
    tables = {}
    for renderer in args.renderers.split(","):
        unseen, labels = scenes(args.unseen, 2000 + args.seed, args.size, renderer)
        rows_t2.append(region_row(f"unseen ({renderer})", unseen, labels))
        tables[renderer] = ad_ai(ri, adapter, unseen, assign, interps, weights, args)
    seconds = time.time() - t0
    lines = _report(args, fit, k, tables, rows_t2, t_fit, t_explain, seconds)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


def ad_ai(ri, adapter, unseen, assign, interps, weights, args):
    """Per method: (drops, increases, per-class drops) on the unseen images (Table 1)."""
    which, _, nearest, preds = assign(unseen)
    names = ri.fitted.meta["class_names"]
    hw = tuple(adapter.preprocess.output_hw)
    pre = adapter.preprocess

    def score_fn(c: int):
        def f(batch: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                emb = adapter.encode_images(pre(batch * 255.0))
                return torch.softmax(adapter.logits(emb, ri.head.vocab).float(), 1)[:, c]
        return f

    out = {m: ([], [], {}) for m in METHODS}
    bs = args.batch_size
    for s in range(0, len(unseen), bs):
        chunk = unseen[s:s + bs]
        psi = ri.head.grid(ri.head.features(ri.head.pixels(chunk))[0])
        maps = {"RI": [region_heatmap(psi[j:j + 1], interps[which[s + j]].alpha, hw)[0]
                       for j in range(len(chunk))]}
        for m in METHODS[1:]:
            w = weights[m][torch.as_tensor(nearest[s:s + bs])]                  # (b, C)
            maps[m] = [region_heatmap(psi[j:j + 1], w[j:j + 1], hw)[0] for j in range(len(chunk))]
        for j, img in enumerate(chunk):
            c = int(preds[s + j])
            for m in METHODS:
                sal = to_image_space(maps[m][j], adapter, img.shape[:2]).cpu().numpy()
                drop, inc = average_drop_increase(score_fn(c), img, sal, keep=args.keep)
                out[m][0].append(drop)
                out[m][1].append(inc)
                out[m][2].setdefault(names[c], []).append(drop)
    return out


def _report(args, fit, k, tables, rows_t2, t_fit, t_explain, seconds):
    cmd = "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    lines = [f"# Representative Interpretations vs CAMs on unseen images ({args.model})", "",
             f"Command: `{cmd}`  ",
             f"Machine: {cpu}, {os.cpu_count()} cores visible (shared), torch {torch.__version__}, "
             f"device {'cuda' if torch.cuda.is_available() else 'cpu'}  ",
             f"Layer ψ: `{fit.meta['layer']}` {tuple(fit.meta['psi_shape'])} (chosen "
             f"{'by --layer' if args.layer else 'automatically'}); |Q| = {fit.meta['boundaries']} "
             f"({fit.meta['sampler']} sampler); |V| = {k} interpretations at k-means centres of "
             f"{fit.n} reference images; {args.unseen} unseen images per renderer (single-object "
             f"scenes, {args.size} px, seeds never used to fit); top {args.keep:.0%} of pixels "
             f"kept, the rest black; score = softmax probability of the unseen image's predicted "
             f"class; CAMs at the same ψ, for the centre image's predicted class.  ",
             f"Time: fit {t_fit:.1f} s, {k} interpretations {t_explain:.1f} s, total {seconds:.1f} s"]
    for renderer, res in tables.items():
        ri_drop = np.array(res["RI"][0])
        lines += ["", f"## Table 1 analogue: reuse on unseen images ({renderer})", "",
                  "| method | mean AD (%) ↓ | mean AI (%) ↑ | worst class: mean AD (%) | "
                  "images where its drop < RI's |", "|---|---|---|---|---|"]
        for m in METHODS:
            drop, inc, per_class = np.array(res[m][0]), np.array(res[m][1]), res[m][2]
            worst = max(per_class.items(), key=lambda kv: np.mean(kv[1]))
            beats = "-" if m == "RI" else f"{(drop < ri_drop - 1e-9).mean():.0%}"
            lines.append(f"| {m} | {100 * drop.mean():.2f} | {100 * inc.mean():.2f} | "
                         f"{worst[0]}: {100 * np.mean(worst[1]):.1f} | {beats} |")
    lines += ["", "## Table 2 analogue: the decision regions", "",
              "| set | CVR (%) | ACU-MD (%) | ACU-GT of RI (%) | ACU-GT of the model (%) |",
              "|---|---|---|---|---|"]
    for name, cvr, md, gt, model_gt in rows_t2:
        lines.append(f"| {name} | {100 * cvr:.2f} | {100 * md:.2f} | {100 * gt:.2f} | "
                     f"{100 * model_gt:.2f} |")
    return lines


if __name__ == "__main__":
    main()
