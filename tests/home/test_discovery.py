"""The discovery payload against Home Assistant's documented rules, and every command's validation."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from speakerd.home.discovery import (
    HOME_STATES,
    CommandRefused,
    HomeTimer,
    Topics,
    discovery_payload,
    home_state,
    parse_command,
    timers_payload,
)
from speakerd.home.settings import MqttSettings
from tests.home.ha_schema import check_device_discovery

S = MqttSettings(host="broker", device_id="kitchen", device_name="Kitchen")


def payload(**overrides: Any) -> tuple[str, dict[str, Any]]:
    s = S.model_copy(update=overrides)
    t = Topics.of(s)
    return t.discovery, json.loads(json.dumps(discovery_payload(s, t)))


def test_discovery_is_valid_and_has_every_entity() -> None:
    topic, p = payload()
    assert topic == "homeassistant/device/kitchen/config"
    assert check_device_discovery(topic, p) == []
    platforms = {k: c["p"] for k, c in p["cmps"].items()}
    assert platforms == {"state": "sensor", "mute": "switch", "volume": "number", "announce": "notify",
                         "wake": "button", "interrupt": "button", "timers": "sensor", "next_alarm": "sensor",
                         "last_wake": "sensor"}
    assert p["cmps"]["state"]["options"] == list(HOME_STATES)
    assert set(HOME_STATES) == {"idle", "listening", "thinking", "speaking", "muted", "offline", "error", "alarm"}
    assert (p["cmps"]["volume"]["min"], p["cmps"]["volume"]["max"]) == (0, 100)
    assert p["cmps"]["last_wake"]["device_class"] == "timestamp"
    assert p["availability"][0]["topic"] == "speakerd/kitchen/availability"


def test_transcripts_only_when_asked() -> None:
    assert "transcript" not in payload()[1]["cmps"]
    topic, p = payload(publish_transcripts=True)
    assert p["cmps"]["transcript"]["p"] == "sensor"
    assert check_device_discovery(topic, p) == []


@pytest.mark.parametrize(("breakage", "problem"), [
    (lambda p: p.pop("o"), "origin"),
    (lambda p: p["dev"].pop("ids"), "identifiers"),
    (lambda p: p["cmps"]["volume"].pop("command_topic"), "command_topic is required"),
    (lambda p: p["cmps"]["state"].pop("unique_id"), "unique_id is required"),
    (lambda p: p["cmps"]["state"].pop("options"), "enum sensor needs"),
    (lambda p: p["cmps"]["wake"].update(p="nonsense"), "not an MQTT platform"),
    (lambda p: p["cmps"]["mute"].update(command_topic="a/+/set"), "not a valid topic"),
    (lambda p: p["cmps"]["timers"].update(unique_id="kitchen_state"), "used twice"),
    (lambda p: p["cmps"]["volume"].update(min=100, max=0), "min must be below max"),
])
def test_the_checker_catches_each_documented_rule(breakage: Any, problem: str) -> None:
    topic, p = payload()
    broken = copy.deepcopy(p)
    breakage(broken)
    assert any(problem in line for line in check_device_discovery(topic, broken))


def test_daemon_states_map_onto_home_states() -> None:
    assert home_state("wake") == "listening"
    assert home_state("speaking") == "speaking"
    assert home_state("alarm") == "alarm"
    assert home_state("no-such-state") is None


def test_timers_and_next_alarm() -> None:
    now = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    body, nxt = timers_payload([
        HomeTimer("a2", "alarm", now + timedelta(hours=9), "work"),
        HomeTimer("t1", "timer", now + timedelta(minutes=5), "tea"),
        HomeTimer("a1", "alarm", (now + timedelta(hours=2)).astimezone(timezone(timedelta(hours=1)))),
    ])
    data = json.loads(body)
    assert data["count"] == 3 and [t["id"] for t in data["timers"]] == ["t1", "a1", "a2"]
    assert datetime.fromisoformat(nxt) == now + timedelta(hours=2)
    assert timers_payload([])[1] == "None"


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("mute", b"ON", True), ("mute", b"OFF", False),
    ("volume", b"0", 0), ("volume", b"100", 100), ("volume", b"42.0", 42), ("volume", b" 7 ", 7),
    ("announce", b"Dinner is ready", "Dinner is ready"),
    ("announce", "Le d\u00eener\nest pr\u00eat\x07".encode(), "Le d\u00eener est pr\u00eat"),
    ("wake", b"PRESS", None), ("interrupt", b"PRESS", None),
])
def test_valid_commands(name: Any, raw: bytes, expected: object) -> None:
    assert parse_command(name, raw, 400) == expected


@pytest.mark.parametrize(("name", "raw"), [
    ("mute", b"on"), ("mute", b""), ("mute", b"\xff\xfe"),
    ("volume", b"101"), ("volume", b"-1"), ("volume", b"42.5"), ("volume", b"nan"), ("volume", b"inf"),
    ("volume", b"loud"), ("volume", b""), ("volume", b"\xff"),
    ("announce", b""), ("announce", b" \n\t "), ("announce", b"x" * 401), ("announce", b"\xc3\x28"),
    ("wake", b"press"), ("interrupt", b"{}"),
])
def test_invalid_commands_are_refused(name: Any, raw: bytes) -> None:
    with pytest.raises(CommandRefused) as e:
        parse_command(name, raw, 400)
    assert "\n" not in str(e.value)
