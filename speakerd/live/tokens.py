"""Ephemeral tokens: ``speakerd token-broker`` on a home server, and the speaker's side of it.

Why: a fleet of speakers should not each hold the long-lived API key. The broker holds it, knows
each device by its own secret, and mints short-lived Live tokens (``client.auth_tokens.create``)
with bounded uses and expiry, locked to the configured model. A speaker fetches one, connects
through the Constrained endpoint on v1alpha, and fetches a fresh one before the old expires.
Neither the key, a device secret nor a token is ever logged or put in an error message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hmac
import json
import logging
import os
import ssl
import stat
import sys
import time
import tomllib
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from google import genai
from google.genai import errors, types
from pydantic import SecretStr

from speakerd import config
from speakerd.config import LiveSettings, TokenBrokerSettings

log = logging.getLogger("speakerd.tokens")

# Tokens are the point of this module: the SDK's per-call "experimental" warnings are noise here.
warnings.filterwarnings("ignore", message=r"The SDK's (token creation|ephemeral token)",
                        category=errors.ExperimentalWarning)

TOKEN_PATH = "/v1/token"  # noqa: S105 - a URL path, not a secret
DEVICE_HEADER = "x-speakerd-device"
DEVICE_SECRET_ENV = "SPEAKERD_DEVICE_SECRET"  # noqa: S105 - a variable name
MIN_SECRET_LENGTH = 16
MAX_BODY_BYTES = 4096
MAX_TOKEN_SECONDS = 20 * 3600  # the service's own limit
EX_OK, EX_USAGE, EX_UNAVAILABLE = 0, 2, 69


class TokenError(Exception):
    """No token could be had. ``fatal``: the broker refused this device (retrying will not help)."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


# The speaker's side -------------------------------------------------------------------------------


def load_device_secret(env: Mapping[str, str] | None = None) -> SecretStr | None:
    """The device's own secret: systemd credential first, then SPEAKERD_DEVICE_SECRET."""
    env = os.environ if env is None else env
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        with contextlib.suppress(OSError):
            value = (Path(cred_dir) / config.BROKER_CREDENTIAL_NAME).read_text(encoding="utf-8").strip()
            if value:
                return SecretStr(value)
    value = env.get(DEVICE_SECRET_ENV, "").strip()
    return SecretStr(value) if value else None


@dataclass(frozen=True)
class BrokerToken:
    name: str  # "auth_tokens/..." - a secret: never log it
    expires_at: float  # on the caller's monotonic clock
    new_sessions_until: float


class TokenSource:
    """Fetches and caches a token from the broker; a fresh one once the cached one nears expiry."""

    def __init__(
        self,
        settings: TokenBrokerSettings,
        secret: SecretStr,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 10.0,
    ) -> None:
        if not settings.url:
            raise ValueError("live.token_broker.url is not set")
        self.settings = settings
        self._secret = secret
        self._clock = clock
        self._timeout = timeout
        self._token: BrokerToken | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    @property
    def secret_values(self) -> tuple[str, ...]:
        """What must never appear in a message (for redaction)."""
        values = [self._secret.get_secret_value()]
        if self._token is not None:
            values.append(self._token.name)
        return tuple(values)

    @property
    def current(self) -> BrokerToken | None:
        return self._token

    def invalidate(self) -> None:
        self._token = None

    def usable(self, token: BrokerToken, *, new_session: bool) -> bool:
        now = self._clock()
        if token.expires_at - now <= self.settings.refresh_before_seconds:
            return False
        return not (new_session and token.new_sessions_until - now <= 5.0)

    async def token(self, *, new_session: bool = True) -> BrokerToken:
        async with self._lock:
            if self._token is not None and self.usable(self._token, new_session=new_session):
                return self._token
            self._token = await self._fetch()
            return self._token

    async def _fetch(self) -> BrokerToken:
        url = str(self.settings.url).rstrip("/") + TOKEN_PATH
        verify: ssl.SSLContext | bool = True
        if self.settings.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.settings.ca_file))
        headers = {
            "Authorization": f"Bearer {self._secret.get_secret_value()}",
            DEVICE_HEADER: self.settings.device_id,
        }
        started = self._clock()
        try:
            async with httpx.AsyncClient(verify=verify, timeout=self._timeout) as client:
                resp = await client.post(url, headers=headers, json={"device_id": self.settings.device_id})
        except httpx.HTTPError as e:
            raise TokenError(f"cannot reach the token broker at {self.settings.url} ({type(e).__name__})") \
                from None
        except (OSError, ssl.SSLError) as e:
            raise TokenError(f"cannot reach the token broker at {self.settings.url} ({type(e).__name__})") \
                from None
        if resp.status_code in (401, 403):
            raise TokenError(
                f"the token broker refused device {self.settings.device_id!r} (HTTP {resp.status_code}); "
                "check the device secret", fatal=True)
        if resp.status_code != 200:
            raise TokenError(f"the token broker answered HTTP {resp.status_code}")
        try:
            data = resp.json()
            name = data["token"]
            expires_in = float(data["expires_in_seconds"])
            new_session_in = float(data.get("new_session_expires_in_seconds", expires_in))
            if not isinstance(name, str) or not name.startswith("auth_tokens/"):
                raise ValueError("not a token")
        except (ValueError, KeyError, TypeError):
            raise TokenError("the token broker sent an answer that is not a token") from None
        self.fetches += 1
        log.info("fetched a Live token from the broker (valid %.0f min)", expires_in / 60)
        return BrokerToken(name, started + expires_in, started + new_session_in)


