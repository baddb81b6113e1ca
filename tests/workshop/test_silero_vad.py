"""The emulator's neural VAD: speech starts a turn at any level, noise and tones do not."""

from __future__ import annotations

import numpy as np
import pytest
from speakerd_workshop.emulator.tts import synthesize
from speakerd_workshop.emulator.vad import SileroVad, VadSettings, make_vad

RATE = 16000


def _speech(gain: float = 1.0) -> bytes:
    x = np.frombuffer(synthesize("could you tell me what the weather will be tomorrow", rate=RATE), dtype="<i2")
    return np.round(x * gain).astype("<i2").tobytes()


def _silence(seconds: float) -> bytes:
    return bytes(2 * int(seconds * RATE))


def _kinds(pcm: bytes, settings: VadSettings | None = None) -> list[str]:
    vad = SileroVad(settings or VadSettings.from_setup({"silenceDurationMs": 500}))
    return [e.kind for i in range(0, len(pcm), 2560) for e in vad.feed(pcm[i : i + 2560])]


@pytest.mark.parametrize("gain", [1.0, 0.03])  # about -20 and -50 dBFS: level does not matter
def test_speech_starts_and_ends_a_turn(gain: float) -> None:
    assert _kinds(_silence(0.5) + _speech(gain) + _silence(1.0)) == ["start", "end"]


def test_noise_and_tones_are_not_speech() -> None:
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(RATE * 3) * 3000).astype("<i2").tobytes()
    t = np.arange(RATE * 2) / RATE
    tone = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()
    assert _kinds(noise) == []
    assert _kinds(tone) == []
    assert _kinds(_silence(3.0)) == []


def test_unknown_vad_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown VAD"):
        make_vad("psychic", VadSettings.from_setup({}))
