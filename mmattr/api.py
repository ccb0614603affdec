"""The Python API that the CLI and evaluation harnesses call."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .adapters import Adapter, load_adapter
from .config import ExplainConfig, load_config
from .errors import InputError, arg
from .explainers import EXPLAINERS
from .explanation import Explanation
from .image import ImageLike, load_image
from .targets import Target

#: a progress callback: (done, total)
ProgressFn = Callable[[int, int], None]


def explain(image: ImageLike | None = None, text: str | list[str] | None = None,
            model: str | Adapter | Any = None, *, target: Target | None = None,
            class_name: str | int | None = None, target_image: str | Path | None = None,
            target_embedding: str | Path | Any = None, audio: Any = None,
            config: ExplainConfig | str | Path | None = None,
            progress: bool | ProgressFn | None = None, return_tensors: str | None = None,
            fill: Any = None, baseline: Any = None, division: Any = None,
            context: Any = None, **settings: Any) -> Explanation:
    """Explain which regions of `image` make `model` match a target; with ``explain="text"``
    which words of `text` make it match `image`, with ``explain="audio"`` which segments of
    `audio` make it match `image` (or `text`).

    `image`: a file path, a PIL image, an (H, W, 3) or (3, H, W) array, or a (3, H, W) /
    (1, 3, H, W) torch tensor on any device (pixels in [0, 1] or [0, 255]).
    The target is `text` (a prompt, or a list of prompts averaged), `class_name`, a
    `target_image`, a `target_embedding` (.npy path or array), or a ready `Target`.
    `model` is a spec (``demo``, ``hf:FOLDER``), an already loaded `Adapter`, or a torch
    ``nn.Module`` classifier (wrapped as `mmattr.from_module` does; its ``class_names``
    attribute names the classes); loaded models are cached, so repeated calls reuse them.

    `fill` (or `baseline`, Captum's word) is what hidden pixels become: ``"black"`` (default),
    ``"mean"``, ``"blur"``, a gray level in [0, 1], an image file, or an image as an array or
    tensor (`mmattr.fill`). `division` names a division (``"slico"``, ``"grid"``, ...) or is an
    (H, W) integer label map (array or tensor, Captum's ``feature_mask``): one region per label,
    and `regions` defaults to their count. `progress`: True for a tqdm bar, or a function
    ``(done, total)``. `return_tensors`: ``"pt"`` gives `attribution`, `regions` and
    `region_scores` as torch tensors on the model's device (the default for a tensor `image`),
    ``"np"`` numpy arrays. `context` is a `mmattr.runs.RunContext` (a dataset command's: each
    process explains alone, with a map cache); the default splits search steps over every
    process of a launch.

    `settings` override the config's fields (``regions=25``, ``score="probability"``, ...); a
    divider's, search's or method's own options go in ``options={"rise": {"masks": 2000}}``
    (merged into the config's, option by option; ``mmattr options`` lists them). Options for a
    component this run does not use are named in a warning.

    ``explain="text"`` (a config setting): the elements are the words of `text` (``options=
    {"text": {"unit": "tokens"}}`` for tokens), the target is `image` (or `audio`); the
    Explanation's `elements` hold each word, its value and rank, `attribution` / `regions` are
    per character. ``explain="audio"``: `audio` is a WAV path, an `AudioClip` or
    ``(waveform, sample_rate)``; the target is `image` or `text` (an ImageBind-style model);
    maps are per sample. With the image explained, `audio` is a target (its clip's embedding).

    >>> e = explain("scene.png", text="a red circle")
    >>> e.order[:3], e.insertion_auc
    >>> e = explain("scene.png", text="a red circle", method="rise", options={"rise": {"masks": 500}})
    >>> e = explain("scene.png", text="a red circle and a blue square", explain="text")
    >>> [w["label"] for w in sorted(e.elements, key=lambda w: w["rank"])][:2]
    """
    cfg = _with_arrays(_config(config), fill, baseline, division, settings)
    cfg = cfg.replace(**settings, model=model if isinstance(model, str) else None)
    if cfg.explain != "image":
        tensors = _tensor_format(return_tensors, image)
        result = _explain_other(cfg, image, text, model, target, class_name, target_image,
                                target_embedding, audio, progress, context, settings)
        # return_tensors as for an image: the maps as torch tensors on the model's device
        return (result.as_tensors(result.model.get("device", "cpu")) if tensors == "pt"
                else result)
    if image is None:
        raise InputError(f"no image to explain: pass one (or {arg('explain', 'text')} to "
                         "explain the words of a text against an image)")
    tensors = _tensor_format(return_tensors, image)
    if target is None:
        target = (Target.from_audio(audio) if audio is not None and text is None
                  and class_name is None and target_image is None and target_embedding is None
                  else Target.from_options(text, class_name, target_image, target_embedding))
        if audio is not None and target.kind != "audio":
            raise InputError(f"give one target, not {arg('audio')} and another")
    pixels = load_image(image)
    explainer_cls = validate(cfg)  # registry names, before any model is loaded
    _warn_unused_options(settings.get("options"), explainer_cls, cfg)
    adapter = load_adapter(cfg.model if model is None else model, cfg.device, cfg.dtype)
    if not isinstance(model, str) and model is not None:  # an Adapter or a module: its name
        cfg = cfg.replace(model=adapter.spec or type(adapter).__name__)
    adapter = with_templates(adapter, cfg.templates)
    from .scale import explain_at_max_side

    with progress_callback(progress, f"{cfg.method} explanation") as report:
        result = explain_at_max_side(explainer_cls(cfg, context=context), pixels, target,
                                     adapter, cfg.max_side,
                                     progress=report)
    if isinstance(image, (str, os.PathLike)):  # where it came from, as the CLI records it
        from .outdir import file_sha256

        result.source = str(Path(image).resolve())
        result.image_sha256 = file_sha256(Path(image))
    return result.as_tensors(adapter.device) if tensors == "pt" else result


def _explain_other(cfg: ExplainConfig, image: Any, text: Any, model: Any, target: Target | None,
                   class_name: Any, target_image: Any, target_embedding: Any, audio: Any,
                   progress: Any, context: Any, settings: dict[str, Any]) -> Explanation:
    """`explain` for a text or an audio clip: the explained input, its target, the run."""
    source, target = explained_and_target(cfg.explain, image, text, audio, target, class_name,
                                          target_image, target_embedding)
    explainer_cls = validate(cfg)
    _warn_unused_options(settings.get("options"), explainer_cls, cfg)
    adapter = load_adapter(cfg.model if model is None else model, cfg.device, cfg.dtype)
    if not isinstance(model, str) and model is not None:
        cfg = cfg.replace(model=adapter.spec or type(adapter).__name__)
    adapter = with_templates(adapter, cfg.templates)
    with progress_callback(progress, f"{cfg.method} {cfg.explain} explanation") as report:
        return explainer_cls(cfg, context=context).explain(source, target, adapter,
                                                           progress=report)


def explained_and_target(modality: str, image: Any = None, text: Any = None, audio: Any = None,
                         target: Target | None = None, class_name: Any = None,
                         target_image: Any = None, target_embedding: Any = None
                         ) -> tuple[Any, Target]:
    """(what is explained, its target) for ``explain=text|audio``: the text's target is the
    image (or an audio clip), the clip's the image or a text; one-line errors otherwise."""
    if modality == "text":
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{arg('explain', 'text')} explains the words of "
                             f"{arg('text', 'a red circle')}: give one text")
        source: Any = text
        given = [(arg("image"), image), (arg("audio"), audio)]
    elif modality == "audio":
        if audio is None:
            raise InputError(f"{arg('explain', 'audio')} explains the segments of "
                             f"{arg('audio', 'CLIP.wav')}: give an audio clip")
        from .sound import as_clip

        source = as_clip(audio)
        given = [(arg("image"), image), (arg("text"), text)]
    else:  # a modality registered by a plugin: its input is `text` or `audio`, as given
        source = text if text is not None else audio
        given = [(arg("image"), image)]
    extra = [(arg("class_name"), class_name), (arg("target_image"), target_image),
             (arg("target_embedding"), target_embedding)]
    named = [name for name, value in given + extra if value is not None]
    if target is not None:
        if named:
            raise InputError(f"give {arg('target')} or {named[0]}, not both")
        return source, target
    if len(named) != 1:
        choices = " or ".join(name for name, _ in given)
        raise InputError(f"explaining {modality} needs one target, {choices}"
                         + (f"; got {' and '.join(named)}" if named else ""))
    # The one target named, by its name: the explained input is never its own target (with
    # explain="audio" the clip in `audio` is the source and `text` the target).
    build = {arg("image"): lambda: Target.from_image(image),
             arg("audio"): lambda: Target.from_audio(audio),
             arg("text"): lambda: Target.from_text(text),
             arg("class_name"): lambda: Target.from_options(class_name=class_name),
             arg("target_image"): lambda: Target.from_image(target_image),
             arg("target_embedding"): lambda: Target.from_options(embedding=target_embedding)}
    return source, build[named[0]]()


def _config(config: ExplainConfig | str | Path | None) -> ExplainConfig:
    if config is None:
        return ExplainConfig()
    if isinstance(config, ExplainConfig):
        return config
    return load_config(config)


def _tensor_format(return_tensors: str | None, image: Any) -> str:
    """``pt`` or ``np``: asked for, else torch in → torch out."""
    from .image import is_tensor

    if return_tensors is None:
        return "pt" if is_tensor(image) else "np"
    if return_tensors not in ("pt", "np"):
        raise InputError(f"{arg('return_tensors', return_tensors)}: use 'pt' (torch tensors) or "
                         "'np' (numpy arrays)")
    return return_tensors


def _is_array(value: Any) -> bool:
    from PIL import Image

    from .image import is_tensor

    return isinstance(value, (np.ndarray, Image.Image)) or is_tensor(value)


def _with_arrays(cfg: ExplainConfig, fill: Any, baseline: Any, division: Any,
                 settings: dict[str, Any]) -> ExplainConfig:
    """`fill` / `baseline` and `division` into the config: names as they are, arrays into
    `GivenArrays` with their digests in the settings (so results and caches tell them apart).
    An array division sets `regions` to its label count unless `settings` give one."""
    from .config import GivenArrays
    from .fill import ARRAY_PREFIX, digest

    if fill is not None and baseline is not None:
        raise InputError(f"give {arg('fill')} or {arg('baseline')}, not both: they are the same "
                         "setting (baseline is Captum's word for it)")
    fill = baseline if fill is None else fill
    arrays = cfg.arrays
    changes: dict[str, Any] = {}
    if fill is not None:
        if _is_array(fill):
            from .image import load_image as pixels_of

            given = pixels_of(fill)  # any image-like → (H, W, 3) uint8, checked now
            arrays = GivenArrays(labels=arrays.labels, fill=given)
            changes["fill"] = ARRAY_PREFIX + digest(given)
        else:
            changes["fill"] = fill
    if division is not None:
        if _is_array(division):
            from .division import check_label_map

            labels = check_label_map(division)
            arrays = GivenArrays(labels=labels, fill=arrays.fill)
            changes["division"] = f"labels:{digest(labels)}"
            if settings.get("regions") is None:
                changes["regions"] = int(np.unique(labels).size)
        else:
            changes["division"] = division
    return cfg.replace(**changes, arrays=arrays) if changes else cfg


def _warn_unused_options(options: Any, explainer_cls: Any, cfg: ExplainConfig) -> None:
    """A warning naming the components in `options` this run does not use (a typo for the
    method's name, or options meant for another method): they would be silently ignored."""
    if not isinstance(options, dict):
        return
    unused = sorted(set(options) - explainer_cls.components(cfg))
    if unused:
        from .errors import warn

        used = ", ".join(sorted(explainer_cls.components(cfg)))
        warn(f"options for {', '.join(unused)} are not used by this run (it uses {used}); "
             "they were ignored")


@contextmanager
def progress_callback(progress: bool | ProgressFn | None, description: str = "explaining"
                      ) -> Iterator[ProgressFn | None]:
    """`progress` as the callback the explainers call with (done, total): True makes a tqdm
    bar (closed at the end), a function is used as it is, None or False reports nothing."""
    if progress is None or progress is False:
        yield None
        return
    if callable(progress) and progress is not True:
        yield progress
        return
    if progress is not True:
        raise InputError(f"{arg('progress')} takes True (a progress bar), False or a function "
                         f"(done, total), not a {type(progress).__name__}")
    from tqdm import tqdm

    bar = tqdm(desc=description, leave=False)

    def update(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(max(0, done - bar.n))

    try:
        yield update
    finally:
        bar.close()


def with_templates(adapter: Adapter, templates: str | None) -> Adapter:
    """The adapter with its prompt templates set to `templates` (a name or file) for both text
    targets and class names; a shallow copy sharing the model, so a cached adapter never
    changes. None returns it as it is."""
    import copy

    if templates is None:
        return adapter
    from .vocabulary import load_templates

    chosen = load_templates(templates)
    if chosen == adapter.templates and chosen == adapter.text_templates:
        return adapter
    view = copy.copy(adapter)
    view.templates = view.text_templates = chosen
    return view


def validate(cfg: ExplainConfig):
    """Check the registry names of a config before any model is loaded; returns the explainer."""
    from .division import DIVIDERS
    from .search import SEARCHES

    from .elements import MODALITIES

    SEARCHES.get(cfg.search)
    name, _, prior = cfg.division.partition(":")
    DIVIDERS.get(name)
    if name == "prior" and prior:  # prior:<method>: the method must exist before any model is loaded
        EXPLAINERS.get(prior)
    MODALITIES.get(cfg.explain)
    explainer = EXPLAINERS.get(cfg.method)
    if cfg.explain not in explainer.modalities:
        able = [n for n in EXPLAINERS.names() if cfg.explain in EXPLAINERS.get(n).modalities]
        raise InputError(f"the {cfg.method} method explains {', '.join(explainer.modalities)}, "
                         f"not {cfg.explain}; for {arg('explain', cfg.explain)} use "
                         f"{', '.join(able)}")
    return explainer


def default_out_dir(image: str | Path | None, target: Target | None = None,
                    config: ExplainConfig | None = None, source: Any = None) -> Path:
    """``scenes/cat.png`` → ``explanations/cat.smdl.a-cat-1f2e3d``: one folder per image,
    method and target (see `mmattr.outdir.default_out_dir`); a text or audio explanation
    (`source`: the text, the clip's path) is named after what it explains."""
    from .outdir import default_out_dir as _default

    cfg = config or ExplainConfig()
    return _default(image, target, cfg.method, cfg.division, source=source)


def explain_to_dir(image: str | Path | None, target: Target, out_dir: str | Path | None = None,
                   *, config: ExplainConfig | None = None, overwrite: bool = False,
                   progress=None, source: Any = None) -> tuple[Explanation | None, Path]:
    """Explain an image file and write every result file into `out_dir`; with
    ``config.explain`` text or audio, `source` (the text, the clip's WAV path) is explained
    against `target` (an image file target, or a text for a clip) and `image` is unused.

    `out_dir` must be new, empty or an earlier result of the same target and settings (else
    `InputError`, checked before any work; `overwrite` replaces a result of other settings).
    A folder already holding a complete result for the same image content, target and
    settings is left as it is and (None, out_dir) is returned, so reruns skip finished work;
    an edited image is explained again.
    """
    from .explanation import RESULT_FILES
    from .outdir import explain_settings, file_sha256, legacy_result, result_key
    from .runs.folder import OutputFolder

    cfg = config or ExplainConfig()
    other = cfg.explain != "image"
    out = (Path(out_dir) if out_dir is not None
           else default_out_dir(image, target, cfg, source=source if other else None))
    folder = OutputFolder(out, "explain",
                          explain_settings(target, cfg.to_dict(), source if other else None),
                          overwrite=overwrite, files=RESULT_FILES, recognise=legacy_result)
    with folder:
        if other:  # the key: what is explained, its target (files by content), the settings
            key = result_key(None, target, cfg.to_dict(), source)
            if not overwrite and folder.is_complete(key):
                folder.tidy()
                return None, out
            explanation = _explain_other(cfg, None, source if cfg.explain == "text" else None,
                                         None, target, None, None, None,
                                         source if cfg.explain == "audio" else None, progress,
                                         None, {})
            explanation.save(folder, top_k=cfg.top_k, key=key)
            return explanation, out
        path = Path(image)
        sha = file_sha256(path) if path.is_file() else None
        key = result_key(sha, target, cfg.to_dict()) if sha else None
        if not overwrite and key and folder.is_complete(key):
            folder.tidy()  # what an interrupted run left goes, the result stays
            return None, out
        explanation = explain(image, target=target, config=cfg, progress=progress)
        explanation.source = str(path.resolve())
        explanation.image_sha256 = sha
        explanation.save(folder, top_k=cfg.top_k, key=key)
    return explanation, out


def explain_batch(images: Any, targets: Any, model: str | Adapter | Any = None, *,
                  method: str = "smdl", config: ExplainConfig | str | Path | None = None,
                  return_tensors: str | None = None, progress: bool | ProgressFn | None = None,
                  **settings: Any):
    """Explain a batch for an evaluation harness; returns (B, H, W) float32 maps.

    `images`: (B, H, W, 3) uint8, or (B, 3, H, W) / (B, H, W, 3) float in [0, 1] (numpy or
    torch, on any device). `targets`: one per image: a prompt, a `Target`, or a list of
    prompts; a single value is used for every image. `model`, `method`, `config` and `settings`
    (``fill=``, ``division=``, ``regions=``, ...) as in `explain`; the model is loaded once for
    the batch. A `division` label map may be (H, W), shared, or (B, H, W), one per image.
    The maps are numpy, or a torch tensor on the model's device for torch `images` or
    ``return_tensors="pt"``. `progress`: True for a tqdm bar over the images.

    With ``explain="text"`` the `targets` are the texts explained against their images: the
    result is one (N_i,) float32 array of word values per image (a list: texts differ in
    length), in word order (the Explanation's `elements`).

    >>> maps = explain_batch(x, ["a red circle", "a blue square"], model="demo", method="gradcam")
    >>> words = explain_batch(x, ["a red circle and a blue square"] * 2, explain="text")
    """
    from .image import is_tensor, tensor_to_array

    tensors = _tensor_format(return_tensors, images)
    arr = tensor_to_array(images) if is_tensor(images) else np.asarray(images)
    if arr.ndim != 4:
        raise InputError(f"images must be a batch (B, H, W, 3) or (B, 3, H, W), got {arr.shape}")
    if arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if isinstance(targets, (str, Target)) or targets is None:
        targets = [targets] * len(arr)
    targets = list(targets)
    if len(targets) != len(arr):
        raise InputError(f"{len(targets)} targets for {len(arr)} images")
    divisions = _per_image(settings.pop("division", None), len(arr))
    fill, baseline = settings.pop("fill", None), settings.pop("baseline", None)
    cfg = _config(config).replace(method=method, **settings)
    _warn_unused_options(settings.get("options"), validate(cfg), cfg)
    if cfg.explain not in ("image", "text"):
        # a batch is images with their targets; a clip per image has no batch form yet
        raise InputError(f"explain_batch explains images or their texts, not {cfg.explain}: "
                         f"call explain(audio=..., image=..., {arg('explain', cfg.explain)}) "
                         "per clip")
    adapter = load_adapter(cfg.model if model is None else model, cfg.device, cfg.dtype)
    if cfg.explain == "text":
        return _text_batch(arr, targets, adapter, cfg, tensors, progress)
    maps = []
    with progress_callback(progress, f"{method} batch") as report:
        for i, (image, t) in enumerate(zip(arr, targets)):
            target = t if isinstance(t, Target) else Target.from_options(t)
            maps.append(explain(np.ascontiguousarray(image), target=target, model=adapter,
                                config=cfg, division=divisions[i], fill=fill, baseline=baseline,
                                return_tensors="np").attribution.astype(np.float32))
            if report is not None:
                report(i + 1, len(arr))
    out = np.stack(maps)
    if tensors == "pt":
        import torch

        return torch.from_numpy(out).to(adapter.device)
    return out


def _text_batch(images: np.ndarray, texts: list[Any], adapter: Adapter, cfg: ExplainConfig,
                tensors: str, progress: Any) -> list[Any]:
    """`explain_batch` with ``explain="text"``: each text's word values against its image."""
    out: list[Any] = []
    with progress_callback(progress, f"{cfg.method} text batch") as report:
        for i, (image, text) in enumerate(zip(images, texts)):
            if isinstance(text, Target):
                if text.kind != "text" or len(text.texts) != 1:
                    raise InputError("explaining text takes one text per image")
                text = text.texts[0]
            e = explain(np.ascontiguousarray(image), text=text, model=adapter, config=cfg)
            values = np.array([row["value"] for row in e.elements], np.float32)
            if tensors == "pt":
                import torch

                values = torch.from_numpy(values).to(adapter.device)
            out.append(values)
            if report is not None:
                report(i + 1, len(images))
    return out


def _per_image(division: Any, n: int) -> list[Any]:
    """A division for each of `n` images: a name or one (H, W) map shared, or (B, H, W) maps."""
    if division is None or not _is_array(division):
        return [division] * n
    from .image import is_tensor, tensor_to_array

    maps = tensor_to_array(division) if is_tensor(division) else np.asarray(division)
    if maps.ndim == 3:
        if maps.shape[0] != n:
            raise InputError(f"{maps.shape[0]} label maps for {n} images")
        return list(maps)
    return [maps] * n
