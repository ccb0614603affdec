"""The text modality: the words (or sub-word tokens) of a prompt as SMDL's elements.

An element is a word (``-O text.unit=words``, whitespace-separated, punctuation kept with its
word) or a token of the text tower's tokenizer (``unit=tokens``). The explained text is always
encoded as the model encodes a text target (inside each of its prompt templates, averaged), so
the full text's embedding is exactly the target embedding the image side explains.

How a word is removed (``-O text.remove=``), stated and tested:

- ``drop``: the text without the word, tokenized again (``"a red circle"`` without ``red`` is
  ``"a circle"``). Works for every model with a text tower; positions shift.
- ``pad``: the word's tokens replaced by the tokenizer's pad token, positions kept (needs token
  access: `Adapter.tokenize_text`).
- ``hide``: the word's tokens kept but hidden from attention (attention mask 0), positions kept.
- ``pad+hide``: the mean of the ``pad`` and ``hide`` embeddings: two removal baselines averaged
  (as SHAP averages over a background), so neither one's artefact decides the order.
- ``auto`` (default): ``pad+hide`` with token access and a pad token, ``hide`` with token
  access only, else ``drop``.

A model gives no pad token when its pad token cannot stand in for a word: CLIP's tokenizer pads
with its end-of-text token and CLIP reads a text's embedding at the first end-of-text token, so
a "padded" word would cut the text there (every subset without the first word would embed as
the empty text; `HFAdapter.text_pad_id`). Such a model removes tokens by hiding them.

On the demo model the removals were measured on held-out two-object captions (which words make
"a red circle and a blue square" match an image of a red circle): the present object's colour
and shape words came first in 0.87-0.91 of the cases with ``pad+hide``, 0.82-0.89 with ``pad``,
0.77-0.86 with ``hide`` and 0.55-0.75 with ``drop`` (benchmarks/results/text_cpu.md).

Ref. Chen et al., "Less is More", ICLR 2024 (the elements' masked-in and masked-out inputs);
Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017 (removal
by a background, SHAP's text masker).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..adapters.base import Adapter, TokenizedText
from ..elements import Element, ElementSet, register_modality
from ..errors import InputError, ModelError, arg, warn
from ..options import option

REMOVALS = ("auto", "drop", "pad", "hide", "pad+hide")
UNITS = ("words", "tokens")
_WORD = re.compile(r"\S+")


def words_of(text: str) -> list[tuple[str, int, int]]:
    """The whitespace-separated words of `text` with their character spans."""
    return [(m.group(0), m.start(), m.end()) for m in _WORD.finditer(text)]


def normalise_text(text: str) -> str:
    """The text as it is explained: words separated by single spaces (so dropping nothing
    gives back the very string a text target encodes)."""
    return " ".join(text.split())


@dataclass(frozen=True)
class _Templated:
    """One prompt template's tokenization of the explained text: ids, and for each token the
    element it belongs to (-1: a template or special token, always kept)."""

    ids: torch.Tensor        # (L,)
    owner: torch.Tensor      # (L,) element index or -1


@register_modality("text")
class TextElements(ElementSet):
    """The words (or tokens) of a text, each kept or removed, encoded by the model's text tower.

    Ref. Chen et al., "Less is More", ICLR 2024 (subset selection over elements).
    """

    noun = "word"

    @dataclass(frozen=True)
    class Options:
        unit: str = option("words", "the elements: words (whitespace-separated) or tokens (the "
                                    "text tower's sub-word tokens; needs token access)",
                           choices=UNITS)
        remove: str = option("auto", "how an element is removed: drop (the text without it, "
                                     "tokenized again), pad (its tokens become the pad token), "
                                     "hide (attention mask 0), pad+hide (both, averaged); auto: "
                                     "pad+hide with token access and a pad token, hide with "
                                     "token access only, else drop",
                           choices=REMOVALS)

    def __init__(self, text: str, adapter: Adapter, unit: str = "words", remove: str = "auto",
                 batch_size: int = 64, processes: int = 1) -> None:
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"the text to explain is empty: pass a prompt such as "
                             f"{arg('text', 'a red circle')}")
        if unit not in UNITS:
            raise InputError(f"unknown text unit {unit!r}; use {' or '.join(UNITS)}")
        if remove not in REMOVALS:
            raise InputError(f"unknown text removal {remove!r}; use {', '.join(REMOVALS)}")
        self.text = normalise_text(text)
        self.adapter = adapter
        self.templates = tuple(adapter.text_templates)
        probe = adapter.tokenize_text(self.text)
        #: the token a removed one becomes (``pad``); None: the model has no pad token that can
        #: stand in for a word (CLIP: see `HFAdapter.text_pad_id`)
        pad_id = adapter.text_pad_id
        self.pad_id = int(pad_id) if pad_id is not None else None
        if remove == "auto":
            remove = ("drop" if probe is None else
                      "pad+hide" if self.pad_id is not None else "hide")
        needs_tokens = remove != "drop" or unit == "tokens"
        if needs_tokens and probe is None:
            raise ModelError(f"model {adapter.spec!r} gives no token access to its text tower, "
                             f"so {'unit=tokens' if unit == 'tokens' else 'remove=' + remove} "
                             "cannot be used; use -O text.remove=drop (words)")
        if remove in ("pad", "pad+hide") and self.pad_id is None:
            raise ModelError(f"model {adapter.spec!r} has no pad token that can stand in for a "
                             f"word, so remove={remove} cannot be used; use -O text.remove=hide "
                             "or drop")
        self.unit, self.remove = unit, remove
        if unit == "words":
            self._items = [(w, a, b) for w, a, b in words_of(self.text)]
        else:
            assert probe is not None
            self._items = [(self.text[a:b], a, b) for (a, b), sp in zip(probe.offsets, probe.special)
                           if not sp and b > a]
        if not self._items:
            raise InputError(f"the text {self.text!r} has no {unit} to explain")
        self._templated = [self._tokens(t) for t in self.templates] if needs_tokens else []
        if self._templated:
            self._drop_unread(unit)
        per_input = len(self.templates) * (2 if remove == "pad+hide" else 1)
        self.setup(len(self._items), adapter.device, self._encode_inputs, batch_size=batch_size,
                   processes=processes, passes_per_input=per_input)
        # `batch_size` counts encoder inputs: each subset brings one per template (and baseline)
        self.chunk = max(1, self.batch_size // per_input)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_input(cls, source: Any, adapter: Adapter, config: Any = None,
                   processes: int = 1) -> "TextElements":
        """The element set of the text `source` under `config`'s ``text`` options."""
        o = cls.options_of(config)
        return cls(source, adapter, unit=o.unit, remove=o.remove,
                   batch_size=getattr(config, "batch_size", 64), processes=processes)

    def _drop_unread(self, unit: str) -> None:
        """Elements the text tower never reads (every token of theirs past its length limit in
        every prompt template) would be elements whose removal changes nothing: they are left
        out, with one warning that names how many and where the read text stops."""
        read = set()
        for tpl in self._templated:
            read.update(int(o) for o in tpl.owner.tolist() if o >= 0)
        unread = [i for i in range(len(self._items)) if i not in read]
        if not unread:
            return
        if len(unread) == len(self._items):
            raise InputError(f"the model reads none of the text {self.text[:40]!r}: its prompt "
                             "template alone fills the model's token limit")
        first = self._items[unread[0]]
        warn(f"the text is longer than the model reads: its last {len(unread)} {unit} (from "
             f"{first[0]!r} on) lie past the model's token limit and are not explained")
        self._items = [item for i, item in enumerate(self._items) if i in read]
        self._templated = [self._tokens(t) for t in self.templates]

    def _tokens(self, template: str) -> _Templated:
        """The templated text's tokens and, per token, the element whose characters it covers."""
        prefix = template.index("{}")
        tok: TokenizedText | None = self.adapter.tokenize_text(template.format(self.text))
        if tok is None:
            raise ModelError(f"model {self.adapter.spec!r} gives no token access to its text tower")
        owner = []
        for (a, b), special in zip(tok.offsets, tok.special):
            mine = -1
            if not special and b > a:
                for i, (_, s, e) in enumerate(self._items):
                    if a < prefix + e and b > prefix + s:  # the token overlaps element i
                        mine = i
                        break
            owner.append(mine)
        return _Templated(torch.tensor(tok.ids, dtype=torch.long),
                          torch.tensor(owner, dtype=torch.long))

    def templated(self) -> list[_Templated]:
        """Per prompt template: the token ids and each token's element (-1: always kept);
        what gradient methods on token embeddings read (needs token access)."""
        if not self._templated:
            self._templated = [self._tokens(t) for t in self.templates]
        return self._templated

    # -- the element set ------------------------------------------------------------------------
    def elements(self) -> list[Element]:
        return [Element(w, (a, b)) for w, a, b in self._items]

    def settings(self) -> dict[str, Any]:
        return {"elements": self.n, "unit": self.unit, "remove": self.remove,
                "templates": list(self.templates), "passes_per_input": self.passes_per_input,
                "text": self.text}

    def compose(self, subsets: torch.Tensor) -> tuple[Any, Any]:
        """(B, N) subsets → the masked-in and masked-out texts: strings (``drop`` with words)
        or (ids, attention mask) batches, one row per subset × template (× baseline)."""
        keep = subsets.detach().to("cpu") > 0.5
        return self._compose(keep), self._compose(~keep)

    def _compose(self, keep: torch.Tensor) -> Any:
        if self.remove == "drop" and self.unit == "words":
            rows = [" ".join(w for (w, _, _), k in zip(self._items, row) if k)
                    for row in keep.tolist()]
            return [t.format(r) for r in rows for t in self.templates]
        modes = ("pad", "hide") if self.remove == "pad+hide" else (self.remove,)
        # the pad token stands in for a removed token (``pad``); any id fills the tail of a
        # shorter row, which the attention mask hides
        pad = self.pad_id if self.pad_id is not None else int(self.adapter.text_pad_id or 0)
        b = keep.shape[0]
        length = max(int(t.ids.shape[0]) for t in self._templated)
        rows: list[tuple[torch.Tensor, torch.Tensor]] = []  # (B, L) ids and masks, per variant
        for tpl in self._templated:
            inside = tpl.owner >= 0
            # (B, L): a token is kept when it is a template or special token, or its element is
            kept = torch.where(inside[None], keep[:, tpl.owner.clamp(min=0)], torch.ones((), dtype=torch.bool))
            ids = tpl.ids[None].expand(b, -1)
            for mode in modes:
                if mode == "drop":  # the removed tokens deleted, the rest shifted left
                    order = torch.sort((~kept).to(torch.uint8), dim=1, stable=True).indices
                    moved = torch.gather(ids, 1, order)
                    mask = torch.gather(kept, 1, order).long()
                    rows.append((torch.where(mask > 0, moved, torch.tensor(pad)), mask))
                elif mode == "pad":
                    rows.append((torch.where(kept, ids, torch.tensor(pad)),
                                 torch.ones_like(ids)))
                else:  # hide
                    rows.append((ids, kept.long()))
        width = len(rows)
        out_ids = torch.full((b, width, length), pad, dtype=torch.long)
        out_mask = torch.zeros((b, width, length), dtype=torch.long)
        for j, (ids, mask) in enumerate(rows):
            out_ids[:, j, : ids.shape[1]] = ids
            out_mask[:, j, : mask.shape[1]] = mask
        # one subset's rows (templates × baselines) next to each other, as the encoder sums them
        return out_ids.reshape(b * width, length), out_mask.reshape(b * width, length)

    def _encode_inputs(self, inputs: Any) -> torch.Tensor:
        """Composed rows → (B, D): each subset's rows (templates, baselines) normalised and
        averaged, as `Adapter.class_embeddings` averages a prompt's templates."""
        if isinstance(inputs, list):
            emb = self.adapter.encode_texts(inputs).float()
        else:
            ids, mask = inputs
            emb = self.adapter.encode_token_ids(ids.to(self.device), mask.to(self.device)).float()
        per = self.passes_per_input
        emb = F.normalize(emb, dim=-1).reshape(-1, per, emb.shape[-1]).sum(1)
        return emb


def word_values(elements: Sequence[Element], text: str, values: Sequence[float]
                ) -> tuple[list[int], list[float]]:
    """Per character of `text`: the element it belongs to (-1 between words) and its value:
    the text's "label map" and "attribution map"."""
    labels = [-1] * len(text)
    for i, e in enumerate(elements):
        for c in range(e.span[0], min(e.span[1], len(text))):
            labels[c] = i
    return labels, [float(values[i]) if i >= 0 else 0.0 for i in labels]
