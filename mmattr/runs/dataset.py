"""The one dataset reader: items, labels, and the decoding of images and masks.

`read_dataset(folder)` reads a manifest folder (``manifest.jsonl``: one JSON object per line
with ``image``, optional ``text``, ``mask``, ``label`` and any metadata fields; paths relative
to the folder) or an ImageFolder (one subfolder per class, label = folder name, as torchvision
reads it). Items are metadata only; `load_item` decodes an item's image and mask when it is
worked on, the same way for every command.

The mask rule (one, for every command): a mask is a single-channel (8-bit, 16-bit, 1-bit,
float, palette by index) or RGB image of exactly its image's size, and a pixel is in the mask
when any of its colour channels is non-zero (alpha is ignored), so 0/1 and 0/255 masks, and a
red object on black, read alike. A mask of another size, or one that cannot be read, makes its
item a bad item: skipped and listed by every command, never resized, never fatal to the run.

Symbolic links in an ImageFolder are followed, but every folder is entered once and every file
read once by its real path: a link loop (``selfdir -> .``) adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from ..errors import InputError

MANIFEST = "manifest.jsonl"
#: image extensions of an ImageFolder (torchvision's IMG_EXTENSIONS)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

__all__ = ["MANIFEST", "IMAGE_EXTENSIONS", "ItemError", "DataItem", "BadItem", "Dataset",
           "Loaded", "read_dataset", "manifest_key", "load_item", "load_item_image",
           "load_mask", "mask_from_array", "file_digest", "item_digest", "dataset_identity"]


class ItemError(InputError):
    """One dataset item cannot be used (missing, corrupt or unreadable file, a mask of the
    wrong size); the run skips it and lists it."""


@dataclass(frozen=True)
class DataItem:
    """One dataset entry. ``key`` is unique within the dataset and stable across runs: for a
    manifest line it is its (image, text, mask, label), so two lines with the same image and
    text but different masks stay distinct; for an ImageFolder it is the relative path."""

    key: str
    image: str                      # path as written, relative to the dataset folder
    path: Path                      # the image file: dataset folder / image
    label: str | None = None
    text: str | None = None         # the target text (a manifest's text, else its label)
    mask: str | None = None         # relative path of a ground-truth mask
    mask_path: Path | None = None   # the mask file: dataset folder / mask
    line: int | None = None         # manifest line number (None for an ImageFolder)
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class BadItem:
    """An item that was skipped, and why (one line)."""

    image: str
    reason: str
    line: int | None = None

    def describe(self) -> str:
        where = f" (manifest line {self.line})" if self.line is not None else ""
        return f"{self.image}{where}: {self.reason}"


@dataclass
class Dataset:
    """A dataset folder read by `read_dataset`."""

    root: Path
    kind: str                       # "manifest" or "imagefolder"
    items: list[DataItem]           # usable items, in file order, duplicates dropped
    bad: list[BadItem]              # items whose image (or mask) file is missing
    classes: list[str]              # ImageFolder: class folders; manifest: sorted labels
    duplicates: list[int] = field(default_factory=list)  # manifest lines equal to an earlier one
    #: files reached a second time through symbolic links (read once, by their real path)
    linked_twice: int = 0

    def __len__(self) -> int:
        return len(self.items)

    def load(self, item: DataItem) -> "Loaded":
        """The item's image and mask, by the one rule (`load_item`)."""
        return load_item(item)

    def digest(self, item: DataItem) -> str:
        """The content hash of the item's image and mask (`item_digest`)."""
        return item_digest(item)


def dataset_identity(folder: str | os.PathLike) -> str:
    """What names "the same dataset" in an output folder's settings: its real path."""
    return os.path.realpath(folder)


