"""Capture states through real PyAudio: mute closes the microphone, and a microphone that appears
late (a USB mic plugged in after boot) is found by the retries and reported as recovered."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audio.child import run_child

pytestmark = pytest.mark.slow  # every test here runs real audio in a child process


def test_mute_stops_frames_and_unmute_brings_them_back(tmp_path: Path) -> None:
    out = run_child("mute_closes_the_microphone", tmp_path)
    assert out["faults"] == []
    assert out["muted_frames"] == 0  # the stream was closed, not merely ignored
    assert out["in_order"] and out["opens"] == 2 and not out["open_after_stop"]


def test_a_microphone_that_appears_later_is_picked_up(tmp_path: Path) -> None:
    out = run_child("microphone_that_appears_later", tmp_path, mic="zero", with_mic=False)
    (first, recovered0), (back, recovered1) = out["faults"]
    assert first.startswith("audio.input_device: no input device matches 'speakerd_mic'") and not recovered0
    assert back == "microphone is back" and recovered1
    assert out["frames"] >= 1


def test_a_pi_with_no_microphone_reports_it_and_finds_one_plugged_in_later(tmp_path: Path) -> None:
    """input_device unset and ALSA's default cannot capture (card 0 is the headphone jack): a fault
    that says so and retries with backoff, never a dead thread; a microphone plugged in is used."""
    out = run_child("no_microphone_then_one_plugged_in", tmp_path, mic="zero", with_mic=False, playback_only=True)
    (first, recovered0), (back, recovered1) = out["faults"]  # one fault per outage, not per retry
    assert first.startswith("no microphone found: no audio device can capture") and not recovered0
    assert out["alive"]
    assert back == "microphone is back" and recovered1
    assert "microphone: input_device is unset; using 'speakerd_mic' (index 0)" in out["logged"]


def test_speakerd_devices_marks_what_an_unset_device_would_use(tmp_path: Path) -> None:
    out = run_child("devices_listing", tmp_path, mic="zero", playback_only=True)
    assert out["rc"] == 0
    assert out["rows"] == {"speakerd_mic": "in", "speakerd_speaker": "-", "default": "out"}
    (tmp_path / "none").mkdir()
    out = run_child("devices_listing", tmp_path / "none", mic="zero", with_mic=False, playback_only=True)
    assert out["rows"] == {"speakerd_speaker": "-", "default": "out"}
    assert "no microphone found" in out["text"]
