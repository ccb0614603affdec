"""The audio side against known answers: an ImageBind-style toy whose audio tower hears one
tone, and the WAV reader on files scipy writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.io import wavfile

import modality_toys as toys
from mmattr import explain
from mmattr.errors import InputError, ModelError
from mmattr.modalities.audio import AudioElements, fixed_segments, onset_segments
from mmattr.sound import AudioClip, as_clip, read_audio
from mmattr.targets import Target

SEGMENTS = {"audio": {"segments": 8}}
TONE = 3  # the window of 8 that holds the tone


def _cos_of(adapter, wave: np.ndarray, target: torch.Tensor) -> float:
    emb = adapter.encode_waveforms(torch.from_numpy(wave)[None], toys.RATE)[0]
    return float(F.normalize(emb, dim=0) @ target)


@pytest.mark.parametrize("method", ["smdl", "occlusion", "lime", "kernelshap"])
def test_the_segment_with_the_tone_comes_first(method, tone, bright):
    wave = toys.tone_clip(segments=8, tone_segment=TONE)
    e = explain(bright, audio=(wave, toys.RATE), model=tone, explain="audio", method=method,
                options=SEGMENTS)
    assert e.modality == "audio" and e.order[0] == TONE
    row = e.elements[TONE]
    assert row["rank"] == 1 and row["label"] == "0.75-1.00 s"
    assert row["span"] == [6000, 8000] and row["start_s"] == 0.75 and row["end_s"] == 1.0
    # the curve's points are the toy's own encodings of the clip with segments silenced
    target = tone.encode_target(Target.from_image(bright))
    only = np.zeros_like(wave)
    only[6000:8000] = wave[6000:8000]
    assert e.insertion_curve[1] == pytest.approx(_cos_of(tone, only, target), abs=1e-5)
    assert e.insertion_curve[-1] == pytest.approx(_cos_of(tone, wave, target), abs=1e-5)
    assert e.insertion_curve[0] == pytest.approx(_cos_of(tone, wave * 0, target), abs=1e-5)


def test_against_a_text_target(tone):
    """Audio against a text: "a beep" points at the tone's band, so the tone comes first;
    "a dog barking" points at the lowest band, where the tone adds nothing: the tone's
    segment is then the one whose removal helps most (last in the order)."""
    wave = toys.tone_clip(segments=8, tone_segment=TONE)
    beep = explain(audio=(wave, toys.RATE), text="a beep", model=tone, explain="audio",
                   options=SEGMENTS)
    assert beep.target["kind"] == "text" and beep.order[0] == TONE
    t = tone.encode_target(Target.from_text("a beep"))
    assert beep.insertion_curve[-1] == pytest.approx(_cos_of(tone, wave, t), abs=1e-5)
    dog = explain(audio=(wave, toys.RATE), text="a dog barking", model=tone, explain="audio",
                  method="occlusion", options=SEGMENTS)
    assert dog.order[-1] == TONE and dog.elements[TONE]["value"] < 0


def test_fixed_segments_are_equal_windows():
    assert fixed_segments(10, 4).tolist() == [0, 2, 5, 8, 10]  # rounded boundaries
    assert fixed_segments(3, 8).tolist() == [0, 1, 2, 3]  # no more segments than samples
    assert fixed_segments(16000, 8).tolist() == list(range(0, 16001, 2000))


def test_onset_segments_cut_at_the_sound_events(tone, bright):
    """Silence with three events (noise at 0.2 s, the tone at 0.7 s, noise at 1.3 s): the
    division cuts within 20 ms of each onset, and the segment that starts at the tone's onset
    comes first."""
    onsets = (0.2, 0.7, 1.3)
    wave = toys.bursts_clip(onsets, tone_index=1)
    bounds = onset_segments(wave, toys.RATE, segments=10) / toys.RATE
    for t in onsets:
        assert np.abs(bounds - t).min() <= 0.02, (t, bounds)
    for k in (1, 2, 3, 5, 10):  # at most k segments, covering the clip in order
        b = onset_segments(wave, toys.RATE, segments=k)
        assert b[0] == 0 and b[-1] == len(wave) and (np.diff(b) > 0).all()
        assert len(b) - 1 <= k
    e = explain(bright, audio=(wave, toys.RATE), model=tone, explain="audio",
                options={"audio": {"division": "onset", "segments": 10}})
    first = e.elements[e.order[0]]
    assert abs(first["start_s"] - 0.7) <= 0.02 and first["end_s"] <= 0.9 + 0.02
    assert e.settings["element_settings"]["division"] == "onset"


def test_onset_segments_keep_the_strongest_cuts(tone, bright):
    """With room for only three cuts, the three onsets are kept (the strongest flux peaks), not
    the weaker cuts where an event stops; the tone's own segment still comes first."""
    onsets = (0.2, 0.7, 1.3)
    wave = toys.bursts_clip(onsets, tone_index=1)
    bounds = onset_segments(wave, toys.RATE, segments=4) / toys.RATE
    assert len(bounds) == 5
    for t in onsets:
        assert np.abs(bounds - t).min() <= 0.02, (t, bounds)
    e = explain(bright, audio=(wave, toys.RATE), model=tone, explain="audio",
                options={"audio": {"division": "onset", "segments": 4}})
    first = e.elements[e.order[0]]
    assert abs(first["start_s"] - 0.7) <= 0.02


