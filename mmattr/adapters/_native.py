"""Fast start for a checkpoint folder of a family mmattr reproduces in plain torch (ALIGN, which
the embedded demo models are): the model built from its config.json with its safetensors state
dict loaded strictly, the tokenizer read from its tokenizer.json with the `tokenizers` library.

transformers' model code costs seconds to import (its package pulls torch.distributed, dynamo,
scipy, torchvision); this path imports none of it. It is taken only when every precondition
holds: a local folder, a family in `FAMILIES`, a config stating every setting the family reads
and nothing it ignores, a single float32 ``model.safetensors`` whose keys are exactly the
model's, a tokenizer class whose encoding is its tokenizer.json's. Otherwise `load` returns
None and the caller takes transformers' generic path (also forced with ``MMATTR_NATIVE=0``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import torch

#: the environment variable that turns the fast path off (``0``, ``false``, ``no``, ``off``)
ENV = "MMATTR_NATIVE"

#: tokenizer classes whose transformers encoding is their tokenizer.json pipeline as it is
_TOKENIZERS = {"CLIPTokenizer", "CLIPTokenizerFast"}
#: tokenizer_config.json keys that change nothing when encoding (or are read below)
_TOKENIZER_KEYS = {"tokenizer_class", "backend", "bos_token", "eos_token", "unk_token",
                   "pad_token", "model_max_length", "padding_side", "truncation_side",
                   "clean_up_tokenization_spaces", "errors", "added_tokens_decoder",
                   "model_input_names"}

def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _family_align() -> tuple[Callable[[dict], str | None], Callable]:
    from . import _align

    return _align.unsupported, lambda cfg: _align.AlignModel(_align.Config(cfg))


#: model_type → (why a config is not reproduced, or None; config dict → model)
FAMILIES: dict[str, Callable[[], tuple[Callable[[dict], str | None], Callable]]] = {
    "align": _family_align,
}


def _token(value) -> str | None:
    if isinstance(value, dict):  # an AddedToken written out
        value = value.get("content")
    return value if isinstance(value, str) else None


class FastTokenizer:
    """The part of a transformers fast tokenizer the adapters call: ``tok(prompts, padding=,
    truncation=, max_length=, return_tensors=)`` → ``{"input_ids", "attention_mask"}``, over
    the folder's tokenizer.json exactly as transformers' ``TokenizersBackend`` runs it."""

    def __init__(self, backend, pad_token: str, pad_id: int, model_max_length: int | None,
                 input_names: Sequence[str]) -> None:
        self.backend_tokenizer = backend
        self.pad_token = pad_token
        self.pad_token_id = pad_id
        self.model_max_length = model_max_length
        self.model_input_names = list(input_names)

    def __call__(self, text: str | Sequence[str], padding: bool | str = False,
                 truncation: bool = False, max_length: int | None = None,
                 return_tensors: str | None = None, verbose: bool = True) -> dict:
        tok = self.backend_tokenizer
        texts = [text] if isinstance(text, str) else list(text)
        if max_length is None:
            max_length = self.model_max_length
        if truncation and max_length is not None:
            tok.enable_truncation(max_length, stride=0, strategy="longest_first", direction="right")
        else:
            tok.no_truncation()
        if padding:
            tok.enable_padding(direction="right", pad_id=self.pad_token_id, pad_type_id=0,
                               pad_token=self.pad_token,
                               length=max_length if padding == "max_length" else None)
        else:
            tok.no_padding()
        enc = tok.encode_batch(texts, add_special_tokens=True)
        out = {"input_ids": [e.ids for e in enc], "attention_mask": [e.attention_mask for e in enc]}
        if "token_type_ids" in self.model_input_names:
            out["token_type_ids"] = [e.type_ids for e in enc]
        out = {k: v for k, v in out.items() if k in self.model_input_names}
        if isinstance(text, str):
            out = {k: v[0] for k, v in out.items()}
        if return_tensors == "pt":
            out = {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}
        elif return_tensors is not None:
            raise ValueError(f"return_tensors={return_tensors!r} is not supported here")
        return out


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def tokenizer(folder: Path) -> FastTokenizer | str:
    """The folder's tokenizer, or why it is not one `FastTokenizer` reproduces."""
    cfg = _read_json(folder / "tokenizer_config.json")
    if not isinstance(cfg, dict) or not (folder / "tokenizer.json").is_file():
        return "no tokenizer.json and tokenizer_config.json"
    if (folder / "special_tokens_map.json").exists() or (folder / "added_tokens.json").exists():
        return "special tokens outside tokenizer_config.json"
    if cfg.get("tokenizer_class") not in _TOKENIZERS:
        return f"tokenizer class {cfg.get('tokenizer_class')!r}"
    if set(cfg) - _TOKENIZER_KEYS:
        return f"tokenizer_config.json keys {sorted(set(cfg) - _TOKENIZER_KEYS)}"
    if cfg.get("padding_side", "right") != "right" or cfg.get("truncation_side", "right") != "right":
        return "left padding or truncation"
    names = cfg.get("model_input_names", ["input_ids", "attention_mask"])
    if not isinstance(names, list) or not set(names) <= {"input_ids", "attention_mask"}:
        return "model_input_names"
    pad = _token(cfg.get("pad_token"))
    max_len = cfg.get("model_max_length")
    if pad is None or not (max_len is None or isinstance(max_len, int)):
        return "no pad token"
    from tokenizers import Tokenizer

    try:
        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception:  # noqa: BLE001 - transformers' path reports a broken file
        return "tokenizer.json does not load"
    pad_id = backend.token_to_id(pad)
    if pad_id is None:
        return "pad token not in the vocabulary"
    return FastTokenizer(backend, pad, pad_id, max_len, names)