# The broker ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerPolicy:
    uses: int = 5  # new sessions per token; resuming does not count
    expire_seconds: float = 1800.0
    new_session_seconds: float = 1800.0
    max_per_minute: int = 12  # per device

    def __post_init__(self) -> None:
        if self.uses < 1:
            raise ValueError("uses must be at least 1 (0 would be unlimited)")
        if not 60 <= self.expire_seconds <= MAX_TOKEN_SECONDS:
            raise ValueError("token lifetime must be from 1 minute to 20 hours")
        if not 0 < self.new_session_seconds <= self.expire_seconds:
            raise ValueError("the new-session window must be positive and within the token lifetime")
        if self.max_per_minute < 1:
            raise ValueError("max_per_minute must be at least 1")


class DevicesError(ValueError):
    """A devices file that cannot be used; one line naming file and problem."""


def load_devices(path: Path) -> dict[str, SecretStr]:
    """``[devices]`` table of ``device_id = "secret"`` (at least 16 characters each)."""
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as e:
        raise DevicesError(f"{path}: cannot read ({e.strerror or e})") from None
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise DevicesError(f"{path}: readable or writable by every user; run: chmod o-rw {path}")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise DevicesError(f"{path}: not valid TOML ({str(e).splitlines()[0]})") from None
    devices = data.get("devices")
    if not isinstance(devices, dict) or not devices or set(data) != {"devices"}:
        raise DevicesError(f"{path}: expected one [devices] table of device_id = \"secret\"")
    out: dict[str, SecretStr] = {}
    for name, secret in devices.items():
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            raise DevicesError(f"{path}: devices.{name}: the secret must be a string of at least "
                               f"{MIN_SECRET_LENGTH} characters")
        out[name] = SecretStr(secret)
    return out


