"""Prompt templates and class vocabularies for zero-shot scores."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError

#: Templates averaged into one text embedding; the demo model is trained on exactly these.
DEFAULT_TEMPLATES: tuple[str, ...] = ("{}", "a photo of {}.", "an image of {}.", "a picture of {}.")


_ASSETS = Path(__file__).parent / "assets"
#: class lists that loaded models bring (a classifier's labels), by the key in their
#: ``default_vocabulary``; filled by the adapters, not by users
_MODEL_VOCABULARIES: dict[str, list[str]] = {}


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet-1k class names in index order, as the CLIP zero-shot evaluation
    words them (OpenAI's list; its two duplicates renamed 'projectile' and 'sunglass')."""
    return (_ASSETS / "imagenet_classes.txt").read_text(encoding="utf-8").splitlines()


def register_model_vocabulary(key: str, names: list[str]) -> str:
    """Make a model's own class list loadable as a vocabulary named `key`; returns the key."""
    _MODEL_VOCABULARIES[key] = list(names)
    return key


def builtin_vocabularies() -> dict[str, list[str]]:
    """Names of the vocabularies shipped with mmattr, mapped to their class names."""
    from .datasets.shapes import captions

    return {"shapes": captions(), "imagenet": imagenet_classes()}


def load_vocabulary(spec: str | Path) -> list[str]:
    """A built-in vocabulary by name, or a text file with one class name per line."""
    if isinstance(spec, str) and spec in _MODEL_VOCABULARIES:
        return list(_MODEL_VOCABULARIES[spec])
    builtins = builtin_vocabularies()
    if isinstance(spec, str) and spec in builtins:
        return list(builtins[spec])
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"vocabulary {str(spec)!r} is neither a file nor one of "
                         f"{', '.join(sorted(builtins))}")
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError:
        raise InputError(f"vocabulary file {path} is not UTF-8 text") from None
    names = [n for n in names if n and not n.startswith("#")]
    if len(names) < 2:
        raise InputError(f"vocabulary file {path} needs at least two class names, got {len(names)}")
    return names
