"""Topics, the Home Assistant device-discovery payload, and the validation of every command.

Why one device payload (``<prefix>/device/<id>/config`` with ``cmps``): Home Assistant's
device-based discovery sets up all the speaker's entities from one retained message that shares
the device, origin and availability, instead of one message per entity. Everything here is pure
(no I/O) so the payload and each command's validation can be tested on their own.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from speakerd import __version__
from speakerd.home.settings import MqttSettings

# The speaker's state as Home Assistant sees it (an enum sensor). The daemon's own states map
# onto these; "wake" is the moment between the wake word and the session, which a user calls listening.
HOME_STATES = ("idle", "listening", "thinking", "speaking", "muted", "offline", "error", "alarm")
STATE_ALIASES = {"wake": "listening", "booting": "idle"}
ONLINE, OFFLINE = "online", "offline"
PRESS = "PRESS"
SWITCH_ON, SWITCH_OFF = "ON", "OFF"
NO_VALUE = "None"  # what Home Assistant's MQTT sensor reads as "no value"
HA_STATE_MAX = 255  # Home Assistant truncates nothing: a longer state is rejected
CommandName = Literal["mute", "volume", "announce", "wake", "interrupt"]
COMMANDS: tuple[CommandName, ...] = ("mute", "volume", "announce", "wake", "interrupt")


@dataclass(frozen=True)
class HomeTimer:
    """One active timer, alarm or reminder, as the timers sensor shows it."""

    id: str
    kind: Literal["timer", "alarm", "reminder"]
    ends_at: datetime  # aware; naive values are taken as local time
    label: str = ""


@dataclass(frozen=True)
class Topics:
    """Every topic the link uses, derived from the settings once."""

    root: str
    availability: str
    state: str
    muted: str
    volume: str
    timers: str
    next_alarm: str
    last_wake: str
    transcript: str
    command_prefix: str
    discovery: str
    ha_status: str
    arbitration: str

    @classmethod
    def of(cls, s: MqttSettings) -> Topics:
        root = f"{s.base_topic}/{s.device_id}"
        return cls(
            root=root,
            availability=f"{root}/availability",
            state=f"{root}/state",
            muted=f"{root}/muted",
            volume=f"{root}/volume",
            timers=f"{root}/timers",
            next_alarm=f"{root}/next_alarm",
            last_wake=f"{root}/last_wake",
            transcript=f"{root}/transcript",
            command_prefix=f"{root}/cmd/",
            discovery=f"{s.discovery_prefix}/device/{s.device_id}/config",
            ha_status=f"{s.discovery_prefix}/status",
            arbitration=f"{s.base_topic}/arbitration",
        )

    def command(self, name: CommandName) -> str:
        return self.command_prefix + name


def discovery_payload(s: MqttSettings, t: Topics) -> dict[str, Any]:
    """The device discovery message: the speaker and each of its entities."""
    uid = s.device_id

    def entity(platform: str, key: str, name: str, **options: Any) -> tuple[str, dict[str, Any]]:
        return key, {"p": platform, "unique_id": f"{uid}_{key}", "name": name, **options}

    cmps = dict([
        entity("sensor", "state", "State", state_topic=t.state, device_class="enum",
               options=list(HOME_STATES), icon="mdi:speaker-message"),
        entity("switch", "mute", "Mute", state_topic=t.muted, command_topic=t.command("mute"),
               payload_on=SWITCH_ON, payload_off=SWITCH_OFF, icon="mdi:microphone-off"),
        entity("number", "volume", "Volume", state_topic=t.volume, command_topic=t.command("volume"),
               min=0, max=100, step=1, mode="slider", unit_of_measurement="%", icon="mdi:volume-high"),
        entity("notify", "announce", "Announce", command_topic=t.command("announce"), icon="mdi:bullhorn"),
        entity("button", "wake", "Wake", command_topic=t.command("wake"), payload_press=PRESS,
               icon="mdi:account-voice"),
        entity("button", "interrupt", "Interrupt", command_topic=t.command("interrupt"), payload_press=PRESS,
               icon="mdi:stop-circle"),
        entity("sensor", "timers", "Active timers", state_topic=t.timers, value_template="{{ value_json.count }}",
               json_attributes_topic=t.timers, json_attributes_template="{{ {'timers': value_json.timers} | tojson }}",
               icon="mdi:timer-outline"),
        entity("sensor", "next_alarm", "Next alarm", state_topic=t.next_alarm, device_class="timestamp",
               icon="mdi:alarm"),
        entity("sensor", "last_wake", "Last wake", state_topic=t.last_wake, device_class="timestamp",
               icon="mdi:clock-check-outline"),
    ])
    if s.publish_transcripts:
        key, cfg = entity("sensor", "transcript", "Last transcript", state_topic=t.transcript,
                          value_template=f"{{{{ value_json.text[:{HA_STATE_MAX}] }}}}",
                          json_attributes_topic=t.transcript, icon="mdi:text-box-outline")
        cmps[key] = cfg
    return {
        "dev": {"ids": [uid], "name": s.device_name, "mf": "speakerd", "mdl": "speakerd", "sw": __version__},
        "o": {"name": "speakerd", "sw": __version__},
        "availability": [{"topic": t.availability, "payload_available": ONLINE,
                          "payload_not_available": OFFLINE}],
        "qos": 1,
        "cmps": cmps,
    }


def home_state(state: str) -> str | None:
    """The Home Assistant state for one of the daemon's, or None when it has none."""
    state = STATE_ALIASES.get(state, state)
    return state if state in HOME_STATES else None


