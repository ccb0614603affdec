"""Issue 14 closing table: every command a new user tripped over, run through the real
`mmattr` app; prints input, exit code, first line of stderr and what was left on disk.

    python benchmarks/new_user_table.py /tmp/sandbox   (a new or empty folder)
"""
import os, sys, shutil, struct, zlib
from pathlib import Path
import numpy as np
from PIL import Image
from typer.testing import CliRunner
from mmattr.cli import app

root = Path(sys.argv[1])
if root.exists() and any(root.iterdir()):
    sys.exit(f"{root} is not empty; give a new folder")
root.mkdir(parents=True, exist_ok=True)
os.chdir(root)
shutil.copy(str(Path(__file__).resolve().parent.parent / "examples" / "scene.png"), "scene.png")
Path("examples").mkdir(); shutil.copy("scene.png", "examples/scene.png")
FAST = "--division grid --regions 9 --search exact".split()
def png_header(w, h):
    def chunk(k, d): return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")
rgb = np.asarray(Image.open("scene.png").convert("RGB"))
Image.fromarray((rgb.mean(2).round().astype(np.uint16) * 257)).save("gray16.png")
Image.fromarray(rgb).convert("CMYK").save("cmyk.tif")
Path("bomb.png").write_bytes(png_header(100000, 100000))
d = Path("scene.png").read_bytes(); Path("cut.png").write_bytes(d[:len(d)//3]); Path("zero.png").write_bytes(b"")
Path("adir.png").mkdir(); Image.new("RGB", (1, 1)).save("one.png"); Path("bad.yaml").write_text("regions: [1, 2\n")
Path("some_file.png").write_bytes(d); Path("afile.txt").write_text("mine\n")

def tree():
    out = {}
    for dp, dn, fn in os.walk("."):
        for n in dn + fn:
            p = Path(dp) / n
            out[str(p)[2:] if str(p).startswith("./") else str(p)] = None if p.is_dir() else p.read_bytes()
    return out

def run(label, args, setup=None):
    if setup: setup()
    before = tree()
    r = CliRunner().invoke(app, args)
    after = tree()
    new = sorted(k for k in after if k not in before)
    gone = sorted(k for k in before if k not in after)
    changed = sorted(k for k in before if k in after and before[k] != after[k])
    tops = sorted({k.split("/")[0] + ("/" if "/" in k else "") for k in new})
    left = "nothing" if not (new or gone or changed) else "; ".join(
        x for x in [("new: " + ", ".join(tops)) if new else "", ("removed: " + ", ".join(gone)) if gone else "",
                    ("changed: " + ", ".join(changed)) if changed else ""] if x)
    err = (r.stderr.strip().splitlines() or [""])[0]
    out1 = (r.stdout.strip().splitlines() or [""])[0]
    short = [a if len(a) <= 40 else f"{a[:20]}…({len(a)} chars)" for a in args if a not in FAST]
    cmd = "mmattr " + " ".join(a if " " not in a else repr(a) for a in short)
    print(f"| {label} | `{cmd}` | {r.exit_code} | {err or '(none)'} | {left} |" + (f" stdout: {out1[:70]}" if r.exit_code == 0 and out1 else ""), flush=True)

print("| case | command (with --division grid --regions 9 --search exact) | exit | first line of stderr | left on disk |")
print("|---|---|---|---|---|")
def mk_d():
    Path("d").mkdir(); Path("d/notes.txt").write_text("x\n"); Path("d/sub").mkdir()
run("--out holds a user's file", ["explain", "examples/scene.png", "--text", "a red circle", "--out", "d", *FAST], mk_d)
run("--out is a file", ["explain", "scene.png", "--text", "a red circle", "--out", "afile.txt", *FAST])
run("--out is the image's folder", ["explain", "examples/scene.png", "--text", "a red circle", "--out", "examples", *FAST])
run("--out under a regular file", ["explain", "scene.png", "--text", "a red circle", "--out", "afile.txt/res", *FAST])
run("--out read-only place", ["explain", "scene.png", "--text", "a red circle", "--out", "/sys/mmattr-res", *FAST])
run("--out .", ["explain", "scene.png", "--text", "a red circle", "--out", ".", *FAST])
run("decompression bomb 100000x100000", ["explain", "bomb.png", "--text", "x", *FAST])
run("truncated PNG", ["explain", "cut.png", "--text", "x", *FAST])
run("zero-byte file", ["explain", "zero.png", "--text", "x", *FAST])
run("a directory", ["explain", "adir.png", "--text", "x", *FAST])
run("1x1 image", ["explain", "one.png", "--text", "x", *FAST])
run("empty text", ["explain", "scene.png", "--text", " ", *FAST])
run("unknown spec", ["explain", "scene.png", "--text", "x", "--model", "nosuch", *FAST])
run("hub id without family", ["explain", "scene.png", "--text", "x", "--model", "openai/clip-vit-base-patch32", *FAST])
run("bad YAML", ["explain", "scene.png", "--text", "x", "--config", "bad.yaml", *FAST])
run("dataset shapes on a file", ["dataset", "shapes", "some_file.png"])
run("16-bit gray PNG (I;16)", ["explain", "gray16.png", "--text", "a red circle", *FAST])
run("CMYK TIFF", ["explain", "cmyk.tif", "--text", "a red circle", *FAST])
run("first prompt, default folder", ["explain", "scene.png", "--text", "a red circle", *FAST])
run("second prompt, same image", ["explain", "scene.png", "--text", "a blue square", *FAST])
run("same again", ["explain", "scene.png", "--text", "a blue square", *FAST])
def edit():
    Image.fromarray(rgb[::-1].copy()).save("scene.png")
run("edited image, same path", ["explain", "scene.png", "--text", "a blue square", *FAST], edit)
run("10,000-character prompt", ["explain", "scene.png", "--text", ("a red circle " * 800)[:10000], "--out", "long", *FAST])
def stray():
    p = Path("long/.mmattr-tmp-killed"); p.mkdir(); (p / "attribution.npy").write_bytes(b"half")
run("rerun after a killed save (stray temp inside)", ["explain", "scene.png", "--text", ("a red circle " * 800)[:10000], "--out", "long", *FAST], stray)
r = CliRunner().invoke(app, ["models"], terminal_width=80)
print(f"| mmattr models at 80 columns | `mmattr models` | {r.exit_code} | (none) | nothing | widest line {max(map(len, r.output.splitlines()))} chars, '…' {'absent' if '…' not in r.output else 'PRESENT'} |")
import torch
from transformers import CLIPModel
from mmattr.demo_model import DEMO_MODEL_DIR
broken = root / "broken-clip"; broken.mkdir()
for f in DEMO_MODEL_DIR.iterdir():
    if f.suffix == ".json" and f.name != "config.json": shutil.copy(f, broken / f.name)
m = CLIPModel.from_pretrained(DEMO_MODEL_DIR)
m.text_model.embeddings.token_embedding = torch.nn.Embedding(10, m.text_model.embeddings.token_embedding.embedding_dim)
m.config.text_config.vocab_size = 10; m.save_pretrained(broken)
run("tokenizer ids beyond the embedding table", ["explain", "scene.png", "--text", "a red circle", "--model", f"hf:{broken}", "--out", "tok", *FAST])
