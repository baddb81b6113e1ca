"""The echo pipeline on the rig's room, offline: delay found, echo removed, a person let through."""

from __future__ import annotations

import numpy as np
import pytest
from speakerd_workshop.echo_sim import simulate
from speakerd_workshop.emulator.tts import synthesize
from speakerd_workshop.room import Room

from speakerd.audio.echo import EchoSettings, build_echo
from speakerd.audio.echo.delay import DelayEstimator
from speakerd.audio.echo.timeline import ReferenceTimeline

REPLY = ("The weather tomorrow will be mild with a light wind from the west. In the morning there may be "
         "some fog along the coast, and by the afternoon the clouds will clear for a while.")
PERSON = "stop, turn the volume down please"


def _played() -> np.ndarray:
    return np.frombuffer(synthesize(REPLY, rate=24000), dtype="<i2")


def _person(at: float, length16: int) -> tuple[np.ndarray, slice]:
    said = np.frombuffer(synthesize(PERSON, rate=16000), dtype="<i2").astype(np.float64)
    x = np.zeros(length16)
    start = int(at * 16000)
    x[start : start + len(said)] = said
    return x, slice(16000 + start, 16000 + start + len(said))  # simulate() leads with 1 s of silence


def _db(x: np.ndarray) -> float:
    return 10 * float(np.log10(np.mean(x.astype(np.float64) ** 2) + 1.0))


def test_delay_estimator_finds_the_delay_of_speech() -> None:
    ref = np.frombuffer(synthesize(REPLY, rate=16000), dtype="<i2").astype(np.float64)[:40000]
    est = DelayEstimator(16000, 500)
    d = 3371
    mic = np.concatenate([np.zeros(d), 0.3 * ref])[: len(ref)] + np.random.default_rng(0).normal(0, 30, len(ref))
    got = [est.estimate(mic[: e], ref[: e]) for e in (30000, 34000, 38000)]
    assert got[-1] == pytest.approx(d, abs=2)


def test_timeline_keeps_gaps_where_they_were() -> None:
    t = [0.0]
    tl = ReferenceTimeline(16000, clock=lambda: t[0])
    tl.write(np.full(1600, 100.0))  # 0-100 ms
    t[0] = 0.5
    tl.write(np.full(1600, 200.0))  # 500-600 ms: after a gap, not squeezed up against the first
    got = tl.read(0, 16000)
    assert got[:1600].min() == 100 and got[1600:8000].max() == 0 and got[8000:9600].min() == 200
    assert tl.bursts == 1  # the first write anchors at 0 with no gap before it


@pytest.mark.parametrize("echo_db", [10.0])
def test_webrtc_removes_the_echo_and_the_gate_lets_nothing_through(echo_db: float) -> None:
    played = _played()
    n16 = len(played) * 2 // 3
    r = simulate(Room(echo_db=echo_db, delay_ms=90), EchoSettings(canceller="webrtc", gate="residual"),
                 played, np.zeros(n16))
    assert r.pipeline is not None and r.pipeline.delay.delay is not None
    steady = slice(16000 * 3, n16)  # the reply, after the delay is found
    blocks = r.out[steady][: (steady.stop - steady.start) // 160 * 160].reshape(-1, 160)
    assert np.asarray(blocks.any(axis=1)).mean() < 0.05  # echo alone: (nearly) nothing reaches the service
    burst = r.pipeline.burst or r.pipeline.bursts[-1]
    assert sorted(burst.erle)[len(burst.erle) // 2] > 25  # and the canceller removed most of it


def test_the_gate_lets_a_person_through_over_the_echo() -> None:
    played = _played()
    n16 = len(played) * 2 // 3
    person, when = _person(3.0, n16)
    r = simulate(Room(echo_db=10.0, delay_ms=90), EchoSettings(canceller="webrtc", gate="residual"), played, person)
    said = r.out[when][: (when.stop - when.start) // 160 * 160].reshape(-1, 160)
    spoken = np.asarray(np.abs(r.person[when][: len(said) * 160].reshape(-1, 160)).max(axis=1) > 300)
    passed = np.asarray(said.any(axis=1))
    assert passed[spoken].mean() > 0.6  # most of what they said reaches the service
    assert not passed[:100].any() or spoken[:100].any()


def test_half_duplex_sends_zeros_while_the_speaker_plays() -> None:
    played = _played()
    n16 = len(played) * 2 // 3
    person, _ = _person(3.0, n16)
    r = simulate(Room(echo_db=10.0), EchoSettings(canceller="none", gate="half_duplex"), played, person)
    assert not r.out[16000 + 4000 : 16000 + n16 - 8000].any()
    assert r.out[:8000].any()  # before the reply the microphone is live


def test_settings_are_checked_and_described() -> None:
    with pytest.raises(ValueError):
        EchoSettings.model_validate({"canceller": "magic"})
    with pytest.raises(ValueError):
        EchoSettings.model_validate({"gate_margin": 3})
    assert "AEC3" in EchoSettings(canceller="webrtc").describe()
    assert build_echo(EchoSettings(canceller="none", gate="off")) is None
