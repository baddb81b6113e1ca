"""The ``[mqtt]`` settings and the broker password.

Why a separate model: the home link is optional (off unless ``host`` is set) and must not make the
core configuration harder to read. The password is a secret like the API key: it comes from the
systemd credential ``mqtt-password`` only, never from the TOML file, and is never printed.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

CREDENTIAL_NAME = "mqtt-password"
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# systemd's advice: never publish the machine id itself, only a hash of it keyed by the application.
_APP_KEY = b"speakerd-home-device-id"


class MqttCredentialError(Exception):
    """The credential exists but cannot be read; the message is one line."""


def _machine_id(path: Path = Path("/etc/machine-id")) -> str | None:
    try:
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value or None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:64] or "speaker"


def default_device_id() -> str:
    """Stable per machine and unlinkable to its machine id; the host name if there is none."""
    mid = _machine_id()
    if mid is None:
        return _slug(socket.gethostname())
    return "speakerd-" + hashlib.sha256(_APP_KEY + mid.encode()).hexdigest()[:12]


def default_device_name() -> str:
    return socket.gethostname() or "speakerd"


def _valid_topic_part(value: str, what: str) -> str:
    if not value or value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError(f"{what} must be a topic without a leading or trailing '/', got {value!r}")
    if any(c in value for c in "+#\0") or value.startswith("$"):
        raise ValueError(f"{what} must not contain '+', '#' or NUL nor start with '$', got {value!r}")
    return value


class MqttSettings(BaseModel):
    """``[mqtt]``: the broker, the Home Assistant discovery and multi-speaker arbitration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str | None = None  # None: the home link is off
    port: Annotated[int, Field(ge=1, le=65535)] | None = None  # None: 8883 with TLS, 1883 without
    tls: bool = False
    ca_file: Path | None = None  # None with tls: the system's CAs
    client_cert: Path | None = None
    client_key: Path | None = None
    username: str | None = None
    base_topic: str = "speakerd"
    discovery_prefix: str = "homeassistant"
    device_name: Annotated[str, Field(min_length=1, max_length=64)] = Field(default_factory=default_device_name)
    device_id: Annotated[str, Field(pattern=ID_PATTERN)] = Field(default_factory=default_device_id)
    keepalive_seconds: Annotated[int, Field(ge=5, le=600)] = 30
    publish_transcripts: bool = False  # privacy: off unless asked for
    arbitration: bool = False
    arbitration_window_ms: Annotated[int, Field(ge=20, le=2000)] = 150

    @model_validator(mode="before")
    @classmethod
    def _no_password_here(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "password" in data:
            raise ValueError(f"password: put it in the systemd credential {CREDENTIAL_NAME}, never in this file")
        return data

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _topic(cls, v: str, info: Any) -> str:
        return _valid_topic_part(v, info.field_name)

    @model_validator(mode="after")
    def _tls_consistent(self) -> MqttSettings:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together: set both or neither")
        if not self.tls and (self.ca_file or self.client_cert):
            raise ValueError("ca_file, client_cert and client_key need tls = true")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)


def load_mqtt_password(env: Mapping[str, str] | None = None) -> SecretStr | None:
    """The broker password from ``$CREDENTIALS_DIRECTORY/mqtt-password``, or None (no password)."""
    env = os.environ if env is None else env
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if not cred_dir:
        return None
    try:
        value = (Path(cred_dir) / CREDENTIAL_NAME).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise MqttCredentialError(f"credential {CREDENTIAL_NAME}: cannot read ({reason})") from None
    return SecretStr(value) if value else None


def mqtt_credential_warnings(env: Mapping[str, str] | None = None) -> list[str]:
    """The password file must be readable by speakerd alone, as systemd makes it."""
    cred_dir = (os.environ if env is None else env).get("CREDENTIALS_DIRECTORY")
    if not cred_dir:
        return []
    cred = Path(cred_dir) / CREDENTIAL_NAME
    try:
        mode = cred.stat().st_mode
    except OSError:
        return []
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return [f"credential {CREDENTIAL_NAME}: readable by other users; run: chmod 600 {cred}"]
    return []
