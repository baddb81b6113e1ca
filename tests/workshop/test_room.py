"""The rig's room: the echo has the level, delay and decay it was asked for."""

from __future__ import annotations

import numpy as np
import pytest
from speakerd_workshop.emulator.tts import synthesize
from speakerd_workshop.room import MIC_RATE, EchoPath, Room, impulse_response

SPEAKER_RATE = 24000


def _speech16() -> np.ndarray:
    return np.frombuffer(synthesize("the speaker talks about the weather and the sea", rate=MIC_RATE),
                         dtype="<i2").astype(np.float64)


def _run(room: Room, volume: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    played = np.frombuffer(synthesize("the speaker talks about the weather and the sea", rate=SPEAKER_RATE),
                           dtype="<i2")
    played = np.round(played * volume).astype("<i2")
    path = EchoPath(room, SPEAKER_RATE)
    out = []
    step = SPEAKER_RATE * 80 // 1000
    pad = np.concatenate([played, np.zeros(SPEAKER_RATE, dtype="<i2")])
    for i in range(0, len(pad) - step + 1, step):
        path.push(pad[i : i + step].tobytes())
        out.append(path.pull(1280))
    return np.concatenate(out), played


def _active_rms(x: np.ndarray) -> float:
    blocks = x[: len(x) // 320 * 320].reshape(-1, 320)
    e = (blocks**2).mean(axis=1)
    return float(np.sqrt(e[e > e.max() * 1e-3].mean()))


@pytest.mark.parametrize("echo_db", [-10.0, 0.0, 10.0])
def test_echo_level_is_relative_to_a_person_speaking(echo_db: float) -> None:
    echo, _ = _run(Room(echo_db=echo_db, noise_dbfs=-120, clip_drive=0))
    level = 20 * np.log10(_active_rms(echo) / _active_rms(_speech16()))
    assert abs(level - echo_db) < 2.0


def test_delay_and_drift_shift_the_echo() -> None:
    room = Room(echo_db=0, delay_ms=100, noise_dbfs=-120, clip_drive=0, drift_ppm=0)
    echo, _ = _run(room)
    person = _speech16()
    n = min(len(echo), len(person))
    corr = np.correlate(echo[:n], person[: n - 4000], mode="valid")
    lag_ms = int(np.argmax(np.abs(corr))) * 1000 / MIC_RATE
    assert 95 <= lag_ms <= 110


def test_impulse_response_decays_at_rt60() -> None:
    h = impulse_response(0.4, 6.0, 0)
    early = float(np.sum(h[800:1600] ** 2))  # 50-100 ms
    late = float(np.sum(h[4800:5600] ** 2))  # 300-350 ms
    assert 10 * np.log10(early / late) == pytest.approx(60 * 0.25 / 0.4 * 1.0, abs=6)


def test_out_of_range_room_is_refused() -> None:
    with pytest.raises(ValueError, match="rt60"):
        Room(rt60=0.0)
