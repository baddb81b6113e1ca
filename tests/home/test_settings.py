"""[mqtt] settings: off unless a host is set, TLS consistent, the password only from the credential."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from speakerd.home import MqttCredentialError, MqttSettings, load_mqtt_password, mqtt_credential_warnings
from speakerd.home.settings import ID_PATTERN, default_device_id


def test_off_unless_a_host_is_set() -> None:
    s = MqttSettings()
    assert not s.enabled and s.effective_port == 1883
    assert s.discovery_prefix == "homeassistant" and not s.publish_transcripts and not s.arbitration
    assert s.arbitration_window_ms == 150
    on = MqttSettings(host="broker.lan", tls=True)
    assert on.enabled and on.effective_port == 8883
    assert MqttSettings(host="broker.lan", port=1884).effective_port == 1884


def test_default_device_id_is_stable_and_a_valid_topic_part() -> None:
    assert default_device_id() == default_device_id()
    assert re.match(ID_PATTERN, default_device_id())
    machine_id = Path("/etc/machine-id")
    if machine_id.exists():
        assert machine_id.read_text().strip() not in default_device_id()


@pytest.mark.parametrize(("data", "message"), [
    ({"password": "hunter22"}, "credential mqtt-password"),
    ({"tls": True, "client_cert": "/x.pem"}, "client_cert and client_key go together"),
    ({"ca_file": "/ca.pem"}, "need tls = true"),
    ({"base_topic": "home/#"}, "must not contain"),
    ({"discovery_prefix": "/homeassistant"}, "leading or trailing"),
    ({"device_id": "kitchen speaker"}, "pattern"),
    ({"arbitration_window_ms": 5}, "greater than or equal"),
    ({"brokr": "x"}, "Extra inputs are not permitted"),
])
def test_bad_settings_are_refused_with_a_reason(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as e:
        MqttSettings.model_validate(data)
    assert message in str(e.value)
    assert "hunter22" not in str(e.value).replace("'password': 'hunter22'", "")


def test_frozen() -> None:
    s = MqttSettings(host="a")
    with pytest.raises(ValidationError):
        s.host = "b"  # type: ignore[misc]


def test_password_from_the_credential_only(tmp_path: Path) -> None:
    assert load_mqtt_password({}) is None
    assert load_mqtt_password({"CREDENTIALS_DIRECTORY": str(tmp_path)}) is None
    cred = tmp_path / "mqtt-password"
    cred.write_text("s3cret pass\n")
    cred.chmod(0o600)
    pw = load_mqtt_password({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert pw is not None and pw.get_secret_value() == "s3cret pass"
    assert "s3cret" not in repr(pw) and "s3cret" not in str(pw)
    assert mqtt_credential_warnings({"CREDENTIALS_DIRECTORY": str(tmp_path)}) == []
    cred.chmod(0o644)
    (warning,) = mqtt_credential_warnings({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert "chmod 600" in warning


def test_unreadable_credential_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "mqtt-password").mkdir()
    with pytest.raises(MqttCredentialError) as e:
        load_mqtt_password({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert "\n" not in str(e.value) and "mqtt-password" in str(e.value)
