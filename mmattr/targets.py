"""What an explanation is about: a text prompt today, later a class, an image or an embedding."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InputError


@dataclass(frozen=True)
class Target:
    """A target the image is matched against.

    `texts` holds one or more prompts; their template-averaged embeddings are averaged into one.
    """

    kind: str
    texts: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_text(cls, text: str | list[str] | tuple[str, ...]) -> "Target":
        texts = (text,) if isinstance(text, str) else tuple(text)
        texts = tuple(t.strip() for t in texts)
        if not texts or any(not t for t in texts):
            raise InputError("the target text is empty: pass a prompt such as --text \"a red circle\"")
        return cls(kind="text", texts=texts)

    @property
    def label(self) -> str:
        """The name used for this target in vocabularies and outputs."""
        return " | ".join(self.texts)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "texts": list(self.texts)}