def test_a_short_clip_is_one_onset_segment():
    assert onset_segments(np.zeros(100, np.float32), toys.RATE, 8).tolist() == [0, 100]


def test_silencing_composes_the_clip(tone):
    wave = toys.tone_clip()
    es = AudioElements(AudioClip(wave, toys.RATE), tone, segments=8)
    subsets = torch.zeros(2, 8)
    subsets[0, TONE] = 1
    subsets[1, [0, 7]] = 1
    inside, outside = es.compose(subsets)
    keep = np.zeros_like(wave)
    keep[6000:8000] = wave[6000:8000]
    np.testing.assert_array_equal(inside[0].numpy(), keep)
    np.testing.assert_array_equal(outside[0].numpy(), wave - keep)
    ends = np.zeros_like(wave)
    ends[:2000], ends[14000:] = wave[:2000], wave[14000:]
    np.testing.assert_array_equal(inside[1].numpy(), ends)
    assert es.weights.tolist() == [0.125] * 8


def test_a_model_without_waveforms_cannot_explain_audio(bright, bag):
    with pytest.raises(ModelError, match="no audio tower"):
        explain(bright, audio=(toys.tone_clip(), toys.RATE), model=bag, explain="audio")


# -- the WAV reader ---------------------------------------------------------------------------

def test_wav_pcm16_stereo_is_averaged_to_mono_floats(tmp_path):
    path = tmp_path / "stereo.wav"
    left = np.array([16384, -32768, 0, 8192], np.int16)
    right = np.array([-8192, -32768, 16384, 8192], np.int16)
    wavfile.write(str(path), 16000, np.stack([left, right], axis=1))
    clip = read_audio(path)
    assert clip.sample_rate == 16000 and clip.waveform.dtype == np.float32
    np.testing.assert_array_equal(clip.waveform, [0.125, -1.0, 0.25, 0.25])
    assert clip.seconds == pytest.approx(4 / 16000) and clip.source == str(path)


@pytest.mark.parametrize("data,want", [
    (np.array([128, 192, 0, 255], np.uint8), [0.0, 0.5, -1.0, 127 / 128]),
    (np.array([2 ** 30, -2 ** 31, 0], np.int32), [0.5, -1.0, 0.0]),
    (np.array([0.25, -0.75, 1.0], np.float32), [0.25, -0.75, 1.0]),
])
def test_wav_sample_formats(tmp_path, data, want):
    path = tmp_path / "clip.wav"
    wavfile.write(str(path), 8000, data)
    np.testing.assert_allclose(read_audio(path).waveform, want, atol=1e-7)


def test_wav_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_audio(tmp_path / "missing.wav")
    (tmp_path / "note.wav").write_text("not a wav")
    with pytest.raises(InputError, match="cannot read audio") as info:
        read_audio(tmp_path / "note.wav")
    assert "\n" not in str(info.value)
    wavfile.write(str(tmp_path / "empty.wav"), 8000, np.zeros(0, np.int16))
    with pytest.raises(InputError, match="no samples"):
        read_audio(tmp_path / "empty.wav")


def test_clip_inputs(tone_wav):
    wave = np.array([[0.5, 0.25, 0.0], [0.0, 0.25, 1.0]], np.float32)  # (channels, samples)
    clip = as_clip((wave, 8000))
    np.testing.assert_allclose(clip.waveform, [0.25, 0.25, 0.5])
    np.testing.assert_allclose(as_clip((torch.from_numpy(wave.T), 8000)).waveform,
                               [0.25, 0.25, 0.5])  # (samples, channels) from a tensor
    assert as_clip(str(tone_wav)).sample_rate == toys.RATE
    assert as_clip(clip) is clip
    for bad in ((np.zeros(0), 8000), (np.zeros(4), 0), 3.5):
        with pytest.raises(InputError):
            as_clip(bad)


def test_a_wav_file_is_explained_as_its_waveform(tone, tone_wav, bright):
    """A 16-bit file of the tone clip: the same order as the float clip, to the rounding."""
    e = explain(bright, audio=str(tone_wav), model=tone, explain="audio", options=SEGMENTS)
    assert e.order[0] == TONE and e.sample_rate == toys.RATE
    # written as round(w · 32767), read as / 32768: within two steps of 1 / 32768
    np.testing.assert_allclose(e.waveform, toys.tone_clip(), atol=2 / 32768)
    assert e.source == str(tone_wav)