class NativeLoad(NamedTuple):
    """What `load` found: the model and tokenizer, or why the folder does not qualify."""

    model: torch.nn.Module | None
    tokenizer: "FastTokenizer | None"
    reason: str | None  # None when loaded

    @property
    def loaded(self) -> bool:
        return self.model is not None


def load(ident: str) -> NativeLoad:
    """The model and tokenizer of a qualifying local folder, or the reason it does not
    qualify, for the caller to take transformers' path (the reason is returned, never kept
    in module state)."""
    got = _load(ident)
    if isinstance(got, str):
        return NativeLoad(None, None, got)
    return NativeLoad(got[0], got[1], None)


def _load(ident: str):
    if not enabled():
        return f"{ENV} is off"
    folder = Path(ident).expanduser()
    if not folder.is_dir():
        return "not a local folder"
    cfg = _read_json(folder / "config.json")
    if not isinstance(cfg, dict) or cfg.get("model_type") not in FAMILIES:
        return "not a family with a native model"
    why, build = FAMILIES[cfg["model_type"]]()
    reason = why(cfg)
    if reason:
        return reason
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return "no single model.safetensors"
    tok = tokenizer(folder)
    if isinstance(tok, str):
        return tok
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights), device="cpu")
    except Exception:  # noqa: BLE001 - transformers' path reports a broken file
        return "model.safetensors does not load"
    if any(t.is_floating_point() and t.dtype != torch.float32 for t in state.values()):
        return "not float32 weights"
    with torch.device("meta"):
        model = build(cfg)
    expected = model.state_dict()
    if set(expected) != set(state):
        return "checkpoint keys differ from the model's"
    if any(tuple(expected[k].shape) != tuple(v.shape) for k, v in state.items()):
        return "checkpoint shapes differ from the model's"
    model.load_state_dict(state, strict=True, assign=True)
    for module in model.modules():  # non-persistent buffers: rebuilt on the CPU
        if hasattr(module, "reset_buffers"):
            module.reset_buffers()
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        return "some tensors were not loaded"
    return model.eval(), tok
