"""Explain's result folders: the default folder name and the result key.

"Already done" is decided by a key over the image file's content, the target and every
setting (`result_key`), never by the image's path. The folder rules themselves (new, empty or
mmattr's own; one marker; --overwrite; atomic writes) are `mmattr.runs.folder`'s, shared by
every command.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from .runs.folder import MARKER

#: the result files of `mmattr explain` (also `explanation.RESULT_FILES`)
_RESULT_FILES = ("attribution.npy", "regions.npy", "overlay.png", "curves.png",
                 "explanation.json")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def target_fingerprint(target) -> dict[str, Any]:
    """The target by content: texts and classes as they are, files and vectors by hash."""
    import numpy as np

    data = {"kind": target.kind, "label": target.label}
    if target.kind == "text":
        data["texts"] = list(target.texts)
    elif target.kind == "class":
        data["class"] = target.class_name
    elif target.kind == "image" and target.pixels is not None:
        data["sha256"] = hashlib.sha256(np.ascontiguousarray(target.pixels).tobytes()).hexdigest()
    elif target.kind in ("image", "audio"):
        data["sha256"] = file_sha256(target.image if target.kind == "image" else target.audio)
    elif target.embedding is not None:
        data["sha256"] = hashlib.sha256(np.ascontiguousarray(target.embedding, np.float32)
                                        .tobytes()).hexdigest()
    return data


def source_fingerprint(source: Any) -> dict[str, Any] | None:
    """What a text or audio explanation explains, by content: the text as it is, a clip by its
    file's hash; None for an image (its file's hash is the key's own)."""
    if source is None:
        return None
    if isinstance(source, str) and Path(source).suffix.lower() == ".wav" and Path(source).is_file():
        return {"audio_sha256": file_sha256(source)}
    return {"text": str(source)}


def result_key(image_sha256: str | None, target, settings: dict[str, Any],
               source: Any = None) -> str:
    """What decides "already done": the image's content, the target's and every setting (and
    what a text or audio explanation explains)."""
    data = {"image": image_sha256, "target": target_fingerprint(target), "settings": settings}
    if source is not None:
        data["explained"] = source_fingerprint(source)
    blob = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _slug(text: str, limit: int = 32) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].rstrip("-") or "target"


def default_out_dir(image: str | Path | None, target=None, method: str | None = None,
                    division: str | None = None, source: Any = None) -> Path:
    """``scenes/cat.png``, "a cat", smdl → ``explanations/cat.smdl.a-cat-1f2e3d``.

    The target's slug and a short hash of it keep two targets of one image apart; the method
    (and a prior division) keeps two methods apart. A text or audio explanation is named after
    what it explains (``text-a-red-circle-9a8b7c``, the clip's name), then its target.
    """
    if source is not None:
        fp = json.dumps(source_fingerprint(source), sort_keys=True)
        if isinstance(source, str) and "text" in (source_fingerprint(source) or {}):
            name = f"text-{_slug(source, 24)}-{hashlib.sha256(fp.encode()).hexdigest()[:6]}"
        else:
            name = f"audio-{Path(str(source)).stem or 'clip'}"
        division = None
    else:
        name = Path(image).stem if image is not None else "image"
        name = name or "image"
    if method:
        name += "." + method
        if division and division.startswith("prior:"):
            name += "+prior-" + division.split(":", 1)[1]
    if target is not None:
        if target.kind == "text":
            label = target.label
        elif target.kind == "class":
            label = f"class-{target.class_name}"
        elif target.kind in ("image", "audio"):
            label = f"{target.kind}-{Path(target.image or target.audio).stem}"
        else:
            label = "embedding"
        digest = hashlib.sha256(json.dumps(target_fingerprint(target), sort_keys=True,
                                           default=str).encode()).hexdigest()[:6]
        name += f".{_slug(label)}-{digest}"
    return Path("explanations") / name


def explain_settings(target, config_dict: dict[str, Any], source: Any = None) -> dict[str, Any]:
    """What an explain result folder's marker records as its settings: the target and every
    setting (not the image: an edited image is new work in the same folder, redone); for a text
    or audio explanation, also what it explains (another text is another result)."""
    out = {"target": target_fingerprint(target), "config": config_dict}
    if source is not None:
        out["explained"] = source_fingerprint(source)
    return out


def legacy_result(out: Path) -> bool:
    """A folder written by mmattr before the marker existed: only its result files, and an
    explanation.json that says mmattr wrote it."""
    names = {p.name for p in Path(out).iterdir()}
    if not names or not names <= set(_RESULT_FILES) or "explanation.json" not in names:
        return False
    try:
        return "mmattr_version" in json.loads((Path(out) / "explanation.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False


#: what `mmattr dataset shapes` writes into its folder
DATASET_ENTRIES = {"images", "masks", "manifest.jsonl", MARKER}


def dataset_folder(out: Path) -> bool:
    """An export of `mmattr dataset shapes` written before the marker existed."""
    names = {p.name for p in Path(out).iterdir()}
    return bool(names) and names <= DATASET_ENTRIES and "manifest.jsonl" in names
