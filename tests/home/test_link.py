"""The home link against a real Mosquitto (password file, TLS): discovery, state, commands, restarts."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from speakerd_workshop.mosquitto import Mosquitto

from speakerd.home.discovery import HomeTimer
from speakerd.home.link import Backoff, HomeLink
from tests.home.conftest import PASSWORD, ha_client, settings_for
from tests.home.ha_schema import check_device_discovery

FAST = Backoff(first=0.05, cap=0.3)
WAIT = 15.0


class Speaker:
    """The daemon's side of the commands: records what it was asked, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.changed = asyncio.Event()

    def _note(self, name: str, arg: object) -> None:
        self.calls.append((name, arg))
        self.changed.set()

    async def set_mute(self, muted: bool) -> None:
        self._note("mute", muted)

    async def set_volume(self, volume: int) -> None:
        self._note("volume", volume)

    async def announce(self, text: str) -> None:
        self._note("announce", text)

    async def wake(self) -> None:
        self._note("wake", None)

    async def interrupt(self) -> None:
        self._note("interrupt", None)

    async def wait_calls(self, n: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.calls) < n:
                self.changed.clear()
                await self.changed.wait()


async def retained(b: Mosquitto, topics: list[str], until: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """The retained (or next) payload of each topic, as Home Assistant would read them."""
    got: dict[str, bytes] = {}
    async with ha_client(b, "ha-reader") as ha, asyncio.timeout(WAIT):
        await ha.subscribe([(t, 1) for t in topics])
        async for msg in ha.messages:
            got[msg.topic.value] = msg.payload if isinstance(msg.payload, bytes) else b""
            if set(got) == set(topics) and all(got.get(k) == v for k, v in (until or {}).items()):
                return got
    raise AssertionError("unreachable")


@pytest.fixture
async def link(broker: Mosquitto) -> AsyncIterator[tuple[HomeLink, Speaker]]:
    speaker = Speaker()
    hl = HomeLink(settings_for(broker), SecretStr(PASSWORD), speaker, backoff=FAST)
    await hl.start()
    async with asyncio.timeout(WAIT):
        await hl.wait_connected()
    yield hl, speaker
    await hl.close()


async def test_discovery_availability_and_state_reach_home_assistant(
        broker: Mosquitto, link: tuple[HomeLink, Speaker]) -> None:
    hl, _ = link
    t = hl.topics
    hl.publish_state("thinking")
    hl.publish_volume(35)
    hl.publish_muted(False)
    hl.publish_last_wake(datetime(2026, 12, 2, 7, 30, tzinfo=UTC))
    hl.publish_timers([HomeTimer("a1", "alarm", datetime(2026, 12, 3, 6, 45, tzinfo=UTC), "work")])
    got = await retained(broker, [t.discovery, t.availability, t.state, t.volume, t.muted, t.last_wake,
                                  t.timers, t.next_alarm], until={t.state: b"thinking", t.volume: b"35"})
    assert check_device_discovery(t.discovery, json.loads(got[t.discovery])) == []
    assert got[t.availability] == b"online" and got[t.muted] == b"OFF"
    assert datetime.fromisoformat(got[t.last_wake].decode()) == datetime(2026, 12, 2, 7, 30, tzinfo=UTC)
    assert json.loads(got[t.timers])["count"] == 1
    assert datetime.fromisoformat(got[t.next_alarm].decode()) == datetime(2026, 12, 3, 6, 45, tzinfo=UTC)
    # the state follows the daemon
    hl.publish_state("wake")
    assert (await retained(broker, [t.state], until={t.state: b"listening"}))[t.state] == b"listening"
    await hl.close()
    assert (await retained(broker, [t.availability]))[t.availability] == b"offline"


async def test_every_command_works_in_order_and_bad_ones_change_nothing(
        broker: Mosquitto, link: tuple[HomeLink, Speaker], caplog: pytest.LogCaptureFixture) -> None:
    hl, speaker = link
    t = hl.topics
    sends = [("mute", "ON"), ("volume", "150"), ("volume", "40"), ("announce", "x" * 401),
             ("announce", "The washing is done"), ("wake", "PRESS"), ("volume", "loud"), ("interrupt", "PRESS"),
             ("mute", "OFF"), ("reboot", "PRESS")]
    with caplog.at_level(logging.INFO, "speakerd.home"):
        async with ha_client(broker) as ha:
            for name, payload in sends:
                await ha.publish(f"{t.command_prefix}{name}", payload, qos=1)
        await speaker.wait_calls(6)
        await asyncio.sleep(0.3)  # nothing else may arrive
    assert speaker.calls == [("mute", True), ("volume", 40), ("announce", "The washing is done"), ("wake", None),
                             ("interrupt", None), ("mute", False)]
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 4, refused
    assert any("150" in line for line in refused) and any("401 characters" in line for line in refused)
    assert any("'loud'" in line for line in refused) and any("unknown command 'reboot'" in line for line in refused)


async def test_a_retained_command_is_never_applied(broker: Mosquitto) -> None:
    speaker = Speaker()
    s = settings_for(broker)
    async with ha_client(broker) as ha:
        await ha.publish(f"speakerd/{s.device_id}/cmd/wake", "PRESS", qos=1, retain=True)
    hl = HomeLink(s, SecretStr(PASSWORD), speaker, backoff=FAST)
    await hl.start()
    async with asyncio.timeout(WAIT):
        await hl.wait_connected()
    async with ha_client(broker) as ha:
        await ha.publish(f"speakerd/{s.device_id}/cmd/interrupt", "PRESS", qos=1)
    await speaker.wait_calls(1)
    await hl.close()
    assert speaker.calls == [("interrupt", None)]


async def test_a_broker_restart_loses_nothing(broker: Mosquitto, link: tuple[HomeLink, Speaker]) -> None:
    hl, speaker = link
    t = hl.topics
    hl.publish_state("speaking")
    hl.publish_volume(20)
    await retained(broker, [t.state], until={t.state: b"speaking"})
    broker.stop()  # no persistence: the broker forgets every retained message
    async with asyncio.timeout(WAIT):
        while hl.connected:
            await asyncio.sleep(0.02)
    hl.publish_state("listening")  # while the broker is away: kept, not lost, never blocking
    broker.start()
    async with asyncio.timeout(WAIT):
        await hl.wait_connected()
    got = await retained(broker, [t.discovery, t.availability, t.state, t.volume],
                         until={t.state: b"listening", t.volume: b"20", t.availability: b"online"})
    assert check_device_discovery(t.discovery, json.loads(got[t.discovery])) == []
    async with ha_client(broker) as ha:
        await ha.publish(t.command("volume"), "55", qos=1)
    await speaker.wait_calls(1)
    assert speaker.calls == [("volume", 55)]


async def test_home_assistant_coming_online_gets_discovery_again(
        broker: Mosquitto, link: tuple[HomeLink, Speaker]) -> None:
    hl, _ = link
    t = hl.topics
    hl.publish_state("idle")
    await retained(broker, [t.state], until={t.state: b"idle"})
    async with ha_client(broker) as ha:
        await ha.publish(t.discovery, b"", qos=1, retain=True)  # the retained config is gone
        await ha.subscribe(t.discovery, qos=1)
        await ha.publish(t.ha_status, "online", qos=1)
        async with asyncio.timeout(WAIT):
            async for msg in ha.messages:
                if msg.payload:
                    assert check_device_discovery(t.discovery, json.loads(msg.payload)) == []
                    break


async def test_wrong_password_is_one_line_and_nothing_waits(
        broker: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    hl = HomeLink(settings_for(broker, arbitration=True), SecretStr("wrong password"), Speaker(), backoff=FAST)
    with caplog.at_level(logging.DEBUG):
        await hl.start()
        async with asyncio.timeout(WAIT):
            while broker.log().count("not authorised") < 4:  # four refused attempts at least
                await asyncio.sleep(0.05)
        hl.publish_state("listening")
        hl.publish_volume(10)
        assert await hl.arbitrate(0.9, -20.0) is True
        await hl.close()
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert "refused the user name or password" in loud[0].getMessage() and "speaker" in loud[0].getMessage()
    assert all("wrong password" not in r.getMessage() for r in caplog.records)
    assert not hl.connected


async def test_broker_down_at_start_then_up(tmp_path: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture,
                                            broker: Mosquitto) -> None:
    broker.stop()
    speaker = Speaker()
    hl = HomeLink(settings_for(broker, arbitration=True), SecretStr(PASSWORD), speaker, backoff=FAST)
    with caplog.at_level(logging.INFO, "speakerd.home"):
        await hl.start()
        hl.publish_state("idle")
        hl.publish_muted(True)
        assert await hl.arbitrate(0.9, -20.0) is True  # no broker: answer alone, at once
        await asyncio.sleep(0.5)  # several refused attempts
        broker.start()
        async with asyncio.timeout(WAIT):
            await hl.wait_connected()
    t = hl.topics
    got = await retained(broker, [t.state, t.muted], until={t.state: b"idle", t.muted: b"ON"})
    assert got[t.muted] == b"ON"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "cannot connect" in warnings[0].getMessage()
    await hl.close()


async def test_a_wrong_ca_is_one_clear_line(broker: Mosquitto, caplog: pytest.LogCaptureFixture,
                                            tmp_path: pytest.TempPathFactory) -> None:
    other = Mosquitto(broker.directory.parent / "other", {"x": "y"})  # another CA, never started
    hl = HomeLink(settings_for(broker, ca_file=other.ca_file), SecretStr(PASSWORD), Speaker(), backoff=FAST)
    with caplog.at_level(logging.INFO, "speakerd.home"):
        await hl.start()
        await asyncio.sleep(0.8)
        await hl.close()
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1 and "TLS failed" in loud[0] and "CERTIFICATE_VERIFY_FAILED" in loud[0]


async def test_transcripts_only_when_enabled(broker: Mosquitto) -> None:
    for enabled in (False, True):
        hl = HomeLink(settings_for(broker, publish_transcripts=enabled), SecretStr(PASSWORD), Speaker(),
                      backoff=FAST)
        await hl.start()
        async with asyncio.timeout(WAIT):
            await hl.wait_connected()
        async with ha_client(broker, "ha-transcripts") as ha:
            await ha.subscribe([(hl.topics.transcript, 1), (hl.topics.state, 1)])
            hl.publish_transcript("user", "what time is it")
            hl.publish_state("error" if enabled else "alarm")  # sent after the transcript: a marker
            seen: list[str] = []
            async with asyncio.timeout(WAIT):
                async for msg in ha.messages:
                    seen.append(msg.topic.value)
                    if msg.topic.value == hl.topics.state and msg.payload == (b"error" if enabled else b"alarm"):
                        break
        await hl.close()
        assert (hl.topics.transcript in seen) is enabled


async def test_no_host_means_off(caplog: pytest.LogCaptureFixture) -> None:
    from speakerd.home import MqttSettings

    hl = HomeLink(MqttSettings(), None, Speaker())
    with caplog.at_level(logging.INFO, "speakerd.home"):
        await hl.start()
    hl.publish_state("idle")
    assert await hl.arbitrate(0.5, -30) is True
    await hl.close()
    assert "home link is off" in caplog.text



LINK_PROCESS = """
import asyncio, os, sys
from pathlib import Path
from pydantic import SecretStr
from speakerd.home.link import HomeLink
from speakerd.home.settings import MqttSettings
from tests.home.test_link import Speaker

async def main() -> None:
    s = MqttSettings(host="127.0.0.1", port=int(sys.argv[1]), tls=True, ca_file=Path(sys.argv[2]),
                     username=sys.argv[3], device_id="kitchen")
    link = HomeLink(s, SecretStr(os.environ["MQTT_PASSWORD"]), Speaker())
    await link.start()
    await link.wait_connected()
    print("connected", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_speaker_that_vanishes_goes_offline_by_its_last_will(broker: Mosquitto) -> None:
    import sys

    from tests.conftest import ROOT, base_env
    from tests.home.conftest import USER

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LINK_PROCESS, str(broker.port), str(broker.ca_file), USER,
        stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=base_env(MQTT_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT)))
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        assert line.strip() == b"connected"
        topic = "speakerd/kitchen/availability"
        assert (await retained(broker, [topic]))[topic] == b"online"
        proc.kill()  # no goodbye: only the broker can tell
        assert (await retained(broker, [topic], until={topic: b"offline"}))[topic] == b"offline"
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), 10)
