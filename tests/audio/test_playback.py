"""Playback through real PyAudio into ALSA software speakers: a file (exact samples) or a FIFO drained
in real time (a paced device, for flushing mid-reply)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from speakerd.audio import earcons
from speakerd.audio.resample import resample_once
from tests.audio.child import run_child

pytestmark = pytest.mark.slow  # every test here runs real audio in a child process

FADE = 120  # 5 ms at 24 kHz


def faded(x: np.ndarray, n: int = FADE) -> np.ndarray:
    """What the player does to a reply: float32 ramps of ``n`` samples in and out."""
    y = x.astype(np.float32)
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    y[:n] *= ramp
    y[-n:] *= ramp[::-1]
    return y


def test_exact_samples_at_each_volume_and_the_volume_survives_a_restart(tmp_path: Path) -> None:
    out = run_child("exact_samples_at_each_volume", tmp_path, mic="zero")
    assert out["faults"] == [] and out["rate"] == 24000
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    expected = np.concatenate([np.round(faded(x) * 0.5), np.round(faded(y) * 0.25)])
    spk = np.frombuffer((tmp_path / "alsa" / "speaker.raw").read_bytes(), dtype="<i2").astype(np.float64)
    assert len(spk) == len(expected) == out["written"]  # every sample, nothing more
    assert np.abs(spk - expected).max() <= 1
    assert json.loads((tmp_path / "volume.json").read_text()) == {"volume": 25}
    assert out["persisted"] == 25  # the saved volume wins over the configured default
    assert out["underruns"] == 0


def test_flush_mid_reply_leaves_at_most_one_period_faded_to_silence(tmp_path: Path) -> None:
    out = run_child("flush_mid_reply", tmp_path, mic="zero", speaker_fifo=True)
    assert out["faults"] == []
    assert 0 < out["buffer_ms"] <= 60  # the device holds at most playback_buffer_ms
    assert 0 < out["after"] <= out["period"]  # after flush(): only the fade, under one period
    assert out["written"] - out["at_flush"] <= 2 * out["period"]  # the period in flight + the fade
    assert out["written"] < 24000 * 2  # the rest of the five seconds never reached the speaker
    assert out["flush_seconds"] is not None and out["first_calls"] == 1 and out["first_cleared"]
    assert out["underruns"] == 0  # a flush is not the network falling behind
    heard = np.frombuffer((tmp_path / "heard.raw").read_bytes(), dtype="<i2").astype(np.int32)
    assert len(heard) == out["written"]  # the paced speaker played what was written, in full
    assert (heard[FADE : len(heard) - out["after"]] == 4500).all()
    tail = heard[-out["after"] :]
    assert tail[-1] == 0 and np.abs(np.diff(tail)).max() <= 4500 // 100  # a ramp, not a click


def test_earcons_at_48k_and_earcons_off(tmp_path: Path) -> None:
    out = run_child("earcons_at_48k_and_earcons_off", tmp_path, mic="zero", speaker_rate=48000)
    assert out["faults"] == [] and out["rate"] == 48000 and out["quiet_idle"]
    pcm, rate = earcons.load("wake", None)
    expected = np.round(resample_once(pcm, rate, 48000).astype(np.float32) * np.float32(0.6))
    spk = np.frombuffer((tmp_path / "alsa" / "speaker.raw").read_bytes(), dtype="<i2").astype(np.float64)
    assert len(spk) == len(expected)
    assert np.abs(spk - expected).max() <= 1


def test_alarm_sound_plays_at_its_volume_with_earcons_off(tmp_path: Path) -> None:
    out = run_child("alarm_at_its_volume_with_earcons_off", tmp_path, mic="zero")
    assert out["faults"] == []
    pcm, rate = earcons.load("alarm", None)
    expected = np.round(resample_once(pcm, rate, out["rate"]).astype(np.float32) * np.float32(0.8))
    spk = np.frombuffer((tmp_path / "alsa" / "speaker.raw").read_bytes(), dtype="<i2").astype(np.float64)
    assert len(spk) == len(expected)
    assert np.abs(spk - expected).max() <= 1


def test_a_reply_that_runs_dry_counts_one_underrun(tmp_path: Path) -> None:
    out = run_child("a_reply_that_runs_dry", tmp_path, mic="zero")
    assert out == {"dry": 1, "total": 1}