def iso(when: datetime) -> str:
    """ISO 8601 with an offset, as a timestamp sensor needs (naive means local time)."""
    return when.astimezone().isoformat(timespec="seconds")


def timers_payload(timers: list[HomeTimer]) -> tuple[str, str]:
    """(timers sensor JSON, next-alarm timestamp or "None")."""
    items = sorted(timers, key=lambda x: x.ends_at.astimezone())
    body = json.dumps({"count": len(items), "timers": [
        {"id": x.id, "kind": x.kind, "label": x.label, "ends_at": iso(x.ends_at)} for x in items]})
    alarms = [x for x in items if x.kind == "alarm"]
    return body, iso(alarms[0].ends_at) if alarms else NO_VALUE


class CommandRefused(ValueError):
    """A command payload that is not valid; the message is the one log line's reason."""


def _show(payload: bytes, limit: int = 40) -> str:
    text = payload[:limit].decode("utf-8", "backslashreplace")
    return repr(text + ("…" if len(payload) > limit else ""))


def parse_command(name: CommandName, payload: bytes, announce_max: int) -> bool | int | str | None:
    """The command's validated argument, or CommandRefused (nothing is applied then)."""
    if name == "mute":
        if payload == SWITCH_ON.encode():
            return True
        if payload == SWITCH_OFF.encode():
            return False
        raise CommandRefused(f"expected {SWITCH_ON} or {SWITCH_OFF}, got {_show(payload)}")
    if name == "volume":
        try:
            value = float(payload.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            raise CommandRefused(f"expected a whole number 0..100, got {_show(payload)}") from None
        if not math.isfinite(value) or value != int(value) or not 0 <= value <= 100:
            raise CommandRefused(f"expected a whole number 0..100, got {_show(payload)}")
        return int(value)
    if name == "announce":
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandRefused("the announcement is not UTF-8 text") from None
        text = " ".join("".join(c if unicodedata.category(c)[0] != "C" else " " for c in text).split())
        if not text:
            raise CommandRefused("the announcement is empty")
        if len(text) > announce_max:
            raise CommandRefused(f"the announcement has {len(text)} characters, more than the {announce_max} allowed")
        return text
    if payload != PRESS.encode():
        raise CommandRefused(f"expected {PRESS}, got {_show(payload)}")
    return None
