"""Prompt templates and class vocabularies for zero-shot scores: the one place a vocabulary is
resolved and embedded (SMDL, the baselines' curves and the metrics all call `build_vocabulary`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError

if TYPE_CHECKING:
    import torch

    from .adapters.base import Adapter
    from .targets import Target

#: Templates averaged into one text embedding; the demo model is trained on exactly these.
DEFAULT_TEMPLATES: tuple[str, ...] = ("{}", "a photo of {}.", "an image of {}.", "a picture of {}.")


_ASSETS = Path(__file__).parent / "assets"


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet-1k class names in index order, as the CLIP zero-shot evaluation
    words them (OpenAI's list; its two duplicates renamed 'projectile' and 'sunglass')."""
    return _asset_lines("imagenet_classes.txt")


def _asset_lines(name: str) -> list[str]:
    return (_ASSETS / name).read_text(encoding="utf-8").splitlines()


#: vocabularies shipped with mmattr: name → asset file (``shapes`` is the synthetic world's
#: 36 captions, kept as a file so this module needs nothing of the dataset code)
_BUILTIN_FILES = {"shapes": "shapes_classes.txt", "imagenet": "imagenet_classes.txt"}


def builtin_vocabularies() -> dict[str, list[str]]:
    """Names of the vocabularies shipped with mmattr, mapped to their class names."""
    return {name: _asset_lines(file) for name, file in _BUILTIN_FILES.items()}


def load_vocabulary(spec: str | Path, adapter: "Adapter | None" = None) -> list[str]:
    """A built-in vocabulary by name, the adapter's own class list (a classifier's
    ``default_vocabulary`` key), or a text file with one class name per line."""
    if (adapter is not None and adapter.class_names is not None
            and isinstance(spec, str) and spec == adapter.default_vocabulary):
        return list(adapter.class_names)
    if isinstance(spec, str) and spec in _BUILTIN_FILES:
        return _asset_lines(_BUILTIN_FILES[spec])
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"vocabulary {str(spec)!r} is neither a file nor one of "
                         f"{', '.join(sorted(_BUILTIN_FILES))}")
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError:
        raise InputError(f"vocabulary file {path} is not UTF-8 text") from None
    names = [n for n in names if n and not n.startswith("#")]
    if len(names) < 2:
        raise InputError(f"vocabulary file {path} needs at least two class names, got {len(names)}")
    return names


def resolve_vocabulary(spec: str | None, target: "Target", adapter: "Adapter"
                       ) -> tuple[list[str] | None, int | None, str]:
    """The class names for probability scores, the target's index among them, and their source.

    `spec` (a name or file) or else the adapter's default; a target missing from the
    vocabulary is appended to it (source ``"… + target"``), so its probability is defined.
    """
    source = spec or adapter.default_vocabulary
    if source is None:
        return None, None, "none"
    names = load_vocabulary(source, adapter)
    label = adapter.vocabulary_label(target)
    if label in names:
        return names, names.index(label), str(source)
    return names + [label], len(names), f"{source} + target"


@dataclass(frozen=True)
class Vocabulary:
    """Class names, the target's index among them, where they came from, and their (K, D)
    unit-norm embeddings (the appended target's row is the target embedding itself)."""

    names: list[str]
    target_index: int
    source: str
    embeddings: "torch.Tensor"

    def settings(self) -> dict[str, Any]:
        return {"vocabulary_source": self.source, "vocabulary_size": len(self.names),
                "target_index": self.target_index}


def build_vocabulary(spec: str | None, target: "Target", adapter: "Adapter",
                     target_emb: "torch.Tensor | None" = None) -> Vocabulary | None:
    """The vocabulary a score over classes uses, embedded; None when there is none.

    Everything that reads a probability (SMDL's objective and curves, the baselines' curves,
    the metrics' `TargetScore`) builds it here, so their numbers agree.
    """
    import torch

    names, index, source = resolve_vocabulary(spec, target, adapter)
    if names is None or index is None:
        return None
    with torch.inference_mode():
        if target_emb is None:
            target_emb = adapter.encode_target(target)
        appended = source.endswith("+ target")
        emb = adapter.class_embeddings(names[:-1] if appended else names).float()
        if appended:
            emb = torch.cat([emb, target_emb.float().reshape(1, -1).to(emb.device)])
    return Vocabulary(names, index, source, emb.clone())
