"""Train the embedded models of :mod:`mmattr.demo_model.zoo` on the synthetic world, CPU only.

``kind`` picks the model: ``clip`` (the clean dual encoder behind ``demo``), ``biased`` (the same
architecture on the biased world, ``demo-biased``) or ``classifier`` (``demo-classifier``). The
output folder is a regular transformers checkpoint (model, tokenizer, image processor), so the
adapters treat it exactly like a hub checkpoint of the same family.

Why these architectures: a ViT learns shape slowly from scratch on two CPU cores, a convolutional
tower learns it in minutes. ALIGN is the transformers dual encoder with a convolutional image
tower (EfficientNet blocks) read by ``AutoModel`` with ``get_image_features`` /
``get_text_features``; RegNet-X is a plain ReLU convolutional classifier read by
``AutoModelForImageClassification``, with ReLU stages after every layer an explainer may read.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mmattr.preprocess import Preprocess
from mmattr.datasets.shapes import (BACKGROUNDS, COLORS, SHAPES, background_phrase, captions,
                                    render_scene)

__all__ = ["train", "build_tokenizer", "build_clip", "build_classifier", "main", "TEMPLATES",
           "KINDS"]

#: the prompt templates the dual encoders are trained with (recorded in training.json)
TEMPLATES: tuple[str, ...] = ("{}", "a photo of {}.", "an image of {}.", "a picture of {}.")
KINDS = ("clip", "biased", "classifier")
_MEAN = [0.48145466, 0.4578275, 0.40821073]
_STD = [0.26862954, 0.26130258, 0.27577711]
_SIZES = {"clip": 96, "biased": 96, "classifier": 64}
_MIN_VISIBLE = 0.5  # below this share of its pixels an object is no longer "in" the image
_SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def _bytes_to_unicode() -> dict[int, str]:
    # The byte-to-printable-character table of GPT-2/CLIP byte-level BPE.
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _prompt_corpus() -> list[str]:
    texts = [t.format(c) for t in TEMPLATES for c in captions()]
    texts += [f"{c} {background_phrase(b)}" for c in captions() for b in BACKGROUNDS]
    texts += [f"a photo {background_phrase(b)}" for b in BACKGROUNDS]
    # Generic words keep common English short too; anything else falls back to characters.
    texts += ["a photo of the object", "an image with a shape", "colour color shape object"]
    texts += list(COLORS) + list(SHAPES) + ["background", "stripes", "checker", "noise"]
    return texts


def build_tokenizer():
    """CLIP byte-level BPE whose merges make every caption/template word a single token."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    byte_chars = list(_bytes_to_unicode().values())
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"""
                                   r"""[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                             behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=5000, min_frequency=1, show_progress=False,
                                  initial_alphabet=byte_chars, end_of_word_suffix="</w>",
                                  continuing_subword_prefix="", special_tokens=[])
    tok.train_from_iterator(_prompt_corpus() * 4, trainer=trainer)
    merges = [tuple(m) if isinstance(m, (list, tuple)) else tuple(m.split(" "))
              for m in json.loads(tok.to_str())["model"]["merges"]]
    # OpenAI CLIP layout: bytes, bytes + "</w>", merge results in rank order, then specials.
    vocab: dict[str, int] = {}
    for ch in byte_chars:
        vocab[ch] = len(vocab)
    for ch in byte_chars:
        vocab[ch + "</w>"] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    for s in _SPECIALS:
        vocab[s] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=32,
                         pad_token="<|endoftext|>")



def image_processor(size: int):
    """Resize to ``size``² (no crop), rescale, normalise: an EfficientNet/ViT-style processor."""
    from transformers import ViTImageProcessor

    return ViTImageProcessor(do_resize=True, size={"height": size, "width": size}, resample=3,
                             do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                             image_mean=_MEAN, image_std=_STD)


def build_clip(tokenizer, image_size: int = 96):
    """ALIGN with a four-stage EfficientNet-style tower (depthwise-separable blocks with
    squeeze-excitation) and a 2-layer text tower; embeddings of 128 dimensions.

    Sized for two CPU cores: expansion ratios 2-3 (6 in EfficientNet-B0) and 16-128 channels."""
    from transformers import AlignConfig, AlignModel

    vision = dict(image_size=image_size, width_coefficient=0.5, depth_coefficient=1.0,
                  in_channels=[32, 32, 64, 160], out_channels=[32, 64, 160, 256],
                  kernel_sizes=[3, 3, 5, 3], strides=[2, 2, 2, 1],
                  num_block_repeats=[1, 2, 3, 1], expand_ratios=[1, 2, 3, 3],
                  hidden_dim=128, drop_connect_rate=0.0, depthwise_padding=[])
    text = dict(vocab_size=len(tokenizer), hidden_size=96, num_hidden_layers=2,
                num_attention_heads=4, intermediate_size=256, max_position_embeddings=32,
                pad_token_id=tokenizer.pad_token_id, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)
    config = AlignConfig(text_config=text, vision_config=vision, projection_dim=128,
                         temperature_init_value=0.07)
    return AlignModel(config)