def read_dataset(folder: str | os.PathLike, *, need: Sequence[str] = ()) -> Dataset:
    """Read a manifest folder or an ImageFolder; one-line `InputError` for an unusable folder.

    `need` lists fields every item must have (``"text"``, ``"label"``): a manifest line
    without one is an error naming the line. A missing image or mask file is not an error:
    the item goes to ``Dataset.bad``; a dataset with no usable item is.
    """
    root = Path(folder)
    if not root.exists():
        raise InputError(f"dataset folder not found: {root}")
    if not root.is_dir():
        raise InputError(f"not a folder: {root} (give the folder that holds manifest.jsonl "
                         "or one subfolder of images per class)")
    manifest = root / MANIFEST
    if manifest.exists() or manifest.is_symlink():
        if not manifest.is_file():
            raise InputError(f"{manifest} is not a file; the manifest is a file with one JSON "
                             "object per line (see `mmattr dataset shapes`)")
        data = _read_manifest(root, need)
    else:
        data = _read_imagefolder(root)
    if not data.items:
        if data.bad:
            raise InputError(f"no usable image in {root}: {len(data.bad)} skipped, e.g. "
                             f"{data.bad[0].describe()}")
        raise InputError(f"{manifest if data.kind == 'manifest' else root} lists no images")
    return data


def manifest_key(image: str, text: str | None, mask: str | None, label: str | None) -> str:
    """The key of a manifest line: its image, text, mask and label (paths normalised)."""
    norm = [posixpath.normpath(image), text, posixpath.normpath(mask) if mask else None, label]
    return json.dumps(norm, ensure_ascii=False)


def _read_manifest(root: Path, need: Sequence[str]) -> Dataset:
    from ..datasets.shapes import manifest_records

    path = root / MANIFEST
    items: list[DataItem] = []
    bad: list[BadItem] = []
    seen: set[str] = set()
    duplicates: list[int] = []
    for n, rec in manifest_records(path):
        label = rec.get("label")
        label = str(label) if label is not None else None
        text = rec.get("text") if rec.get("text") is not None else label
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise InputError(f"{path}:{n}: 'text' must be a non-empty string")
        text = text.strip() if text is not None else None
        if "text" in need and text is None:
            raise InputError(f"{path}:{n}: needs a 'text' (or 'label') to explain")
        if "label" in need and label is None:
            raise InputError(f"{path}:{n}: needs a 'label' (the ground-truth class)")
        mask = rec.get("mask")
        if mask is not None and not isinstance(mask, str):
            raise InputError(f"{path}:{n}: 'mask' must be a path")
        image = posixpath.normpath(rec["image"])
        mask = posixpath.normpath(mask) if mask is not None else None
        key = manifest_key(image, text, mask, label)
        if key in seen:
            duplicates.append(n)
            continue
        seen.add(key)
        missing = next((f"{what} file not found: {root / rel}" if not (root / rel).exists()
                        else f"{what} is not a file: {root / rel}"
                        for what, rel in (("image", image), ("mask", mask))
                        if rel is not None and not (root / rel).is_file()), None)
        if missing:
            bad.append(BadItem(image, missing, n))
            continue
        extra = {k: v for k, v in rec.items() if k not in ("image", "text", "mask", "label")}
        items.append(DataItem(key, image, root / image, label, text, mask,
                              root / mask if mask else None, n, extra))
    labels = sorted({it.label for it in items if it.label is not None})
    return Dataset(root, "manifest", items, bad, labels, duplicates)


