"""Resampling, channel pick, the pre-roll ring and earcons: the pure parts of the audio path."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import soxr

from speakerd.audio import PrerollBuffer, earcons
from speakerd.audio.resample import StreamResampler, resample_once, to_mono
from speakerd.events import FRAME_BYTES, AudioFrame


@pytest.mark.parametrize(("src", "dst"), [(44100, 16000), (48000, 16000), (24000, 48000), (24000, 44100),
                                          (22050, 16000), (16000, 16000)])
@pytest.mark.parametrize("quality", ["LQ", "HQ"])
def test_streaming_in_random_blocks_equals_one_shot_resampling(src: int, dst: int, quality: str) -> None:
    rng = np.random.default_rng(src + dst)
    x = (rng.standard_normal(src) * 6000).astype(np.int16)
    r = StreamResampler(src, dst, quality)  # type: ignore[arg-type]
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 4000))
        out.append(r.process(x[i : i + n]))
        i += n
    out.append(r.flush())
    got = np.concatenate(out).astype(np.float64)
    ref = np.clip(np.round(soxr.resample(x.astype(np.float32), src, dst, quality=quality)), -32768, 32767)
    assert len(got) == len(ref) == round(len(x) * dst / src)
    assert np.abs(got - ref).max() <= 1  # block edges are invisible: no clicks
    assert np.array_equal(resample_once(x, src, dst, quality), ref.astype(np.int16))  # type: ignore[arg-type]


@pytest.mark.parametrize(("src", "dst"), [(48000, 16000), (24000, 48000), (44100, 16000)])
def test_resampled_tone_keeps_its_pitch_and_level(src: int, dst: int) -> None:
    """Against the signal itself, not the library: a 1 kHz tone comes out a 1 kHz tone, aligned in time."""
    t = np.arange(src) / src
    x = (np.sin(2 * np.pi * 1000 * t) * 10000).astype(np.int16)
    r = StreamResampler(src, dst)
    got = np.concatenate([r.process(x[i : i + 960]) for i in range(0, len(x), 960)] + [r.flush()]).astype(float)
    want = np.sin(2 * np.pi * 1000 * np.arange(dst) / dst) * 10000
    assert np.abs(got[200:-200] - want[200:-200]).max() < 60  # no delay, no gain change, no aliasing


def test_resampler_is_reusable_after_flush() -> None:
    r = StreamResampler(24000, 48000)
    x = np.full(2400, 1000, dtype=np.int16)
    a = np.concatenate([r.process(x), r.flush()])
    b = np.concatenate([r.process(x), r.flush()])
    assert np.array_equal(a, b) and len(a) == 4800


def test_to_mono_picks_the_configured_channel() -> None:
    stereo = np.array([1, -1, 2, -2, 3, -3, 4], dtype=np.int16)  # a torn last sample is dropped
    assert to_mono(stereo, 2, 0).tolist() == [1, 2, 3]
    assert to_mono(stereo, 2, 1).tolist() == [-1, -2, -3]
    assert to_mono(stereo, 2, 5).tolist() == [-1, -2, -3]  # out of range: the last channel


def test_preroll_keeps_the_last_seconds_in_order() -> None:
    pre = PrerollBuffer(seconds=2.0)
    for i in range(100):
        pre.push(AudioFrame(bytes([i % 256]) * FRAME_BYTES, i, i * 0.08))
    assert [f.index for f in pre.since(0)] == list(range(75, 100))  # 2 s = 25 frames
    assert [f.index for f in pre.since(90)] == list(range(90, 100))
    assert pre.since(100) == []


def test_earcons_are_short_soft_edged_and_overridable(tmp_path: Path) -> None:
    for name in earcons.NAMES:
        pcm, rate = earcons.load(name, None)
        short = name not in earcons.SHIPPED  # the alarm is a longer clip, repeated while ringing
        assert rate == 24000 and (0.1 < len(pcm) / rate < 0.5 if short else 1 < len(pcm) / rate < 3)
        assert abs(int(pcm[0])) < 500 and abs(int(pcm[-1])) < 500  # ramps: no click
    own = (np.arange(800) % 50 * 100).astype("<i2")
    with wave.open(str(tmp_path / "wake.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(own.tobytes())
    (tmp_path / "end.wav").write_bytes(b"not a wav")
    pcm, rate = earcons.load("wake", tmp_path)
    assert rate == 16000 and np.array_equal(pcm, own)
    assert np.array_equal(earcons.load("end", tmp_path)[0], earcons.synth("end"))  # unreadable: built-in
    with pytest.raises(earcons.EarconError):
        earcons.load("fanfare", None)


def test_alarm_sound_is_shipped_loud_but_unclipped_and_replaceable(tmp_path: Path) -> None:
    pcm, rate = earcons.load("alarm", None)
    peak = int(np.max(np.abs(pcm.astype(np.int32))))
    assert 0.5 * 32767 < peak < 0.7 * 32767
    assert np.max(np.abs(pcm[-rate // 4 :])) < 100  # a silent tail: the gap between repeats
    assert not np.array_equal(pcm[: len(earcons.synth("alarm"))], earcons.synth("alarm"))  # the file
    own = (np.arange(2400) % 24 * 200).astype("<i2")
    with wave.open(str(tmp_path / "alarm.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(np.repeat(own, 2).tobytes())
    pcm, rate = earcons.load("alarm", tmp_path)
    assert rate == 48000 and np.array_equal(pcm, own)
