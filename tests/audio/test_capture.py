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