class TokenBroker:
    """A small HTTP(S) service: ``POST /v1/token`` with ``Authorization: Bearer <device secret>``."""

    def __init__(
        self,
        api_key: SecretStr,
        devices: Mapping[str, SecretStr],
        live: LiveSettings,
        *,
        policy: BrokerPolicy | None = None,
        http_options: types.HttpOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api_key = api_key
        self._devices = dict(devices)
        self.live = live
        self.policy = policy or BrokerPolicy()
        opts = http_options or types.HttpOptions()
        self._client = genai.Client(
            api_key=api_key.get_secret_value(),
            http_options=opts.model_copy(update={"api_version": "v1alpha"}),
        )
        self._clock = clock
        self._recent: dict[str, deque[float]] = {}
        self._server: asyncio.Server | None = None
        self.minted = 0

    # HTTP --------------------------------------------------------------------------------------

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        self._server = await asyncio.start_server(self._serve, host, port, ssl=ssl_context, limit=16384)
        port = int(self._server.sockets[0].getsockname()[1])
        log.info("token broker listening on %s:%d (%s, %d device(s))", host, port,
                 "https" if ssl_context else "http", len(self._devices))
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, payload = await asyncio.wait_for(self._request(reader), 30)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            status, payload = 400, {"error": "bad request"}
        except (ConnectionError, ssl.SSLError):
            writer.close()
            return
        body = json.dumps(payload).encode()
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                  405: "Method Not Allowed", 413: "Payload Too Large", 429: "Too Many Requests",
                  502: "Bad Gateway"}.get(status, "Error")
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Cache-Control: no-store\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                .encode() + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 2)

    async def _request(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return 400, {"error": "bad request"}
        method, target = parts[0], parts[1].split("?", 1)[0]
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES or length < 0:
            return 413, {"error": "body too large"}
        if length:
            await reader.readexactly(length)
        if target != TOKEN_PATH:
            return 404, {"error": "not found"}
        if method != "POST":
            return 405, {"error": "use POST"}
        device = headers.get(DEVICE_HEADER, "")
        secret = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not self._authentic(device, secret):
            log.warning("token broker: refused a request for device %r", device[:64])
            return 401, {"error": "unknown device or wrong secret"}
        if not self._allowed(device):
            log.warning("token broker: device %r asks too often; refused", device)
            return 429, {"error": "too many requests"}
        try:
            return 200, await self.mint(device)
        except errors.APIError as e:
            log.error("token broker: the service refused to mint a token: %s %s", e.code, e.status)
            return 502, {"error": f"the service refused to mint a token ({e.code})"}
        except (httpx.HTTPError, OSError) as e:
            log.error("token broker: cannot reach the service (%s)", type(e).__name__)
            return 502, {"error": "cannot reach the service"}

    def _authentic(self, device: str, secret: str) -> bool:
        expected = self._devices.get(device)
        # Compare against something even for unknown devices, so timing does not tell which exist.
        want = expected.get_secret_value() if expected is not None else "x" * MIN_SECRET_LENGTH
        ok = hmac.compare_digest(want.encode(), secret.encode())
        return expected is not None and ok

    def _allowed(self, device: str) -> bool:
        now = self._clock()
        recent = self._recent.setdefault(device, deque())
        while recent and now - recent[0] > 60:
            recent.popleft()
        if len(recent) >= self.policy.max_per_minute:
            return False
        recent.append(now)
        return True

    # Minting -----------------------------------------------------------------------------------

    async def mint(self, device: str) -> dict[str, Any]:
        p = self.policy
        now = dt.datetime.now(dt.UTC)
        token = await self._client.aio.auth_tokens.create(config=types.CreateAuthTokenConfig(
            uses=p.uses,
            expire_time=now + dt.timedelta(seconds=p.expire_seconds),
            new_session_expire_time=now + dt.timedelta(seconds=p.new_session_seconds),
            live_connect_constraints=types.LiveConnectConstraints(model=self.live.model),
            lock_additional_fields=[],
        ))
        if not token.name:
            raise errors.APIError(502, {"error": {"message": "no token name"}})
        self.minted += 1
        log.info("token broker: minted a token for %r (%d uses, %.0f min)", device, p.uses,
                 p.expire_seconds / 60)
        return {
            "token": token.name,
            "expires_in_seconds": p.expire_seconds,
            "new_session_expires_in_seconds": p.new_session_seconds,
            "uses": p.uses,
        }


# Command line -------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speakerd token-broker",
        description="Serve short-lived Gemini Live tokens to speakers on the LAN. The API key comes "
        "from the credential gemini-api-key, GEMINI_API_KEY or GOOGLE_API_KEY.",
    )
    p.add_argument("--config", metavar="PATH", help="speakerd configuration (model, endpoint, CA)")
    p.add_argument("--devices", metavar="PATH", required=True,
                   help='TOML file with a [devices] table of device_id = "secret" (mode 0600)')
    p.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:8780",
                   help="address to listen on (default 127.0.0.1:8780)")
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain")
    p.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    p.add_argument("--uses", type=int, default=BrokerPolicy.uses, help="new sessions per token (default 5)")
    p.add_argument("--expire-minutes", type=float, default=BrokerPolicy.expire_seconds / 60,
                   help="token lifetime in minutes (default 30, at most 1200)")
    p.add_argument("--max-per-minute", type=int, default=BrokerPolicy.max_per_minute,
                   help="tokens per device per minute (default 12)")
    return p


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen must be HOST:PORT (got {text!r})")
    return host.strip("[]") or "0.0.0.0", int(port)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        host, port = _listen(args.listen)
        policy = BrokerPolicy(uses=args.uses, expire_seconds=args.expire_minutes * 60,
                              new_session_seconds=args.expire_minutes * 60,
                              max_per_minute=args.max_per_minute)
        devices = load_devices(Path(args.devices))
        if bool(args.tls_cert) != bool(args.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
    except (ValueError, DevicesError) as e:
        print(f"speakerd token-broker: {e}", file=sys.stderr)
        return EX_USAGE
    try:
        cfg = config.load(args.config) if args.config or os.environ.get(config.CONFIG_ENV) \
            else config.Config(config.Settings(), Path("(defaults)"), *config.load_api_key())
    except config.ConfigError as e:
        for line in e.lines:
            print(line, file=sys.stderr)
        return config.EX_CONFIG
    if cfg.api_key is None:
        print("speakerd token-broker: no API key (credential gemini-api-key, GEMINI_API_KEY or "
              "GOOGLE_API_KEY)", file=sys.stderr)
        return config.EX_CONFIG
    ctx = None
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as e:
            print(f"speakerd token-broker: cannot load the TLS certificate: {e}", file=sys.stderr)
            return EX_USAGE
    from speakerd.live.connect_config import http_options

    broker = TokenBroker(cfg.api_key, devices, cfg.settings.live, policy=policy,
                         http_options=http_options(cfg.settings.live, api_version="v1alpha"))

    async def serve() -> None:
        await broker.start(host, port, ctx)
        try:
            await asyncio.Event().wait()
        finally:
            await broker.stop()

    try:
        asyncio.run(serve())
    except OSError as e:
        print(f"speakerd token-broker: cannot listen on {args.listen}: {e.strerror or e}", file=sys.stderr)
        return EX_UNAVAILABLE
    except KeyboardInterrupt:
        pass
    return EX_OK
