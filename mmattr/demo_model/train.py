"""Train the embedded demo model: a tiny CLIP on the synthetic shapes world, CPU only.

The output folder is a regular Hugging Face CLIP checkpoint (model, tokenizer, image processor),
so every adapter treats it exactly like ``openai/clip-vit-base-patch32``.
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
from mmattr.datasets.shapes import COLORS, SHAPES, captions, render_scene
from mmattr.vocabulary import DEFAULT_TEMPLATES

__all__ = ["train", "build_tokenizer", "build_processor", "build_model", "main"]

_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
_IMAGE_SIZE = 128
_PATCH = 16  # 8×8 tokens: the cost of a 64 px / patch 8 model, with shapes twice as sharp
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
    texts = [t.format(c) for t in DEFAULT_TEMPLATES for c in captions()]
    # Generic words keep common English short too; anything else falls back to characters.
    texts += ["a photo of the object", "an image with a shape", "colour color shape object"]
    texts += list(COLORS) + list(SHAPES)
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


def build_processor(tokenizer):
    from transformers import CLIPImageProcessor, CLIPProcessor

    image_processor = CLIPImageProcessor(
        do_resize=True, size={"shortest_edge": _IMAGE_SIZE}, resample=3, do_center_crop=True,
        crop_size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE}, do_rescale=True,
        rescale_factor=1 / 255, do_normalize=True, image_mean=_CLIP_MEAN, image_std=_CLIP_STD,
        do_convert_rgb=True)
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def build_model(tokenizer):
    from transformers import CLIPConfig, CLIPModel

    text = dict(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=512,
                num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=32,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, projection_dim=128)
    vision = dict(image_size=_IMAGE_SIZE, patch_size=_PATCH, hidden_size=128, intermediate_size=512,
                  num_hidden_layers=4, num_attention_heads=4, projection_dim=128)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=128)
    return CLIPModel(config)


def _drop_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """Keep-mask imitating superpixel masking: grid cells or Voronoi blobs, some dropped."""
    if rng.random() < 0.5:
        cells = int(rng.integers(4, 11))
        low = rng.random((cells, cells))
    else:
        # Voronoi blobs on a coarse grid look like superpixels at a fraction of the cost.
        k = int(rng.integers(16, 101))
        seeds = rng.random((k, 2)) * 32
        yy, xx = np.mgrid[0:32, 0:32]
        d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
        region = d.argmin(-1)
        low = rng.random(k)[region]
    if rng.random() < 0.25:  # keep only a handful of regions
        vals = np.unique(low)
        keep = vals[rng.permutation(len(vals))[: int(rng.integers(1, 5))]]
        m = np.isin(low, keep)
    else:
        m = low >= rng.uniform(0.2, 0.8)  # drop that share of regions
    return cv2.resize(m.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0


def _batch(rng: np.random.Generator, batch_size: int, size: int, n_single: int,
           p_mask: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Images (B, H, W, 3) uint8 and presence targets (B, 36) after random blacking out."""
    index = {c: i for i, c in enumerate(captions())}
    images = np.empty((batch_size, size, size, 3), np.uint8)
    present = np.zeros((batch_size, len(index)), np.float32)
    for b in range(batch_size):
        scene = render_scene(rng, size=size, n_objects=1 if b < n_single else None)
        img = scene.image
        keep = None
        if rng.random() < p_mask:
            keep = _drop_mask(rng, size)
            img = img * keep[..., None]
        images[b] = img
        for mask, label in zip(scene.masks, scene.labels):
            total = mask.sum()
            vis = total if keep is None else (mask & keep).sum()
            if total and vis / total >= _MIN_VISIBLE:
                present[b, index[label]] = 1.0
    return images, present


