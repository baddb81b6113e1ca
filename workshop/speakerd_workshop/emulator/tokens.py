"""Ephemeral tokens: the store behind ``POST /v1alpha/auth_tokens`` and the HTTP endpoint itself.

Why here and not in the WebSocket code: the SDK mints tokens over plain HTTPS on the same TLS
port, and a session only asks the store whether its token may start or go on.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from speakerd_workshop.emulator import wire
from speakerd_workshop.emulator.records import BAD_KEY, NO_KEY, Closing
from speakerd_workshop.emulator.wire import Json

TOKEN_PATH_RE = re.compile(r"^/+(v1|v1beta|v1alpha)/auth_tokens$")


@dataclass
class IssuedToken:
    name: str
    uses: int  # as created; 0 means unlimited
    uses_left: int | None  # None: unlimited
    expire_time: dt.datetime
    new_session_expire_time: dt.datetime
    setup: Json | None
    field_mask: str | None
    created: float


def _now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _parse_time(value: Any, default: dt.datetime) -> dt.datetime:
    if not value:
        return default
    t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class TokenStore:
    """Tokens issued so far, with their uses and expiry; guarded by the emulator's condition."""

    def __init__(self, cond: threading.Condition) -> None:
        self.cond = cond
        self._tokens: dict[str, IssuedToken] = {}

    @property
    def tokens(self) -> list[IssuedToken]:
        with self.cond:
            return [copy.copy(t) for t in self._tokens.values()]

    def create_token(self, body: Json) -> Json:
        now = _now_utc()
        uses = int(body.get("uses", 1))
        if uses < 0:
            raise ValueError("uses must not be negative")
        expire = _parse_time(body.get("expireTime"), now + dt.timedelta(minutes=30))
        new_session = _parse_time(body.get("newSessionExpireTime"), now + dt.timedelta(seconds=60))
        limit = now + dt.timedelta(hours=20, minutes=1)
        if expire > limit or new_session > limit:
            raise ValueError("expireTime and newSessionExpireTime must be at most 20 hours ahead")
        setup = body.get("bidiGenerateContentSetup")
        token = IssuedToken(
            name="auth_tokens/" + secrets.token_hex(16),
            uses=uses,
            uses_left=None if uses == 0 else uses,
            expire_time=expire,
            new_session_expire_time=new_session,
            setup=wire.normalise(setup) if isinstance(setup, dict) else None,
            field_mask=body.get("fieldMask"),
            created=time.monotonic(),
        )
        with self.cond:
            self._tokens[token.name] = token
            self.cond.notify_all()
        return {"name": token.name, "expireTime": _iso(expire), "newSessionExpireTime": _iso(new_session)}

    def use_token(self, name: str, *, resuming: bool) -> IssuedToken:
        with self.cond:
            token = self._tokens.get(name)
            now = _now_utc()
            if token is None:
                raise Closing(1008, "The provided auth token is not valid.")
            if now >= token.expire_time:
                raise Closing(1008, "The provided auth token has expired.")
            if not resuming:
                if now >= token.new_session_expire_time:
                    raise Closing(1008, "The auth token can no longer start new sessions.")
                if token.uses_left is not None:
                    if token.uses_left <= 0:
                        raise Closing(1008, "The auth token has no uses left.")
                    token.uses_left -= 1
            self.cond.notify_all()
            return token

    def token_expired(self, name: str) -> bool:
        with self.cond:
            token = self._tokens.get(name)
            return token is None or _now_utc() >= token.expire_time

    def http_response(
        self, api_key: str, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Json]:
        """Status and JSON body for one HTTP request (only ``POST /v1alpha/auth_tokens`` exists)."""
        path, query = wire.split_target(target)
        m = TOKEN_PATH_RE.match(path)
        if m is None or method != "POST":
            status, payload = 404, http_error(404, "NOT_FOUND", f"Method not found: {method} {path}")
        elif m.group(1) != "v1alpha":
            status, payload = 404, http_error(404, "NOT_FOUND", "auth_tokens is served on v1alpha only.")
        else:
            key = headers.get("x-goog-api-key") or query.get("key")
            if not key:
                status, payload = 403, http_error(403, "PERMISSION_DENIED", NO_KEY)
            elif key != api_key:
                status, payload = 400, http_error(400, "INVALID_ARGUMENT", BAD_KEY)
            else:
                try:
                    data = json.loads(body or b"{}")
                    if not isinstance(data, dict):
                        raise ValueError("body must be a JSON object")
                    payload = self.create_token(wire.normalise(data))
                    status = 200
                except (ValueError, TypeError) as e:
                    status, payload = 400, http_error(400, "INVALID_ARGUMENT", str(e))
        return status, payload


def http_error(code: int, status: str, message: str) -> Json:
    return {"error": {"code": code, "message": message, "status": status}}


def constrain(setup: Json, constraint: Json) -> Json:
    """The token's setup wins over the client's for every field it sets (one level deep)."""
    out = copy.deepcopy(setup)
    for k, v in constraint.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **copy.deepcopy(v)}
        else:
            out[k] = copy.deepcopy(v)
    return out
