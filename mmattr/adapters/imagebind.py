"""ImageBind-style models: several modalities (vision, text, audio) in one embedding space.

The model is called as the published ImageBind is: ``model({modality: input}) -> {modality:
(B, D)}`` with modality keys ``vision``, ``text``, ``audio``. Specs:

- ``imagebind``: the published ``imagebind_huge`` (package ``imagebind`` from
  facebookresearch/ImageBind) with its checkpoint at ``.checkpoints/imagebind_huge.pth``;
- ``imagebind:<checkpoint.pth>``: the published architecture with weights from a file;
- ``imagebind:<module or file.py>:<factory>``: any model with the same call, from user code;
  ``factory()`` returns the model, or ``(model, options)`` with ``tokenize`` (prompts →
  token tensor), ``load_audio`` (path → (1, ...) input), ``audio_transform`` ((T,) float
  waveform tensor, sample rate → (1, ...) input: what explaining audio segments needs),
  ``size``, ``mean``, ``std``.

Ref. Girdhar et al., "ImageBind: One Embedding Space To Bind Them All", CVPR 2023.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import InputError, ModelError
from ..targets import Target
from .base import register_adapter
from ..preprocess import Preprocess
from .base import Adapter, autocast_dtype

VISION, TEXT, AUDIO = "vision", "text", "audio"
#: ImageBind's vision transform: 224 bicubic short side, centre crop, CLIP normalisation
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: the published package is not on PyPI (the name there is an empty placeholder)
_EXTRA = "pip install git+https://github.com/facebookresearch/ImageBind torchaudio"


class ImageBindAdapter(Adapter):
    """Wraps ``model({modality: batch}) -> {modality: (B, D)}``; vision is the explained
    modality, text and audio (when the model has them) serve as targets."""

    def __init__(self, model: torch.nn.Module, device: torch.device, *,
                 tokenize: Callable[[list[str]], torch.Tensor] | None = None,
                 load_audio: Callable[[str], torch.Tensor] | None = None,
                 preprocess: Preprocess | None = None, dtype: str = "auto",
                 logit_scale: float = 100.0,
                 audio_transform: Callable[[torch.Tensor, int], torch.Tensor] | None = None
                 ) -> None:
        self.autocast_dtype = autocast_dtype(dtype, device)
        self.device = device
        self.model = model.to(device).eval().requires_grad_(False)
        self.tokenize = tokenize
        self.load_audio = load_audio
        self.audio_transform = audio_transform
        self.preprocess = preprocess or Preprocess(224, None, (224, 224), CLIP_MEAN, CLIP_STD, "bicubic")
        # The reference's zero-shot logits for ImageBind: 100 · cosine.
        self.logit_scale = logit_scale

    def _embed(self, modality: str, batch: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            out = self.model({modality: batch.to(self.device)})
        return out[modality].float()

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._embed(VISION, pixels)

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward_images(pixels)

    @torch.inference_mode()
    def encode_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        if self.tokenize is None:
            return super().encode_texts(prompts)
        return self._embed(TEXT, self.tokenize(list(prompts)))

    @torch.inference_mode()
    def encode_audio(self, path: str | Path) -> torch.Tensor:
        """The (D,) unit-norm embedding of an audio clip (a WAV file through `audio_transform`
        when the model gives no `load_audio`)."""
        if self.load_audio is None and self.audio_transform is not None:
            from ..sound import read_audio

            clip = read_audio(path)
            wave = torch.from_numpy(clip.waveform).to(self.device)[None]
            return F.normalize(self.encode_waveforms(wave, clip.sample_rate), dim=-1)[0]
        if self.load_audio is None:
            raise ModelError(f"model {self.spec!r} has no audio encoder: it cannot take an audio target")
        if not Path(path).is_file():
            raise InputError(f"audio file not found: {path}")
        try:
            batch = self.load_audio(str(path))
        except (OSError, ValueError, RuntimeError, EOFError) as exc:
            raise InputError(f"cannot read audio {path}: {exc}") from None
        return F.normalize(self._embed(AUDIO, batch), dim=-1)[0]

    @property
    def has_waveforms(self) -> bool:
        """Whether waveforms can be encoded (the audio modality's segments need it)."""
        return self.audio_transform is not None

    @torch.inference_mode()
    def encode_waveforms(self, waves: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """(B, T) mono waveforms in [-1, 1] → (B, D) audio embeddings, each through the
        model's `audio_transform` (its own mel clips), then one batch through the tower."""
        if self.audio_transform is None:
            raise ModelError(f"model {self.spec!r} has no audio_transform: it cannot encode "
                             "waveforms, so it cannot explain audio segments")
        batch = torch.cat([self.audio_transform(w, int(sample_rate)) for w in waves.float()])
        return self._embed(AUDIO, batch)

    def encode_target(self, target: Target) -> torch.Tensor:
        if target.kind == "audio":
            return self.encode_audio(target.audio)  # type: ignore[attr-defined]
        return super().encode_target(target)

    def vision_module(self) -> torch.nn.Module:
        trunks = getattr(self.model, "modality_trunks", None)
        return trunks[VISION] if trunks is not None and VISION in trunks else self.model

    def describe(self) -> dict:
        return {**super().describe(),
                "modalities": [m for m, ok in ((VISION, True), (TEXT, self.tokenize is not None),
                                               (AUDIO, self.load_audio is not None
                                                or self.audio_transform is not None)) if ok]}


def _published(checkpoint: str | None, device: torch.device, dtype: str) -> ImageBindAdapter:
    if importlib.util.find_spec("imagebind") is None:
        raise ModelError(f"the imagebind family needs the ImageBind package: {_EXTRA}; or give "
                         "an ImageBind-style model as imagebind:<module or file.py>:<factory>")
    try:
        from imagebind import data
        from imagebind.models import imagebind_model
    except ImportError as exc:
        raise ModelError(f"the installed imagebind package is not ImageBind's ({exc}): {_EXTRA}") from None
    path = Path(checkpoint or ".checkpoints/imagebind_huge.pth").expanduser()
    if not path.is_file():
        raise ModelError(f"ImageBind checkpoint not found at {path}; download imagebind_huge.pth "
                         "where there is network and pass --model imagebind:PATH")
    model = imagebind_model.imagebind_huge(pretrained=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)

    def tokenize(prompts: list[str]) -> torch.Tensor:
        return data.load_and_transform_text(prompts, "cpu")

    def load_audio(p: str) -> torch.Tensor:
        return data.load_and_transform_audio_data([p], "cpu")

    def audio_transform(wave: torch.Tensor, rate: int) -> torch.Tensor:
        return _published_audio_transform(data, wave, rate)

    return ImageBindAdapter(model, device, tokenize=tokenize, load_audio=load_audio, dtype=dtype,
                            audio_transform=audio_transform)


def _published_audio_transform(data: Any, wave: torch.Tensor, rate: int) -> torch.Tensor:
    """`imagebind.data.load_and_transform_audio_data` from a waveform instead of a file: 16 kHz,
    three 2 s clips, 128 mel bins × 204 frames, the published normalisation. Untested here
    (no published checkpoint); the tests use a factory's own transform."""
    import torchaudio
    from pytorchvideo.data.clip_sampling import ConstantClipsPerVideoSampler

    target_rate = 16000
    wave = wave.reshape(1, -1).cpu()
    if rate != target_rate:
        wave = torchaudio.functional.resample(wave, orig_freq=rate, new_freq=target_rate)
    sampler = ConstantClipsPerVideoSampler(clip_duration=2, clips_per_video=3)
    clips = []
    for start, end in data.get_clip_timepoints(sampler, wave.size(1) / target_rate):
        part = wave[:, int(start * target_rate):int(end * target_rate)]
        clips.append(data.waveform2melspec(part, target_rate, 128, 204))
    mel = torch.stack([(c - (-4.268)) / 9.138 for c in clips])
    return mel[None]


def _from_factory(arg: str, device: torch.device, dtype: str) -> ImageBindAdapter:
    from .torch_module import _import

    module, _, factory = arg.rpartition(":")
    fn = getattr(_import(module), factory, None)
    if not callable(fn):
        raise ModelError(f"{module!r} has no callable {factory!r}")
    made: Any = fn()
    model, opts = made if isinstance(made, tuple) else (made, {})
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{module}:{factory}() must return an ImageBind-style nn.Module")
    pre = None
    if "size" in opts:
        size = int(opts["size"])
        pre = Preprocess(size, None, (size, size), tuple(opts.get("mean", CLIP_MEAN)),
                         tuple(opts.get("std", CLIP_STD)), "bicubic")
    return ImageBindAdapter(model, device, tokenize=opts.get("tokenize"),
                            load_audio=opts.get("load_audio"), preprocess=pre, dtype=dtype,
                            audio_transform=opts.get("audio_transform"))


@register_adapter("imagebind", syntax="imagebind[:<checkpoint> | :<module or file.py>:<factory>]",
                  extra="imagebind", requires=("imagebind",), install=_EXTRA,
                  help="ImageBind (vision, text, audio in one space); targets: text, image, audio")
def _imagebind(arg: str, device: torch.device, dtype: str = "auto") -> Adapter:
    if arg and ":" in arg.lstrip("/") and not Path(arg).is_file():
        return _from_factory(arg, device, dtype)
    return _published(arg or None, device, dtype)