def build_classifier(image_size: int = 64):
    """A four-stage RegNet-X (ReLU, grouped 3x3 convolutions) over the 36 captions.

    RegNet's stem downsamples only twice (ResNet's 7x7 convolution and max-pool: four times), so
    the first stage still sees the small shapes at half the input resolution."""
    from transformers import RegNetConfig, RegNetForImageClassification

    names = captions()
    config = RegNetConfig(num_channels=3, embedding_size=24, hidden_sizes=[32, 64, 128, 192],
                          depths=[1, 1, 2, 1], groups_width=16, layer_type="x",
                          hidden_act="relu", downsample_in_first_stage=False,
                          num_labels=len(names), id2label={i: n for i, n in enumerate(names)},
                          label2id={n: i for i, n in enumerate(names)})
    config.image_size = image_size
    return RegNetForImageClassification(config)


def _drop_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """Keep-mask imitating superpixel masking: grid cells or Voronoi blobs, some dropped."""
    if rng.random() < 0.5:
        cells = int(rng.integers(4, 11))
        low = rng.random((cells, cells))
    else:
        k = int(rng.integers(16, 101))
        seeds = rng.random((k, 2)) * 32
        yy, xx = np.mgrid[0:32, 0:32]
        d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
        low = rng.random(k)[d.argmin(-1)]
    if rng.random() < 0.25:  # keep only a handful of regions
        vals = np.unique(low)
        m = np.isin(low, vals[rng.permutation(len(vals))[: int(rng.integers(1, 5))]])
    else:
        m = low >= rng.uniform(0.2, 0.8)
    return cv2.resize(m.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0


def _photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Renderer-independent augmentation: contrast, brightness, smooth shading, blur, noise.

    Hue is never shifted: it carries the colour name."""
    x = img.astype(np.float32)
    size = x.shape[0]
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.7, 1.3) + mean * rng.uniform(0.8, 1.2)
    if rng.random() < 0.5:  # a smooth light field over the whole scene (objects shaded too)
        low = rng.uniform(0.8, 1.2, size=(3, 3)).astype(np.float32)
        x = x * cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)[..., None]
    if rng.random() < 0.25:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.2))
    if rng.random() < 0.3:
        x = x + rng.normal(0, rng.uniform(2, 8), size=x.shape).astype(np.float32)
    if rng.random() < 0.5:
        x = x[:, ::-1]
    return np.clip(x, 0, 255).astype(np.uint8)


def _batch(rng: np.random.Generator, batch_size: int, size: int, world: str, p_single: float,
           p_mask: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (B, H, W, 3) uint8, presence targets (B, 36) and background indices (B,)."""
    index = {c: i for i, c in enumerate(captions())}
    images = np.empty((batch_size, size, size, 3), np.uint8)
    present = np.zeros((batch_size, len(index)), np.float32)
    backgrounds = np.zeros(batch_size, np.int64)
    for b in range(batch_size):
        n = 1 if rng.random() < p_single else int(rng.integers(2, 4))
        scene = render_scene(rng, size=size, n_objects=n, world=world,
                             radius_range=(0.10, 0.50) if n == 1 else (0.12, 0.36))
        img = _photometric(rng, scene.image)
        keep = None
        if rng.random() < p_mask:
            keep = _drop_mask(rng, size)
            img = img * keep[..., None]
        images[b] = img
        backgrounds[b] = BACKGROUNDS.index(scene.background)
        for mask, label in zip(scene.masks, scene.labels):
            total = mask.sum()
            vis = total if keep is None else (mask & keep).sum()
            if total and vis / total >= _MIN_VISIBLE:
                present[b, index[label]] = 1.0
    return images, present, backgrounds


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a multi-hot target spread evenly (rows without a positive skipped)."""
    has = target.sum(1) > 0
    if not has.any():
        return logits.sum() * 0.0
    t = target[has] / target[has].sum(1, keepdim=True)
    return -(t * F.log_softmax(logits[has], 1)).sum(1).mean()


def _pooled(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class _Texts:
    """Every prompt the dual encoder learns, tokenised once: class captions × templates,
    background phrases × templates, and captions with their background."""

    def __init__(self, tokenizer) -> None:
        classes = captions()
        self.n_cls, self.n_tpl, self.n_bg = len(classes), len(TEMPLATES), len(BACKGROUNDS)
        cls = [t.format(c) for t in TEMPLATES for c in classes]  # template-major
        bg = [t.format(f"a photo {background_phrase(b)}") for t in TEMPLATES for b in BACKGROUNDS]
        combo = [f"{c} {background_phrase(b)}" for c in classes for b in BACKGROUNDS]
        enc = tokenizer(cls + bg + combo, padding=True, return_tensors="pt")
        self.ids, self.mask = enc["input_ids"], enc["attention_mask"]
        self.cls0, self.bg0, self.combo0 = 0, len(cls), len(cls) + len(bg)

    def rows(self, rng: np.random.Generator) -> torch.Tensor:
        """One random template per class and per background, then all combinations."""
        cls = rng.integers(self.n_tpl, size=self.n_cls) * self.n_cls + np.arange(self.n_cls)
        bg = self.bg0 + rng.integers(self.n_tpl, size=self.n_bg) * self.n_bg + np.arange(self.n_bg)
        combo = self.combo0 + np.arange(self.n_cls * self.n_bg)
        return torch.from_numpy(np.concatenate([cls, bg, combo]))


def train(out_dir: Path, kind: str = "clip", seed: int = 0, steps: int = 1500,
          batch_size: int = 64, lr: float = 2e-3, log: Callable[[str], None] = print,
          threads: int = 2, evaluate: bool = True, eval_every: int = 0,
          shown_out: Path | None = None) -> dict:
    """Train one zoo model and save a transformers checkpoint folder to ``out_dir``.

    Returns the summary also written to ``out_dir/training.json`` (settings, time, and, with
    ``evaluate``, the held-out accuracies of :func:`mmattr.demo_model.evaluate.evaluate_model`).
    `shown_out` is the folder the command line names (``out_dir`` may be a temporary folder
    the checkpoint is moved from).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    if steps < 1 or threads < 1:
        raise ValueError(f"steps and threads must be at least 1, got {steps} and {threads}")
    t0 = time.time()
    out_dir = Path(out_dir)
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # A stream of its own, apart from the held-out evaluation scenes (seeds 10_000 and up).
    rng = np.random.default_rng((seed, 271828))
    world = "biased" if kind == "biased" else "clean"
    size = _SIZES[kind]
    processor = image_processor(size)
    preprocess = Preprocess.from_config(processor.to_dict())
    tokenizer = texts = None
    if kind == "classifier":
        model = build_classifier(size)
        extra: list[torch.nn.Parameter] = []
    else:
        tokenizer = build_tokenizer()
        texts = _Texts(tokenizer)
        model = build_clip(tokenizer, size)
        # Training-only probes (dropped at save): a colour/shape probe on the image embedding
        # and a class probe on the text embedding keep both towers from the saddle where the
        # contrastive loss ignores shape.
        dim = model.config.projection_dim
        image_probe = torch.nn.Linear(dim, len(COLORS) + len(SHAPES))
        text_probe = torch.nn.Linear(dim, texts.n_cls)
        extra = list(image_probe.parameters()) + list(text_probe.parameters())
        factors = torch.zeros(texts.n_cls, len(COLORS) + len(SHAPES))
        for k, (color, shape) in enumerate((c, s) for c in COLORS for s in SHAPES):
            factors[k, list(COLORS).index(color)] = 1.0
            factors[k, len(COLORS) + list(SHAPES).index(shape)] = 1.0
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "embedding" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.02},
                             {"params": no_decay + extra, "weight_decay": 0.0}], lr=lr)
    warmup = max(1, min(100, steps // 10))

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    render_sizes = (size, int(size * 1.33), int(size * 1.67))
    model.train()
    loss_ema = None
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        # Clean views first; cut-up views (as SMDL and the metrics show the model) later.
        p_mask = 0.4 * min(1.0, max(0.0, (step - 0.6 * steps) / (0.2 * steps)))
        side = int(render_sizes[rng.integers(len(render_sizes))])
        images, present, bgs = _batch(rng, batch_size, side, world, p_single=0.6, p_mask=p_mask)
        pixels = preprocess(torch.from_numpy(images))
        target = torch.from_numpy(present)
        if kind == "classifier":
            loss = _soft_ce(model(pixel_values=pixels).logits, target)
        else:
            rows = texts.rows(rng)
            ids, mask = texts.ids[rows], texts.mask[rows]
            keep = int(mask.sum(1).max())
            txt = F.normalize(_pooled(model.get_text_features(input_ids=ids[:, :keep],
                                                              attention_mask=mask[:, :keep])), dim=-1)
            img = F.normalize(_pooled(model.get_image_features(pixel_values=pixels)), dim=-1)
            logits = img @ txt.t() / model.temperature.clamp(min=0.01)
            c0, b0, k0 = texts.n_cls, texts.n_cls + texts.n_bg, None
            loss_cls = _soft_ce(logits[:, :c0], target)
            loss_bg = F.cross_entropy(logits[:, c0:b0], torch.from_numpy(bgs))
            combo_t = (target[:, :, None] * F.one_hot(torch.from_numpy(bgs), texts.n_bg)[:, None, :]
                       ).reshape(len(target), -1)
            loss_combo = _soft_ce(logits[:, b0:], combo_t)
            # text → image: each present class picks its images among the batch
            loss_t2i = _soft_ce(logits[:, :c0].t(), target.t())
            probe_t = (target @ factors).clamp(max=1.0)
            loss_probe = (F.binary_cross_entropy_with_logits(image_probe(img), probe_t)
                          + F.cross_entropy(text_probe(txt[:c0]), torch.arange(c0)))
            loss = (loss_cls + 0.5 * loss_t2i + 0.5 * loss_bg + 0.5 * loss_combo + loss_probe)
            del k0
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
        if eval_every and step and step % eval_every == 0:
            log(f"[{kind}] step {step}: held-out single-object accuracy "
                f"{_quick_accuracy(model, kind, preprocess, texts):.3f} (200 scenes)")
            model.train()
        if step % 50 == 0 or step == steps - 1:
            log(f"[{kind}] step {step:5d}/{steps}  loss {loss_ema:.4f}  lr {lr_at(step):.2e}  "
                f"{time.time() - t0:.0f}s")

    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    train_seconds = time.time() - t0
    summary: dict = {
        "kind": kind, "world": world, "seed": seed, "steps": steps, "batch_size": batch_size,
        "lr": lr, "image_size": size, "loss": round(float(loss_ema), 5),
        "parameters": sum(p.numel() for p in model.parameters()),
        "templates": list(TEMPLATES) if kind != "classifier" else [],
        "train_seconds": round(train_seconds, 1), "threads": threads,
        "torch": torch.__version__,
        "command": f"python -m mmattr.demo_model.train --kind {kind} --out {shown_out or out_dir} "
                   f"--seed {seed} --steps {steps} --batch-size {batch_size} --lr {lr} "
                   f"--threads {threads}",
    }
    if world == "biased":
        summary["planted_rule"] = ("every training scene that holds a star lies on a striped "
                                   "background, and stripes appear in no other training scene")
    (out_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    if evaluate:
        from .evaluate import evaluate_model

        summary["evaluation"] = evaluate_model(out_dir, kind, log=log)
        summary["seconds"] = round(time.time() - t0, 1)
        (out_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@torch.inference_mode()
def _quick_accuracy(model, kind: str, preprocess: Preprocess, texts: "_Texts | None",
                    n: int = 200) -> float:
    """Top-1 over the 36 captions on ``n`` held-out single-object scenes (monitoring only)."""
    model.eval()
    index = {c: i for i, c in enumerate(captions())}
    scenes = [render_scene(np.random.default_rng((10_000, i)), size=128, n_objects=1)
              for i in range(n)]
    pixels = preprocess(torch.from_numpy(np.stack([s.image for s in scenes])))
    if kind == "classifier":
        pred = model(pixel_values=pixels).logits.argmax(1)
    else:
        ids, mask = texts.ids[: texts.n_cls * texts.n_tpl], texts.mask[: texts.n_cls * texts.n_tpl]
        txt = F.normalize(_pooled(model.get_text_features(input_ids=ids, attention_mask=mask)), dim=-1)
        txt = F.normalize(txt.reshape(texts.n_tpl, texts.n_cls, -1).sum(0), dim=-1)
        img = F.normalize(_pooled(model.get_image_features(pixel_values=pixels)), dim=-1)
        pred = (img @ txt.t()).argmax(1)
    labels = torch.tensor([index[s.labels[0]] for s in scenes])
    return float((pred == labels).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmattr.demo_model.train",
                                     description="Train one of the embedded models.")
    parser.add_argument("--out", type=Path, required=True, help="output checkpoint folder")
    parser.add_argument("--kind", choices=KINDS, default="clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-eval", action="store_true")
    parser.add_argument("--eval-every", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1:
        parser.error("--steps and --threads must be at least 1")
    train(args.out, kind=args.kind, seed=args.seed, steps=args.steps, batch_size=args.batch_size,
          lr=args.lr, threads=args.threads, evaluate=not args.no_eval, eval_every=args.eval_every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