def _read_imagefolder(root: Path) -> Dataset:
    # As torchvision's ImageFolder: classes are the sorted subfolders (hidden ones skipped
    # here: a .cache folder is not a class), images found recursively in each, by extension,
    # in sorted folder-path order. Unlike os.walk(followlinks=True), a folder reached again
    # through a link (a loop, or another class's folder) is not entered again, and a file is
    # taken once by its real path.
    seen_dirs = {os.path.realpath(root)}
    seen_files: set[str] = set()
    twice = 0
    classes: list[str] = []
    items: list[DataItem] = []
    names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise InputError(f"no manifest.jsonl and no class subfolders in {root}; give a folder "
                         "with manifest.jsonl (see `mmattr dataset shapes`) or one subfolder of "
                         "images per class")
    root_real = os.path.realpath(root)
    for cls in names:
        real = os.path.realpath(root / cls)
        if real in seen_dirs or _is_within(root_real, real):
            continue  # a link to the dataset itself, an ancestor, or a class already read
        folders = _folders(root / cls, seen_dirs)
        classes.append(cls)
        for dirpath in sorted(folders):
            try:
                entries = sorted(os.scandir(dirpath), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                name = e.name
                if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                try:
                    if not e.is_file():
                        continue
                except OSError:
                    continue
                real_file = os.path.realpath(e.path)
                if real_file in seen_files:
                    twice += 1
                    continue
                seen_files.add(real_file)
                full = Path(e.path)
                rel = full.relative_to(root).as_posix()
                items.append(DataItem(rel, rel, full, cls, cls))
    return Dataset(root, "imagefolder", items, [], classes, linked_twice=twice)


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _folders(top: Path, seen_dirs: set[str]) -> list[str]:
    """Every folder under `top` (itself included) as reached by path, each real folder once."""
    out: list[str] = []
    stack = [str(top)]
    while stack:
        d = stack.pop()
        real = os.path.realpath(d)
        if real in seen_dirs:
            continue
        seen_dirs.add(real)
        out.append(d)
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir() and not e.name.startswith("."):
                    stack.append(e.path)
            except OSError:
                continue
    return out


# -- decoding ------------------------------------------------------------------------------

class Loaded(NamedTuple):
    """An item's pixels: (H, W, 3) uint8 image and (H, W) bool mask (None without one)."""

    image: np.ndarray
    mask: np.ndarray | None


def load_item_image(item: DataItem) -> np.ndarray:
    """The item's image as a writable RGB uint8 array; `ItemError` when it cannot be read."""
    from ..image import load_image

    try:
        return np.array(load_image(item.path))  # a copy: torch warns on read-only arrays
    except InputError as exc:
        raise ItemError(str(exc)) from None
    except Exception as exc:  # e.g. PIL's decompression-bomb error: skip the item, go on
        raise ItemError(f"cannot read image {item.path}: {type(exc).__name__}: {exc}") from None


def load_item(item: DataItem) -> Loaded:
    """The item's image and mask, decoded by the one rule (module docstring); `ItemError` for
    an unreadable image or mask, or a mask of another size than its image."""
    image = load_item_image(item)
    mask = load_mask(item.mask_path, image.shape[:2]) if item.mask_path is not None else None
    return Loaded(image, mask)


def mask_from_array(arr: np.ndarray, mode: str = "") -> np.ndarray:
    """The mask rule on decoded pixels: (H, W) bool, true where any colour channel is non-zero
    (an alpha channel, the last of LA / RGBA / PA, is ignored)."""
    arr = np.asarray(arr)
    if arr.ndim == 3:
        channels = arr.shape[2]
        if mode in ("LA", "La", "PA") or (not mode and channels == 2):
            arr = arr[..., :1]
        elif mode in ("RGBA", "RGBa") or (not mode and channels == 4):
            arr = arr[..., :3]
        return (arr != 0).any(axis=2)
    if arr.ndim != 2:
        raise InputError(f"a mask must be (H, W) or (H, W, C), got {arr.shape}")
    return arr != 0


def load_mask(path: str | os.PathLike, hw: tuple[int, int] | None = None) -> np.ndarray:
    """A ground-truth mask file as (H, W) bool by the mask rule; `ItemError` when it cannot
    be read or its size is not `hw` (its image's (H, W))."""
    from PIL import Image, ImageOps

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                try:  # oriented as its image is (load_image applies EXIF orientation too)
                    img = ImageOps.exif_transpose(img) or img
                except (OSError, ValueError, TypeError, KeyError):
                    pass
                mode = img.mode
                arr = np.asarray(img)
    except Exception as exc:  # any unreadable mask skips its item, not the run
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ItemError(f"cannot read mask {path}: {first}") from None
    m = mask_from_array(arr, mode)
    if hw is not None and m.shape != tuple(hw):
        raise ItemError(f"mask {path} is {m.shape[1]}x{m.shape[0]}, its image {hw[1]}x{hw[0]}; "
                        "a mask must have its image's size")
    return m


def file_digest(path: str | os.PathLike) -> str:
    """Content hash of a file (BLAKE2b, 160 bits, hex): what "the same image" means."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=20)).hexdigest()


def combine_digests(image: str, mask: str | None) -> str:
    """An item's digest from its image's and its mask's."""
    if mask is None:
        return image
    return hashlib.blake2b(f"{image}:{mask}".encode(), digest_size=20).hexdigest()


def item_digest(item: DataItem) -> str:
    """The content hash of an item's image and mask: a record made for other content is never
    reused. `ItemError` when a file cannot be read."""
    try:
        image = file_digest(item.path)
        mask = file_digest(item.mask_path) if item.mask_path is not None else None
    except OSError as exc:
        raise ItemError(f"cannot read {exc.filename or item.path}: {exc.strerror or exc}") from None
    return combine_digests(image, mask)
