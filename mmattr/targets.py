"""What an explanation is about: a text, a class, a reference image or a raw embedding."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, arg

TARGET_KINDS = ("text", "class", "image", "embedding", "audio")


@dataclass(frozen=True, eq=False)
class Target:
    """A target the image is matched against; adapters turn it into one embedding.

    - ``text``: one or more prompts; template-averaged embeddings, averaged over prompts.
    - ``class``: a class name or index of a classifier or of the vocabulary.
    - ``image``: a reference image (path); its embedding is the target.
    - ``embedding``: a (D,) vector given directly (e.g. from a .npy file).
    - ``audio``: an audio clip (path), for models with an audio encoder (ImageBind).
    """

    kind: str
    texts: tuple[str, ...] = field(default_factory=tuple)
    class_name: str | int | None = None
    image: str | None = None
    embedding: np.ndarray | None = None
    audio: str | None = None
    #: an ``image`` target given as pixels ((H, W, 3) uint8) rather than a file
    pixels: np.ndarray | None = None

    @classmethod
    def from_image(cls, image: Any) -> "Target":
        """An image target from a file path, or from pixels (anything `mmattr.load_image`
        reads: a PIL image, an array, a tensor); the image the text side explains against."""
        import os

        if isinstance(image, (str, os.PathLike)):
            path = Path(image)
            if not path.is_file():
                raise InputError(f"target image not found: {path}")
            return cls(kind="image", image=str(path))
        from .image import load_image

        return cls(kind="image", pixels=load_image(image))

    @classmethod
    def from_audio(cls, path: str | Path) -> "Target":
        import os

        if not isinstance(path, (str, os.PathLike)):
            raise InputError(f"an audio target is a WAV file, not a {type(path).__name__}")
        if not Path(path).is_file():
            raise InputError(f"target audio not found: {path}")
        return cls(kind="audio", audio=str(path))

    @classmethod
    def from_text(cls, text: str | list[str] | tuple[str, ...]) -> "Target":
        texts = (text,) if isinstance(text, str) else tuple(text)
        texts = tuple(t.strip() for t in texts)
        if not texts or any(not t for t in texts):
            raise InputError(f"the target text is empty: pass a prompt such as {arg('text', 'a red circle')}")
        return cls(kind="text", texts=texts)

    @classmethod
    def from_options(cls, text: str | list[str] | None = None, class_name: str | int | None = None,
                     image: str | Path | None = None,
                     embedding: str | Path | np.ndarray | None = None) -> "Target":
        """Exactly one of the four: ``text=`` / ``class_name=`` / ``target_image=`` /
        ``target_embedding=`` (the CLI's --text / --class / --target-image / --target-embedding)."""
        given = [arg(name) for name, v in (("text", text), ("class_name", class_name),
                                           ("target_image", image), ("target_embedding", embedding))
                 if v is not None and not (isinstance(v, (list, tuple)) and not v)]
        if not given:
            raise InputError(f"no target: pass {arg('text')}, {arg('class_name')}, "
                             f"{arg('target_image')} or {arg('target_embedding')}")
        if len(given) > 1:
            raise InputError(f"give one target, not {' and '.join(given)}")
        if text is not None:
            return cls.from_text(text)
        if class_name is not None:
            name = class_name.strip() if isinstance(class_name, str) else class_name
            if name == "":
                raise InputError("the target class is empty")
            if isinstance(name, str) and name.isdigit():
                name = int(name)
            return cls(kind="class", class_name=name)
        if image is not None:
            path = Path(image)
            if not path.is_file():
                raise InputError(f"target image not found: {path}")
            return cls(kind="image", image=str(path))
        if isinstance(embedding, np.ndarray):
            vec = embedding
        else:
            path = Path(embedding)  # type: ignore[arg-type]
            if not path.is_file():
                raise InputError(f"target embedding file not found: {path}")
            try:
                vec = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise InputError(f"cannot read target embedding {path}: {exc}") from None
        vec = np.asarray(vec, dtype=np.float32).squeeze()
        if vec.ndim != 1 or not np.all(np.isfinite(vec)) or not np.any(vec):
            raise InputError(f"the target embedding must be one finite, non-zero vector, got shape {vec.shape}")
        return cls(kind="embedding", embedding=vec)

    @property
    def label(self) -> str:
        """The name used for this target in vocabularies and outputs."""
        if self.kind == "text":
            return " | ".join(self.texts)
        if self.kind == "class":
            return str(self.class_name)
        if self.kind == "image":
            return f"image:{Path(self.image).name}" if self.image else "image:array"
        if self.kind == "audio":
            return f"audio:{Path(self.audio).name}"  # type: ignore[arg-type]
        return f"embedding[{self.embedding.shape[0]}]"  # type: ignore[union-attr]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "label": self.label}
        if self.kind == "text":
            out["texts"] = list(self.texts)
        elif self.kind == "class":
            out["class"] = self.class_name
        elif self.kind == "image":
            out["image"] = str(Path(self.image).resolve()) if self.image else None
        elif self.kind == "audio":
            out["audio"] = str(Path(self.audio).resolve())  # type: ignore[arg-type]
        else:
            out["dim"] = int(self.embedding.shape[0])  # type: ignore[union-attr]
        return out
