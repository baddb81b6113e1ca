"""A real Mosquitto on 127.0.0.1 with a password file and TLS, and a Home Assistant-side client."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from speakerd_workshop.mosquitto import Mosquitto, available

from speakerd.home import MqttSettings

USER, PASSWORD = "speaker", "correct horse battery"
HA_USER, HA_PASSWORD = "homeassistant", "ha secret 123"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if not available():
        pytest.skip("mosquitto is not installed (scripts/test.sh installs it)")
    with Mosquitto(tmp_path / "broker", {USER: PASSWORD, HA_USER: HA_PASSWORD}) as b:
        yield b


def settings_for(b: Mosquitto, **overrides: object) -> MqttSettings:
    data: dict[str, object] = {"host": "127.0.0.1", "port": b.port, "tls": True, "ca_file": b.ca_file,
                               "username": USER, "device_id": "kitchen", "device_name": "Kitchen speaker"}
    data.update(overrides)
    return MqttSettings.model_validate(data)


def ha_client(b: Mosquitto, identifier: str = "home-assistant") -> aiomqtt.Client:
    """What Home Assistant would be: another user of the same broker, over TLS."""
    return aiomqtt.Client("127.0.0.1", b.port, username=HA_USER, password=HA_PASSWORD, identifier=identifier,
                          tls_context=ssl.create_default_context(cafile=str(b.ca_file)), timeout=5)
