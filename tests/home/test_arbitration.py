"""Several speakers, one answer: the ranking, and real links sharing a real broker."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr
from speakerd_workshop.mosquitto import Mosquitto

from speakerd.home.arbitration import Arbiter, Claim, dbfs
from speakerd.home.link import Backoff, HomeLink
from speakerd.home.settings import MqttSettings
from tests.home.conftest import PASSWORD, ha_client, settings_for
from tests.home.test_link import Speaker

WAIT = 15.0


def claim(device: str, score: float, level: float) -> Claim:
    return Claim(device, score, level, 0.0, device)


def test_rank_score_step_then_level_then_lowest_id() -> None:
    best = max([claim("b", 0.91, -30), claim("a", 0.99, -31), claim("c", 0.55, -20)], key=lambda c: c.rank())
    assert best.device == "c"  # same score step: the louder wins
    assert max([claim("b", 0.6, -30), claim("a", 0.45, -5)], key=lambda c: c.rank()).device == "b"  # a step higher wins
    assert max([claim("b", 0.95, -20), claim("a", 0.93, -20)], key=lambda c: c.rank()).device == "a"  # tie: lower id
    assert max([claim("a", 0.93, -20), claim("b", 0.95, -20)], key=lambda c: c.rank()).device == "a"


def test_dbfs() -> None:
    full = (np.sin(np.linspace(0, 200 * np.pi, 16000)) * 32767).astype(np.int16)
    assert dbfs(full) == pytest.approx(-3.0, abs=0.1)
    assert dbfs((full // 10).tobytes()) == pytest.approx(-23.0, abs=0.1)
    assert dbfs(b"") == dbfs(np.zeros(100, np.int16)) == -120.0


def answers_without_waiting(coro: Coroutine[Any, Any, bool]) -> bool:
    """The verdict of a coroutine that never suspends (never waits a window), else a failure."""
    try:
        coro.send(None)
    except StopIteration as done:
        return bool(done.value)
    coro.close()
    raise AssertionError("it waited")


async def test_without_a_broker_answer_at_once() -> None:
    sent: list[bytes] = []
    arb = Arbiter("kitchen", 150, sent.append, lambda: False)
    assert answers_without_waiting(arb.arbitrate(0.9, -20)) is True
    assert sent == []
    connected = Arbiter("kitchen", 150, sent.append, lambda: True)
    with pytest.raises(AssertionError, match="it waited"):
        answers_without_waiting(connected.arbitrate(0.9, -20))  # the check itself can fail


async def test_malformed_messages_are_ignored_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    arb = Arbiter("kitchen", 50, lambda _: None, lambda: True)
    with caplog.at_level(logging.INFO, "speakerd.home"):
        for bad in (b"", b"{", b"[]", b'{"type": "claim"}', b'{"type":"x","device":"a","score":1,"level":0,'
                    b'"time":0,"claim":"c"}', json.dumps({"type": "claim", "device": "a", "score": "nan",
                                                           "level": 0, "time": 0, "claim": "c"}).encode()):
            arb.receive(bad)
        assert await arb.arbitrate(0.9, -20) is True  # nothing counted
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 1


async def links(broker: Mosquitto, names: list[str], window_ms: int = 150) -> list[HomeLink]:
    out = []
    for name in names:
        hl = HomeLink(settings_for(broker, device_id=name, arbitration=True, arbitration_window_ms=window_ms),
                      SecretStr(PASSWORD), Speaker(), backoff=Backoff(0.05, 0.3))
        await hl.start()
        out.append(hl)
    async with asyncio.timeout(WAIT):
        for hl in out:
            await hl.wait_connected()
    return out


async def test_three_speakers_one_answer_the_loudest(broker: Mosquitto) -> None:
    speakers = await links(broker, ["hall", "kitchen", "lounge"])
    try:
        for loud in range(3):
            levels = [-35.0, -35.0, -35.0]
            levels[loud] = -18.0
            verdicts = await asyncio.gather(*(s.arbitrate(0.98, lvl) for s, lvl in zip(speakers, levels, strict=True)))
            assert verdicts == [i == loud for i in range(3)]
            await asyncio.sleep(1.1)  # past the horizon: the next wake word is a new one
    finally:
        for s in speakers:
            await s.close()


async def test_a_late_speaker_yields_to_one_already_answering(broker: Mosquitto) -> None:
    first, late = await links(broker, ["kitchen", "hall"], window_ms=60)
    try:
        assert await first.arbitrate(0.95, -30.0) is True
        # heard 100 ms after the first one's window closed, louder: it must still not answer twice
        assert await late.arbitrate(0.99, -10.0) is False
    finally:
        await first.close()
        await late.close()


async def test_claims_are_on_a_shared_topic(broker: Mosquitto) -> None:
    (hl,) = await links(broker, ["kitchen"], window_ms=40)
    try:
        async with ha_client(broker, "observer") as obs:
            await obs.subscribe(hl.topics.arbitration, qos=0)
            assert await hl.arbitrate(0.97, -22.5) is True
            kinds = []
            async with asyncio.timeout(WAIT):
                async for msg in obs.messages:
                    data = json.loads(msg.payload)
                    assert data["device"] == "kitchen" and data["score"] == 0.97 and data["level"] == -22.5
                    kinds.append(data["type"])
                    if len(kinds) == 2:
                        break
        assert kinds == ["claim", "answer"]
    finally:
        await hl.close()


def test_arbitration_off_answers_at_once() -> None:
    hl = HomeLink(MqttSettings(host="127.0.0.1", device_id="kitchen"), None, Speaker())
    assert answers_without_waiting(hl.arbitrate(0.6, -40)) is True