def _text_embeds(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    out = model.get_text_features(input_ids=ids, attention_mask=mask)
    out = out if isinstance(out, torch.Tensor) else out.pooler_output
    return F.normalize(out, dim=-1)


def _image_embeds(model, pixels: torch.Tensor) -> torch.Tensor:
    out = model.get_image_features(pixel_values=pixels)
    out = out if isinstance(out, torch.Tensor) else out.pooler_output
    return F.normalize(out, dim=-1)


def train(out_dir: Path, seed: int = 0, steps: int = 4000, batch_size: int = 48,
          log: Callable[[str], None] = print, lr: float = 1e-3, eval_n: int = 360,
          eval_every: int = 0, probe_weight: float = 1.0) -> dict:
    """Train the demo CLIP and save a Hugging Face checkpoint folder to ``out_dir``.

    Returns the summary also written to ``out_dir/training.json``.
    """
    from mmattr.demo_model.evaluate import accuracy, zero_shot_accuracy

    t0 = time.time()
    out_dir = Path(out_dir)
    torch.set_num_threads(2)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # A separate stream from the held-out evaluation scenes (SeedSequence((10_000, i))).
    rng = np.random.default_rng((seed, 271828))

    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    model = build_model(tokenizer)
    preprocess = Preprocess.from_config(processor.image_processor.to_dict())

    classes = captions()
    n_cls, n_tpl = len(classes), len(DEFAULT_TEMPLATES)
    prompts = [t.format(c) for t in DEFAULT_TEMPLATES for c in classes]  # template-major
    enc = tokenizer(prompts, padding=True, return_tensors="pt")
    all_ids, all_mask = enc["input_ids"], enc["attention_mask"]

    # Training-only probes, dropped at save time. With both towers random, the contrastive loss
    # sits on a saddle where shape words and shape pixels are both ignored (colour is learnt,
    # shape stays at chance); a linear class probe on each tower's embedding breaks it.
    # Classes, plus colour and shape alone: each shape then has six times the positives.
    image_probe = torch.nn.Linear(model.config.projection_dim, n_cls + len(COLORS) + len(SHAPES))
    factors = torch.zeros(n_cls, len(COLORS) + len(SHAPES))
    for k, (color, shape) in enumerate((c, sh) for c in COLORS for sh in SHAPES):
        factors[k, list(COLORS).index(color)] = 1.0
        factors[k, len(COLORS) + list(SHAPES).index(shape)] = 1.0
    text_probe = torch.nn.Linear(model.config.projection_dim, n_cls)
    probes = list(image_probe.parameters()) + list(text_probe.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "embedding" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay + probes, "weight_decay": 0.0}], lr=lr,
                            betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, min(100, steps // 10))

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    sizes = (128, 144, 160, 192)
    model.train()
    loss_ema = None
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        size = int(sizes[rng.integers(len(sizes))])
        # Shapes are learnt on clean views first; cut-up views (as SMDL shows the model) later.
        p_mask = 0.5 * min(1.0, max(0.0, (step - 0.6 * steps) / (0.2 * steps)))
        images, present = _batch(rng, batch_size, size, n_single=2 * batch_size // 3, p_mask=p_mask)
        pixels = preprocess(torch.from_numpy(images))
        target = torch.from_numpy(present)
        rows = torch.from_numpy(rng.integers(n_tpl, size=n_cls) * n_cls + np.arange(n_cls))
        ids, mask = all_ids[rows], all_mask[rows]
        keep_len = int(mask.sum(1).max())  # right padding, so trimming loses nothing

        img = _image_embeds(model, pixels)
        txt = _text_embeds(model, ids[:, :keep_len], mask[:, :keep_len])
        logits = model.logit_scale.exp() * img @ txt.t()  # (B, 36)

        has_obj = target.sum(1) > 0
        i2t_t = target[has_obj] / target[has_obj].sum(1, keepdim=True)
        loss_i2t = -(i2t_t * F.log_softmax(logits[has_obj], 1)).sum(1).mean()
        has_img = target.sum(0) > 0
        t2i_t = target[:, has_img].t()
        t2i_t = t2i_t / t2i_t.sum(1, keepdim=True)
        loss_t2i = -(t2i_t * F.log_softmax(logits.t()[has_img], 1)).sum(1).mean()
        probe_target = torch.cat([target, (target @ factors).clamp(max=1.0)], 1)
        loss_probe_img = F.binary_cross_entropy_with_logits(image_probe(img), probe_target)
        loss_probe_txt = F.cross_entropy(text_probe(txt), torch.arange(n_cls))
        loss = 0.5 * (loss_i2t + loss_t2i) + probe_weight * (loss_probe_img + loss_probe_txt)

        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step:5d}/{steps}  loss {loss_ema:.4f}  scale "
                f"{model.logit_scale.exp().item():.1f}  lr {lr_at(step):.2e}  "
                f"{time.time() - t0:.0f}s")
        if eval_every and step and step % eval_every == 0:
            log(f"  zero-shot accuracy (72 held-out) "
                f"{accuracy(model, tokenizer, preprocess, n=72):.3f}")

    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    # transformers 5 nests the image config in processor_config.json; adapters read this file.
    processor.image_processor.save_pretrained(out_dir)
    train_seconds = time.time() - t0
    acc = zero_shot_accuracy(out_dir, n=eval_n) if eval_n else None
    summary = {
        "seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr,
        "loss": round(float(loss_ema), 5) if loss_ema is not None else None,
        "accuracy": acc, "accuracy_eval": {"n": eval_n, "seed": 10_000, "size": 128,
                                           "scenes": "single-object, held out"},
        "templates": list(DEFAULT_TEMPLATES),
        "seconds": round(time.time() - t0, 1), "train_seconds": round(train_seconds, 1),
        "torch": torch.__version__,
        "command": f"python -m mmattr.demo_model.train --out {out_dir} --seed {seed} --steps {steps}"
                   f" --batch-size {batch_size}",
    }
    (out_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"zero-shot top-1 accuracy {acc} on {eval_n} held-out single-object scenes; "
        f"{summary['seconds']:.0f}s")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmattr.demo_model.train",
                                     description="Train the embedded tiny CLIP demo model.")
    parser.add_argument("--out", type=Path, required=True, help="output checkpoint folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=0)
    args = parser.parse_args(argv)
    train(args.out, seed=args.seed, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
          eval_every=args.eval_every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
