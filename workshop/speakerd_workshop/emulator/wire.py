"""Wire-format helpers: the Live API speaks proto3 JSON, so both key spellings and both base64
alphabets arrive, while the server itself answers in camelCase with standard base64."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import parse_qs

Json = dict[str, Any]

# Values under these keys are the caller's own data (function arguments, JSON schemas, tool
# results): their keys are names chosen by people and must not be rewritten.
OPAQUE_KEYS = frozenset({"args", "response", "parameters", "parametersJsonSchema", "responseJsonSchema"})
MAX_FRAME_BYTES = 1 << 20  # what the websockets client accepts by default
MAX_REASON_BYTES = 123  # a close reason must fit one control frame

_SNAKE = re.compile(r"_([a-z0-9])")


class WireError(ValueError):
    """A client message the service would refuse (reported to the client as close 1007)."""


def camel(key: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), key)


def normalise(value: Any) -> Any:
    """Return ``value`` with every snake_case key turned to camelCase, except inside opaque data."""
    if isinstance(value, dict):
        out: Json = {}
        for k, v in value.items():
            ck = camel(k) if isinstance(k, str) else k
            out[ck] = v if ck in OPAQUE_KEYS else normalise(v)
        return out
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def b64decode(data: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (proto3 JSON accepts all four)."""
    s = data.strip().replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise WireError("invalid base64 data") from e


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode(message: Json) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(frame: bytes | str) -> Json:
    try:
        obj = json.loads(frame)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WireError("Invalid JSON payload received.") from e
    if not isinstance(obj, dict):
        raise WireError("Invalid JSON payload received. Expected an object.")
    result: Json = normalise(obj)
    return result


def duration(seconds: float) -> str:
    """A protobuf Duration in JSON form, e.g. ``"4.5s"``."""
    text = f"{max(seconds, 0.0):.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def reason(text: str) -> str:
    """Cut a close reason to what fits one control frame, on a character boundary."""
    raw = text.encode("utf-8")[:MAX_REASON_BYTES]
    return raw.decode("utf-8", errors="ignore")


def pcm_rate(mime_type: str | None, default: int = 16000) -> int:
    """The sample rate declared in ``audio/pcm;rate=N`` (16 kHz when absent)."""
    if mime_type:
        m = re.search(r"rate=(\d+)", mime_type)
        if m:
            return int(m.group(1))
    return default


def split_target(target: str) -> tuple[str, dict[str, str]]:
    """An HTTP request target as (path, first value of each query parameter).

    Why not ``urlsplit``: it reads ``//ws/google.ai...`` as a host name and loses the path, and
    that is exactly what Google's JavaScript SDK always dials and what the Python SDK dials with
    production's trailing-slash base URL. A request target is a path: split at the first ``?``.
    """
    path, _, query = target.partition("?")
    return path or "/", {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
