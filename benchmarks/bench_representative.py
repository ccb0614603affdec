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
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmattr.adapters import load_adapter  # noqa: E402
from mmattr.datasets.shapes import render_scene  # noqa: E402
from mmattr.explainers._common import to_image_space  # noqa: E402
from mmattr.explainers.cam import gradcam_weights, gradcampp_weights, scorecam_masks  # noqa: E402
from mmattr.metrics.curves import average_drop_increase  # noqa: E402
from mmattr.representative import RepresentativeInterpretations, RIOptions, region_heatmap  # noqa: E402
from mmattr.representative.explainer import same_class, sketch  # noqa: E402

METHODS = ("RI", "Grad-CAM", "Grad-CAM++", "Score-CAM")


def scenes(n: int, seed: int, size: int) -> tuple[list[np.ndarray], list[str]]:
    images, labels = [], []
    for i in range(n):
        s = render_scene(np.random.default_rng((seed, i)), size=size, n_objects=1)
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
    ap.add_argument("--unseen", type=int, default=360, help="unseen images (evaluation)")
    ap.add_argument("--size", type=int, default=64)
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
    unseen, unseen_labels = scenes(args.unseen, 2000 + args.seed, args.size)
    ri = RepresentativeInterpretations(adapter, RIOptions(
        layer=args.layer, boundaries=args.boundaries, sampler=args.sampler, seed=args.seed,
        batch_size=args.batch_size, min_class_refs=1)).fit(refs, ref_labels)
    fit = ri.fitted
    t_fit = time.time() - t0
    n_classes = len(np.unique(fit.preds))
    k = args.interpretations or 2 * n_classes
    centres = ri.representatives(k)
    interps = [ri.explain_reference(int(i)) for i in centres]
    t_explain = time.time() - t0 - t_fit
    weights = cam_weights(ri, [refs[int(i)] for i in centres], args.batch_size)

    flat, logits = ri.features(unseen)
    preds = logits.argmax(1).cpu().numpy()
    names = fit.meta["class_names"]
    sk = torch.cat([_sketch(ri, flat[s:s + 256]) for s in range(0, flat.shape[0], 256)])
    cent_sk = fit.sketch[torch.as_tensor(centres)]
    nearest = torch.cdist(sk.float(), cent_sk.float()).argmin(1).cpu().numpy()

    def assign(flat_x: torch.Tensor, nearest_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cover = np.stack([ri.covers(it, flat_x) for it in interps])          # (V, M)
        size = np.array([it.coverage for it in interps])[:, None]
        best = np.where(cover, size, -1).argmax(0)
        covered = cover.any(0)
        return np.where(covered, best, nearest_x), covered

    which, covered = assign(flat, nearest)
    # Region accuracy and coverage (Table 2): a covered image is predicted its region's class.
    region_cls = np.array([it.predicted for it in interps])
    ref_flat, _ = ri.features(refs)
    ref_which, ref_cov = assign(ref_flat, np.zeros(fit.n, int))
    rows_t2 = []
    for name, cov, wh, pred, labs in (("reference", ref_cov, ref_which, fit.preds, ref_labels),
                                      ("unseen", covered, which, preds, unseen_labels)):
        md = (region_cls[wh] == pred)[cov].mean() if cov.any() else float("nan")
        gt = np.array([same_class(names[c], lab) for c, lab in zip(region_cls[wh], labs)])
        model_gt = np.array([same_class(names[p], lab) for p, lab in zip(pred, labs)])
        rows_t2.append((name, cov.mean(), md, gt[cov].mean() if cov.any() else float("nan"),
                        model_gt.mean()))

    # Average Drop / Increase on the unseen images (Table 1).
    hw = tuple(adapter.preprocess.output_hw)
    pre = adapter.preprocess

    def score_fn(c: int):
        def f(batch: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                emb = adapter.encode_images(pre(batch * 255.0))
                return torch.softmax(adapter.logits(emb, ri.head.vocab).float(), 1)[:, c]
        return f

    results = {m: ([], []) for m in METHODS}
    per_class = {m: {} for m in METHODS}
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
                results[m][0].append(drop)
                results[m][1].append(inc)
                per_class[m].setdefault(names[c], []).append(drop)
    seconds = time.time() - t0
    lines = _report(args, fit, k, results, per_class, rows_t2, covered, t_fit, t_explain, seconds)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


def _sketch(ri, flat):
    return sketch(flat, seed=ri.options.seed)


def _report(args, fit, k, results, per_class, rows_t2, covered, t_fit, t_explain, seconds):
    cmd = "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    cpu = platform.processor() or platform.machine()
    try:
        model_name = next(line.split(":", 1)[1].strip() for line in
                          open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model_name = cpu
    lines = [f"# Representative Interpretations vs CAMs on unseen images ({args.model})", "",
             f"Command: `{cmd}`  ",
             f"Machine: {model_name}, {os.cpu_count()} cores visible, torch {torch.__version__}, "
             f"device {'cuda' if torch.cuda.is_available() else 'cpu'}  ",
             f"Layer ψ: `{fit.meta['layer']}` {tuple(fit.meta['psi_shape'])}; |Q| = "
             f"{fit.meta['boundaries']} ({fit.meta['sampler']} sampler); |V| = {k} interpretations "
             f"at k-means centres; {fit.n} reference images, {len(covered)} unseen images "
             f"(single-object shapes, {args.size} px, other seeds); top {args.keep:.0%} of pixels "
             f"kept, the rest black; score = softmax probability of the unseen image's predicted "
             f"class.  ",
             f"Time: fit {t_fit:.1f} s, {k} interpretations {t_explain:.1f} s, total {seconds:.1f} s",
             "", "## Table 1 analogue: reuse on unseen images", "",
             "| method | mean AD (%) ↓ | mean AI (%) ↑ | worst class mean AD (%) | images with drop < RI's |",
             "|---|---|---|---|---|"]
    ri_drop = np.array(results["RI"][0])
    for m in METHODS:
        drop, inc = np.array(results[m][0]), np.array(results[m][1])
        worst = max(per_class[m].items(), key=lambda kv: np.mean(kv[1]))
        beats = "-" if m == "RI" else f"{(drop < ri_drop).mean():.0%}"
        lines.append(f"| {m} | {100 * drop.mean():.2f} | {100 * inc.mean():.2f} | "
                     f"{100 * np.mean(worst[1]):.1f} ({worst[0]}) | {beats} |")
    lines += ["", "## Table 2 analogue: the decision regions", "",
              "| set | CVR (%) | ACU-MD (%) | ACU-GT of RI (%) | ACU-GT of the model (%) |",
              "|---|---|---|---|---|"]
    for name, cvr, md, gt, model_gt in rows_t2:
        lines.append(f"| {name} | {100 * cvr:.2f} | {100 * md:.2f} | {100 * gt:.2f} | "
                     f"{100 * model_gt:.2f} |")
    return lines


if __name__ == "__main__":
    main()
