"""Home Assistant's documented rules for a device discovery message, as checks that return problems.

Written from the MQTT integration's documentation (device discovery payload; the sensor, switch,
number, button and notify platforms): the root must carry ``dev`` (with ``ids`` or ``cns``) and
``o`` (with ``name``); each component in ``cmps`` needs ``p`` with a supported platform, at least one
option of its own, and a ``unique_id``; each platform's required options; topics valid for
publishing (no wildcards); ids of ``[a-zA-Z0-9_-]``.
"""

from __future__ import annotations

import re
from typing import Any

ID = re.compile(r"^[a-zA-Z0-9_-]+$")
DISCOVERY_TOPIC = re.compile(r"^(?P<prefix>[^#+]+)/device/(?P<object_id>[^/]+)/config$")
# full names of the abbreviations this checker needs (Home Assistant accepts either)
ABBREV = {"dev": "device", "o": "origin", "cmps": "components", "p": "platform", "avty": "availability",
          "stat_t": "state_topic", "cmd_t": "command_topic", "uniq_id": "unique_id", "ids": "identifiers",
          "cns": "connections", "dev_cla": "device_class", "t": "topic"}
PLATFORMS = {"alarm_control_panel", "binary_sensor", "button", "camera", "climate", "cover", "device_automation",
             "device_tracker", "event", "fan", "humidifier", "image", "lawn_mower", "light", "lock", "notify",
             "number", "scene", "select", "sensor", "siren", "switch", "tag", "text", "update", "vacuum", "valve",
             "water_heater"}
REQUIRED = {
    "sensor": ("state_topic",),
    "switch": ("command_topic",),
    "number": ("command_topic",),
    "button": ("command_topic",),
    "notify": ("command_topic",),
    "text": ("command_topic",),
}
SENSOR_CLASSES_WITH_TEXT_STATE = {None, "enum", "timestamp", "date"}
MAX_STATE = 255


def _full(d: dict[str, Any]) -> dict[str, Any]:
    return {ABBREV.get(k, k): v for k, v in d.items()}


def _topic_ok(topic: Any) -> bool:
    return isinstance(topic, str) and 0 < len(topic.encode()) <= 65535 and not set(topic) & {"+", "#", "\0"}


def check_device_discovery(topic: str, payload: dict[str, Any]) -> list[str]:
    """Every way ``payload`` on ``topic`` breaks the documented device discovery rules."""
    problems: list[str] = []
    m = DISCOVERY_TOPIC.match(topic)
    if not m or not ID.match(m["object_id"]):
        problems.append(f"discovery topic {topic!r} is not <prefix>/device/<[a-zA-Z0-9_-]+>/config")
    root = _full(payload)
    dev = root.get("device")
    if not isinstance(dev, dict):
        problems.append("device (dev) mapping is required")
    else:
        dev = _full(dev)
        if not dev.get("identifiers") and not dev.get("connections"):
            problems.append("device needs identifiers (ids) or connections (cns)")
    origin = root.get("origin")
    if not isinstance(origin, dict) or not isinstance(origin.get("name"), str) or not origin["name"]:
        problems.append("origin (o) mapping with a name is required")
    for i, av in enumerate(root.get("availability") or []):
        if not _topic_ok(_full(av).get("topic")):
            problems.append(f"availability[{i}] needs a valid topic")
    if "availability" in root and "availability_topic" in root:
        problems.append("availability and availability_topic must not be used together")
    cmps = root.get("components")
    if not isinstance(cmps, dict) or not cmps:
        return [*problems, "components (cmps) mapping is required"]
    unique_ids: set[str] = set()
    for key, raw in cmps.items():
        problems += [f"{key}: {p}" for p in _check_component(key, raw, unique_ids)]
    return problems


def _check_component(key: str, raw: Any, unique_ids: set[str]) -> list[str]:
    if not ID.match(key):
        return [f"component id {key!r} is not [a-zA-Z0-9_-]+"]
    if not isinstance(raw, dict):
        return ["component config must be a mapping"]
    c = _full(raw)
    platform = c.get("platform")
    if platform not in PLATFORMS:
        return [f"platform (p) {platform!r} is not an MQTT platform"]
    out: list[str] = []
    if len(c) < 2:
        out.append("needs at least one option besides the platform")
    uid = c.get("unique_id")
    if not isinstance(uid, str) or not uid:
        out.append("unique_id is required in device discovery")
    elif uid in unique_ids:
        out.append(f"unique_id {uid!r} is used twice")
    else:
        unique_ids.add(uid)
    for opt in REQUIRED.get(str(platform), ()):
        if opt not in c:
            out.append(f"{opt} is required for {platform}")
    for opt, value in c.items():
        if opt.endswith("_topic") and not _topic_ok(value):
            out.append(f"{opt} {value!r} is not a valid topic to publish or subscribe to")
    if platform == "sensor":
        dc = c.get("device_class")
        if dc == "enum" and (not isinstance(c.get("options"), list) or not c["options"]):
            out.append("an enum sensor needs a non-empty options list")
        if c.get("options") is not None and dc not in (None, "enum"):
            out.append("options needs device_class enum")
        if dc in SENSOR_CLASSES_WITH_TEXT_STATE and "unit_of_measurement" in c:
            out.append(f"a {dc or 'text'} sensor cannot have a unit")
        if "options" in c and any(not isinstance(o, str) or len(o) > MAX_STATE for o in c["options"]):
            out.append("enum options must be strings of at most 255 characters")
    if platform == "number":
        lo, hi, step = c.get("min", 1), c.get("max", 100), c.get("step", 1)
        if not lo < hi:
            out.append("number min must be below max")
        if step < 0.001:
            out.append("number step must be at least 0.001")
        if c.get("mode", "auto") not in ("auto", "box", "slider"):
            out.append("number mode must be auto, box or slider")
    if platform == "switch" and c.get("payload_on", "ON") == c.get("payload_off", "OFF"):
        out.append("switch payload_on and payload_off must differ")
    return out
