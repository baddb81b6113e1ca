"""The emulated Live API service: TLS, the WebSocket protocol driven sans-I/O, sessions, replies,
resumption, goAway, faults and the ephemeral-token REST endpoint, all on one asyncio loop.

Why sans-I/O rather than ``websockets.serve``: the same TLS port must also answer the SDK's
``POST /v1alpha/auth_tokens``, and faults need frame-level control (drop TCP, bad frames).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import json
import logging
import re
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from speakerd_workshop.emulator import models, tts, video, wire
from speakerd_workshop.emulator.certs import CertFiles, ensure_certs
from speakerd_workshop.emulator.scenario import Scenario, Turn
from speakerd_workshop.emulator.vad import VAD_KINDS, Vad, VadSettings, make_vad
from speakerd_workshop.emulator.wire import Json, WireError

log = logging.getLogger("speakerd_workshop.emulator")

PATH_RE = re.compile(
    r"^/+ws/google\.ai\.generativelanguage\.(v1|v1beta|v1alpha)\.GenerativeService\."
    r"(BidiGenerateContent|BidiGenerateContentConstrained)$"
)
TOKEN_PATH_RE = re.compile(r"^/+(v1|v1beta|v1alpha)/auth_tokens$")
OUTPUT_MIME = "audio/pcm;rate=24000"
CHUNK_SECONDS = 0.08  # reply audio per message
BURST_SECONDS = 0.5  # how far reply audio runs ahead of real time, like the service's bursts
TOKENS_PER_SECOND = 25  # audio tokens per second, for usageMetadata
CLOSE_WAIT_SECONDS = 3.0

DEFAULT_REASONS = {
    1000: "",
    1007: "Request contains an invalid argument.",
    1008: "Operation is not implemented, or supported, or enabled.",
    1011: "Internal error encountered.",
}
NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
BAD_KEY = "API key not valid. Please pass a valid API key."

FaultKind = Literal["drop", "close", "stall", "malformed", "oversized", "delay", "go_away", "raw"]
RawFrame = str | bytes  # str: a text frame (UTF-8, lone surrogates kept as-is); bytes: a binary frame


@dataclass(frozen=True)
class Fault:
    """A failure to act out. ``target`` "next": the next connection; "current": the newest open one.

    - close/drop/malformed/oversized: ``during`` "setup" (instead of setupComplete), "reply" (after
      ``after_chunks`` audio messages of the next reply) or "now" (current connection at once).
    - stall: hold setupComplete back ``seconds`` (0: forever). delay: hold every message ``seconds``.
    - go_away: send goAway{timeLeft=go_away_before_seconds} (at once or right after setupComplete),
      then close 1000 when the time is up.
    - raw: send ``frames`` exactly as given (for fuzzing the client), "setup" before setupComplete,
      then go on normally; with ``then_close`` close with ``code``/``reason`` right after them.
    """

    kind: FaultKind
    code: int = 1011
    reason: str | None = None
    target: Literal["next", "current"] = "next"
    during: Literal["setup", "reply", "now"] = "reply"
    after_chunks: int = 2
    seconds: float = 0.0
    frames: tuple[RawFrame, ...] = ()
    then_close: bool = False


@dataclass(frozen=True)
class Received:
    connection: int
    message: Json
    time: float


@dataclass
class ConnectionInfo:
    id: int
    path: str
    api_version: str
    method: str
    auth: str  # header-key, query-key, token-header, query-token or none
    credential: str | None
    headers: dict[str, str]
    opened: float
    model: str | None = None
    setup: Json | None = None  # effective setup (token constraints applied)
    resumed_handle: str | None = None
    close_code: int | None = None
    closed_reason: str | None = None
    closed_by: str | None = None  # server, client or drop
    closed: float | None = None


@dataclass(frozen=True)
class ServerEvent:
    connection: int
    kind: str
    time: float
    detail: Json = field(default_factory=dict)


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


@dataclass
class _Conversation:
    history: list[Json] = field(default_factory=list)
    turn_index: int = 0
    # The session's clock and media carry over resumption: the length limits are per session.
    started: float = field(default_factory=time.monotonic)
    had_audio: bool = False
    had_video: bool = False


@dataclass
class _Handle:
    conversation: _Conversation
    model: str
    connection: int
    issued: float


@dataclass
class _Pending:
    id: str
    name: str
    non_blocking: bool
    turn: Turn
    future: asyncio.Future[Json]


class _Closing(Exception):
    """Raised inside message handling to end the connection with a close code."""

    def __init__(self, code: int, reason: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.reason = DEFAULT_REASONS.get(code, "") if reason is None else reason


def _now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _parse_time(value: Any, default: dt.datetime) -> dt.datetime:
    if not value:
        return default
    t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class Emulator:
    """The service itself; everything runs on the loop that calls :meth:`start`."""

    def __init__(
        self,
        scenario: Scenario | Path | str | None = None,
        api_key: str = "test-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_dir: Path | None = None,
        handle_validity_seconds: float = 7200,
        connection_lifetime_seconds: float | None = None,
        go_away_before_seconds: float = 5.0,
        pace: float = 1.0,
        reply_delay_seconds: float = 0.0,
        audio_video_limit_seconds: float = video.AUDIO_VIDEO_LIMIT_SECONDS,
        vad: str = "energy",
    ) -> None:
        if vad not in VAD_KINDS:
            raise ValueError(f"vad must be one of {', '.join(VAD_KINDS)}")
        self.vad = vad  # "silero": a neural VAD decides what is speech, as the real service's does
        if scenario is None:
            scenario = Path(__file__).with_name("scenarios") / "default.toml"
        self.scenario = scenario if isinstance(scenario, Scenario) else Scenario.load(scenario)
        if pace <= 0:
            raise ValueError("pace must be positive")
        self.api_key = api_key
        self.host = host
        self.port = port
        self.cert_dir = cert_dir
        self.handle_validity_seconds = handle_validity_seconds
        self.connection_lifetime_seconds = connection_lifetime_seconds
        self.go_away_before_seconds = go_away_before_seconds
        self.pace = pace
        self.reply_delay_seconds = reply_delay_seconds
        self.audio_video_limit_seconds = audio_video_limit_seconds
        self.cond = threading.Condition(threading.RLock())
        self._received: list[Received] = []
        self._connections: list[ConnectionInfo] = []
        self._events: list[ServerEvent] = []
        self._tokens: dict[str, IssuedToken] = {}
        self._handles: dict[str, _Handle] = {}
        self._live: dict[int, _Connection] = {}
        self._next_faults: list[Fault] = []
        self._server: asyncio.Server | None = None
        self._tmp: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.certs: CertFiles | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.cert_dir is None:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="speakerd-emulator-")
            cert_dir = Path(self._tmp.name)
        else:
            cert_dir = self.cert_dir
        self.certs = await asyncio.to_thread(ensure_certs, cert_dir)
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, ssl=self.certs.server_context(), limit=1 << 16
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.debug("Live API emulator listening on %s", self.base_url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._live.values()):
            conn.abort("server")
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        if self.certs is None:
            raise RuntimeError("the emulator is not started")
        return self.certs.ca

    # ---- thread-safe views -----------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self.cond:
            return list(self._received)

    @property
    def connections(self) -> list[ConnectionInfo]:
        with self.cond:
            return [copy.copy(c) for c in self._connections]

    @property
    def events(self) -> list[ServerEvent]:
        with self.cond:
            return list(self._events)

    @property
    def tokens(self) -> list[IssuedToken]:
        with self.cond:
            return [copy.copy(t) for t in self._tokens.values()]

    def received_audio(self, connection: int | None = None) -> bytes:
        out = bytearray()
        for r in self.received:
            if connection is not None and r.connection != connection:
                continue
            rt = r.message.get("realtimeInput") or {}
            blobs = [rt["audio"]] if isinstance(rt.get("audio"), dict) else list(rt.get("mediaChunks") or [])
            for b in blobs:
                if str(b.get("mimeType", "audio/pcm")).startswith("audio/") and b.get("data"):
                    with contextlib.suppress(WireError):
                        out += wire.b64decode(b["data"])
        return bytes(out)

    def received_video(self, connection: int | None = None) -> list[tuple[float, bytes]]:
        """Every image frame received (monotonic arrival time, bytes), in order."""
        out: list[tuple[float, bytes]] = []
        for r in self.received:
            if connection is not None and r.connection != connection:
                continue
            rt = r.message.get("realtimeInput")
            if isinstance(rt, dict):
                with contextlib.suppress(WireError):
                    out.extend((r.time, data) for _mime, data in video.decode_frames(rt))
        return out

    def _record(self, target: list[Any], item: Any) -> None:
        with self.cond:
            target.append(item)
            self.cond.notify_all()

    def event(self, connection: int, kind: str, **detail: Any) -> None:
        self._record(self._events, ServerEvent(connection, kind, time.monotonic(), detail))

    def changed(self) -> None:
        with self.cond:
            self.cond.notify_all()

    # ---- faults ----------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Arm a fault (call on the emulator's loop; EmulatorThread.inject hands it over)."""
        if fault.target == "next" and fault.during != "now":
            self._next_faults.append(fault)
            return
        live = [c for c in self._live.values() if c.info.setup is not None]
        if not live:
            raise RuntimeError("no open session to inject the fault into")
        live[-1].add_fault(fault)

    def take_next_faults(self) -> list[Fault]:
        faults, self._next_faults = self._next_faults, []
        return faults

    # ---- handles and tokens ----------------------------------------------------------------

    def new_handle(self, conn: _Connection) -> str:
        handle = "emu-" + secrets.token_urlsafe(18)
        assert conn.info.model is not None
        self._handles[handle] = _Handle(
            copy.deepcopy(conn.convo), conn.info.model, conn.info.id, time.monotonic()
        )
        return handle

    def resume(self, handle: str, model: str) -> _Conversation:
        rec = self._handles.get(handle)
        if rec is None:
            raise _Closing(1007, "Session resumption failed: unknown handle.")
        with self.cond:
            origin = self._connections[rec.connection - 1]
        ended = origin.closed
        if ended is not None and time.monotonic() - ended > self.handle_validity_seconds:
            raise _Closing(1007, "Session resumption failed: the handle has expired.")
        if rec.model != model:
            raise _Closing(1007, "Session resumption failed: the model cannot change when resuming.")
        return copy.deepcopy(rec.conversation)

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
                raise _Closing(1008, "The provided auth token is not valid.")
            if now >= token.expire_time:
                raise _Closing(1008, "The provided auth token has expired.")
            if not resuming:
                if now >= token.new_session_expire_time:
                    raise _Closing(1008, "The auth token can no longer start new sessions.")
                if token.uses_left is not None:
                    if token.uses_left <= 0:
                        raise _Closing(1008, "The auth token has no uses left.")
                    token.uses_left -= 1
            self.cond.notify_all()
            return token

    def token_expired(self, name: str) -> bool:
        with self.cond:
            token = self._tokens.get(name)
            return token is None or _now_utc() >= token.expire_time

    # ---- accepting -------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
                return
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            method = parts[0] if parts else ""
            if method == "GET" and b"websocket" in head.lower():
                await self._websocket(head, reader, writer)
            else:
                await self._http(method, head, reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as e:
            log.debug("connection ended: %s", e)
        except ValueError as e:  # a malformed HTTP request head or length
            log.debug("bad request: %s", e)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def _http(
        self, method: str, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        lines = head.decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
        length = int(headers.get("content-length", "0") or 0)
        body = await reader.readexactly(length) if length else b""
        url = urlsplit(target)
        query = parse_qs(url.query)
        m = TOKEN_PATH_RE.match(url.path)
        if m is None or method != "POST":
            status, payload = 404, _http_error(404, "NOT_FOUND", f"Method not found: {method} {url.path}")
        elif m.group(1) != "v1alpha":
            status, payload = 404, _http_error(404, "NOT_FOUND", "auth_tokens is served on v1alpha only.")
        else:
            key = headers.get("x-goog-api-key") or next(iter(query.get("key") or []), None)
            if not key:
                status, payload = 403, _http_error(403, "PERMISSION_DENIED", NO_KEY)
            elif key != self.api_key:
                status, payload = 400, _http_error(400, "INVALID_ARGUMENT", BAD_KEY)
            else:
                try:
                    data = json.loads(body or b"{}")
                    if not isinstance(data, dict):
                        raise ValueError("body must be a JSON object")
                    payload = self.create_token(wire.normalise(data))
                    status = 200
                except (ValueError, TypeError) as e:
                    status, payload = 400, _http_error(400, "INVALID_ARGUMENT", str(e))
        raw = json.dumps(payload).encode()
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}[status]
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=UTF-8\r\n"
            f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n".encode()
            + raw
        )
        await writer.drain()

    async def _websocket(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        protocol = ServerProtocol(max_size=16 << 20)
        protocol.receive_data(head)
        events = protocol.events_received()
        request = events[0] if events and isinstance(events[0], Request) else None
        url = urlsplit(request.path if request else "/")
        m = PATH_RE.match(url.path)
        if request is None or m is None:
            response = protocol.reject(404, "Not Found\n")
            protocol.send_response(response)
            for data in protocol.data_to_send():
                writer.write(data)
            await writer.drain()
            return
        response = protocol.accept(request)
        protocol.send_response(response)
        for data in protocol.data_to_send():
            writer.write(data)
        await writer.drain()
        if response.status_code != 101:
            return
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        hdrs = {k.lower(): v for k, v in request.headers.raw_items()}
        auth, credential = _credential(hdrs, query, constrained=m.group(2).endswith("Constrained"))
        with self.cond:
            info = ConnectionInfo(
                id=len(self._connections) + 1,
                path=url.path,
                api_version=m.group(1),
                method=m.group(2),
                auth=auth,
                credential=credential,
                headers=hdrs,
                opened=time.monotonic(),
            )
            self._connections.append(info)
            self.cond.notify_all()
        conn = _Connection(self, info, protocol, reader, writer)
        self._live[info.id] = conn
        try:
            await conn.run()
        finally:
            del self._live[info.id]
            self.changed()


def _http_error(code: int, status: str, message: str) -> Json:
    return {"error": {"code": code, "message": message, "status": status}}


def _credential(
    headers: dict[str, str], query: dict[str, str], *, constrained: bool
) -> tuple[str, str | None]:
    authz = headers.get("authorization", "")
    if constrained:
        if authz.startswith("Token "):
            return "token-header", authz.removeprefix("Token ").strip()
        if query.get("access_token"):
            return "query-token", query["access_token"]
        key = headers.get("x-goog-api-key") or query.get("key")
        if key:
            return ("header-key" if headers.get("x-goog-api-key") else "query-key"), key
        return "none", None
    if headers.get("x-goog-api-key"):
        return "header-key", headers["x-goog-api-key"]
    if query.get("key"):
        return "query-key", query["key"]
    if authz.startswith("Token ") or query.get("access_token"):
        return "token-header" if authz else "query-token", authz.removeprefix("Token ").strip() or query.get(
            "access_token"
        )
    return "none", None


class _Connection:
    """One WebSocket connection and the Live session on it."""

    def __init__(
        self,
        emu: Emulator,
        info: ConnectionInfo,
        protocol: ServerProtocol,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.emu = emu
        self.info = info
        self.protocol = protocol
        self.reader = reader
        self.writer = writer
        self.out: asyncio.Queue[tuple[str, Any, str | None]] = asyncio.Queue()
        self.delay = 0.0
        self.faults: list[Fault] = []
        self.convo = _Conversation()
        self.rules: models.ModelRules | None = None
        self.setup: Json = {}
        self.token: str | None = None
        self.vad: Vad | None = None
        self.manual = False  # automatic activity detection disabled
        self.interrupts = True
        self.in_activity = False
        self.turn_audio_seconds = 0.0
        self.seen_realtime = False
        self.turns: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.reply: asyncio.Task[None] | None = None
        self.pending: dict[str, _Pending] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.chunks_in_reply = 0
        self.closing = False
        self.fragments: list[bytes] = []
        self.frames_total = 0  # image frames received on this connection
        self.frames_mark = 0  # frames already told of by a {frames} placeholder
        self.frame_tokens = 0  # VIDEO prompt tokens not yet reported in usageMetadata
        self.limit_armed = False

    # ---- plumbing --------------------------------------------------------------------------

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, _Closing):
                self.close(exc.code, exc.reason)
            elif not isinstance(exc, ConnectionError):
                log.error("emulator task failed: %r", exc, exc_info=exc)
                self.close(1011)

    def flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.writer.write(data)
            else:
                self.writer.close()  # TLS cannot half-close; the close handshake is complete

    def send(self, message: Json, tag: str | None = None) -> None:
        self.out.put_nowait(("msg", message, tag))

    def close(self, code: int, reason: str | None = None) -> None:
        if not self.closing:
            self.closing = True
            self.out.put_nowait(
                ("close", (code, DEFAULT_REASONS.get(code, "") if reason is None else reason), None)
            )

    def abort(self, by: str = "drop") -> None:
        if self.info.closed is None:
            self._finish(1006, "", by)
        self.writer.transport.abort()

    def _finish(self, code: int | None, reason: str, by: str) -> None:
        with self.emu.cond:
            if self.info.closed is None:
                self.info.close_code = code
                self.info.closed_reason = reason
                self.info.closed_by = by
                self.info.closed = time.monotonic()
            self.emu.cond.notify_all()

    async def _writer(self) -> None:
        while True:
            kind, payload, tag = await self.out.get()
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            if self.info.closed is not None:
                return
            if kind == "msg":
                data = wire.encode(payload)
                if len(data) >= wire.MAX_FRAME_BYTES:
                    log.error("emulator message of %d bytes not sent", len(data))
                    continue
                self.protocol.send_binary(data)
            elif kind == "raw":
                if isinstance(payload, str):
                    self.protocol.send_text(payload.encode("utf-8", "surrogatepass"))
                else:
                    self.protocol.send_binary(payload)
            elif kind == "drop":
                self.emu.event(self.info.id, "drop")
                self.abort("drop")
                return
            elif kind == "close":
                code, text = payload
                text = wire.reason(text)
                self.protocol.send_close(code, text)
                self.flush()
                self._finish(code, text, "server")
                self.emu.event(self.info.id, "close", code=code, reason=text)
                await self.writer.drain()
                self.spawn(self._force_close())
                return
            elif kind == "call":
                payload()
                continue
            self.flush()
            if tag:
                self.emu.event(self.info.id, tag)
            await self.writer.drain()

    async def _force_close(self) -> None:
        await asyncio.sleep(CLOSE_WAIT_SECONDS)
        self.writer.transport.abort()

    async def run(self) -> None:
        self.spawn(self._writer())
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    self.protocol.receive_eof()
                    break
                self.protocol.receive_data(data)
                self.flush()
                for ev in self.protocol.events_received():
                    if isinstance(ev, Frame):
                        self._frame(ev)
                if self.protocol.close_rcvd is not None and self.info.closed is None:
                    rcvd = self.protocol.close_rcvd
                    self._finish(rcvd.code, rcvd.reason, "client")
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            if self.info.closed is None:
                self._finish(1006, "", "drop")
            for p in self.pending.values():
                p.future.cancel()
            for t in list(self.tasks):
                t.cancel()
            self.writer.transport.abort() if self.writer.transport.is_closing() else self.writer.close()

    def _frame(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            self.fragments.append(bytes(frame.data))
            if not frame.fin:
                return
            data, self.fragments = b"".join(self.fragments), []
            if self.closing or self.info.closed is not None:
                return
            try:
                self._message(data)
            except _Closing as c:
                self.close(c.code, c.reason)
            except WireError as e:
                self.close(1007, str(e))

    # ---- faults ----------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        if fault.kind == "delay":
            self.delay = fault.seconds
        elif fault.kind == "go_away" and fault.during in ("now", "setup"):
            self.spawn(self._go_away(self.emu.go_away_before_seconds))
        elif fault.during == "now":
            self._act(fault)
        else:
            self.faults.append(fault)

    def _act(self, fault: Fault) -> None:
        self.emu.event(self.info.id, "fault", fault=fault.kind)
        if fault.kind == "close":
            self.close(fault.code, fault.reason)
        elif fault.kind == "drop":
            self.out.put_nowait(("drop", None, None))
        elif fault.kind == "malformed":
            self.out.put_nowait(("raw", b'{"serverContent": {"modelTurn": ', None))
        elif fault.kind == "oversized":
            filler = wire.encode(
                {"serverContent": {"modelTurn": {"parts": [{"text": "x" * wire.MAX_FRAME_BYTES}]}}}
            )
            self.out.put_nowait(("raw", filler, None))
        elif fault.kind == "go_away":
            self.spawn(self._go_away(self.emu.go_away_before_seconds))
        elif fault.kind == "raw":
            for frame in fault.frames:
                self.out.put_nowait(("raw", frame, "rawFrame"))
            if fault.then_close:
                self.close(fault.code, fault.reason)

    def _reply_faults(self) -> None:
        for f in [f for f in self.faults if f.during == "reply" and self.chunks_in_reply >= f.after_chunks]:
            self.faults.remove(f)
            self._act(f)

    async def _go_away(self, time_left: float) -> None:
        self.send({"goAway": {"timeLeft": wire.duration(time_left)}}, tag="goAway")
        await asyncio.sleep(time_left)
        self.close(1000, "")

    async def _lifetime(self, lifetime: float) -> None:
        before = min(self.emu.go_away_before_seconds, lifetime)
        await asyncio.sleep(lifetime - before)
        await self._go_away(before)

    # ---- messages --------------------------------------------------------------------------

    def _message(self, data: bytes) -> None:
        msg = wire.decode(data)
        self.emu._record(self.emu._received, Received(self.info.id, msg, time.monotonic()))
        keys = [
            k
            for k in msg
            if k in ("setup", "clientContent", "realtimeInput", "toolResponse", "contextUpdate")
        ]
        if len(keys) != 1:
            raise _Closing(
                1007,
                "Request contains an invalid argument: expected exactly one of setup, "
                "clientContent, realtimeInput, toolResponse.",
            )
        key = keys[0]
        body = msg[key]
        if not isinstance(body, dict):
            raise _Closing(1007)
        if key == "setup":
            if self.info.setup is not None or self.rules is not None:
                raise _Closing(1007, "Request contains an invalid argument: setup was already sent.")
            self._setup(body)
            return
        if self.rules is None:
            raise _Closing(1007, "Request contains an invalid argument: the first message must be setup.")
        if self.token is not None and self.emu.token_expired(self.token):
            raise _Closing(1008, "The provided auth token has expired.")
        if key == "realtimeInput":
            self._realtime(body)
        elif key == "clientContent":
            self._client_content(body)
        elif key == "toolResponse":
            self._tool_response(body)

    def _setup(self, setup: Json) -> None:
        info = self.info
        constrained = info.method.endswith("Constrained")
        resume_handle = (setup.get("sessionResumption") or {}).get("handle") or None
        if constrained:
            if info.credential is None or not info.credential.startswith("auth_tokens/"):
                raise _Closing(1008, NO_KEY if info.credential is None else BAD_KEY)
            token = self.emu.use_token(info.credential, resuming=resume_handle is not None)
            self.token = token.name
            if token.setup:
                setup = _constrain(setup, token.setup)
        elif info.credential is None:
            raise _Closing(1008, NO_KEY)
        elif info.credential != self.emu.api_key:
            raise _Closing(1008, BAD_KEY)
        model = str(setup.get("model") or "").removeprefix("models/")
        rules = models.MODELS.get(model)
        if rules is None:
            raise _Closing(1008, models.not_found_reason(model, info.api_version))
        rejected = models.rejection(rules, setup)
        if rejected:
            raise _Closing(1008, rejected)
        if resume_handle:
            self.convo = self.emu.resume(str(resume_handle), model)
        with self.emu.cond:
            info.model = model
            info.setup = setup
            info.resumed_handle = resume_handle
        self.rules = rules
        self.setup = setup
        ric = setup.get("realtimeInputConfig") or {}
        aad = ric.get("automaticActivityDetection") or {}
        self.manual = bool(aad.get("disabled"))
        self.vad = None if self.manual else make_vad(self.emu.vad, VadSettings.from_setup(aad))
        self.interrupts = ric.get("activityHandling") != "NO_INTERRUPTION"
        if "contextWindowCompression" in setup:
            self.emu.event(info.id, "compression", config=setup["contextWindowCompression"])
        faults = self.emu.take_next_faults()
        for f in faults:
            if f.kind == "delay":
                self.delay = f.seconds
        self.spawn(self._start(faults))

    async def _start(self, faults: list[Fault]) -> None:
        for f in faults:
            if f.kind == "stall":
                self.emu.event(self.info.id, "stall")
                if f.seconds <= 0:
                    return
                await asyncio.sleep(f.seconds)
        for f in faults:
            if f.during == "setup" and f.kind in ("close", "drop", "malformed", "oversized"):
                self._act(f)
                return
            if f.during == "setup" and f.kind == "raw":
                self._act(f)
                if f.then_close:
                    return
        self.send({"setupComplete": {}}, tag="setupComplete")
        self._resumption()
        for f in faults:
            if f.kind in ("close", "drop", "malformed", "oversized", "raw") and f.during == "reply":
                self.faults.append(f)
            elif f.kind == "go_away":
                self.spawn(self._go_away(self.emu.go_away_before_seconds))
        if self.emu.connection_lifetime_seconds is not None:
            self.spawn(self._lifetime(self.emu.connection_lifetime_seconds))
        self.spawn(self._turn_worker())

    def _resumption(self) -> None:
        if "sessionResumption" not in self.setup:
            return
        busy = (self.reply is not None and not self.reply.done()) or bool(self.pending)
        if busy:
            self.send({"sessionResumptionUpdate": {"resumable": False}})
        else:
            handle = self.emu.new_handle(self)
            self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}}, tag="handle")

    def _realtime(self, body: Json) -> None:
        self.seen_realtime = True
        blobs: list[Json] = []
        if isinstance(body.get("audio"), dict):
            blobs.append(body["audio"])
        for chunk in body.get("mediaChunks") or []:
            if isinstance(chunk, dict):
                blobs.append(chunk)
                break  # the service uses only the first chunk
        for blob in blobs:
            mime = str(blob.get("mimeType") or "")
            pcm = wire.b64decode(str(blob.get("data") or ""))
            if not mime.startswith("audio/"):
                continue
            self._media("audio")
            rate = wire.pcm_rate(mime)
            if self.vad is not None:
                for ev in self.vad.feed(pcm, rate):
                    if ev.kind == "start":
                        self._activity_start("vad")
                    else:
                        self._user_turn("audio", None, "vad")
            if self.vad is None or self.vad.active:
                self.turn_audio_seconds += len(pcm) / 2 / rate
        for mime, data in video.decode_frames(body):
            try:
                width, height = video.check_frame(mime, data)
            except video.FrameError as e:
                raise _Closing(1007, f"Request contains an invalid argument: {e}") from e
            self.frames_total += 1
            self.frame_tokens += video.tokens_per_frame(self.setup)
            self.emu.event(self.info.id, "videoFrame", bytes=len(data), width=width, height=height)
            self._media("video")
        if body.get("audioStreamEnd") and self.vad is not None and self.vad.active:
            self.vad.reset()
            self._user_turn("audio", None, "audioStreamEnd")
        if "activityStart" in body:
            if not self.manual:
                raise _Closing(
                    1007,
                    "Request contains an invalid argument: activityStart requires "
                    "automaticActivityDetection.disabled.",
                )
            self.in_activity = True
            self._activity_start("activityStart")
        if "activityEnd" in body:
            if not self.manual:
                raise _Closing(
                    1007,
                    "Request contains an invalid argument: activityEnd requires "
                    "automaticActivityDetection.disabled.",
                )
            if self.in_activity:
                self.in_activity = False
                self._user_turn("audio", None, "activityEnd")
        text = body.get("text")
        if isinstance(text, str) and text:
            self._activity_start("text")
            self._user_turn("text", text, "text")

    def _media(self, kind: str) -> None:
        """Note audio or video in the session; audio+video without compression gets its 2-minute limit."""
        if kind == "audio":
            self.convo.had_audio = True
        else:
            self.convo.had_video = True
        if (
            self.convo.had_audio
            and self.convo.had_video
            and not self.limit_armed
            and "contextWindowCompression" not in self.setup
        ):
            self.limit_armed = True
            self.spawn(self._session_limit())

    async def _session_limit(self) -> None:
        limit = self.emu.audio_video_limit_seconds
        await asyncio.sleep(max(0.0, self.convo.started + limit - time.monotonic()))
        self.emu.event(self.info.id, "sessionLimit", media="audio+video", seconds=limit)
        self.close(1011, video.LIMIT_REASON)

    def _frames(self, text: str) -> str:
        """Fill ``{frames}``: image frames received since the last text that mentioned them."""
        if "{frames}" not in text:
            return text
        count, self.frames_mark = self.frames_total - self.frames_mark, self.frames_total
        return text.replace("{frames}", str(count))

    def _client_content(self, body: Json) -> None:
        assert self.rules is not None
        if not self.rules.client_content_anytime and (
            self.seen_realtime
            or not (self.setup.get("historyConfig") or {}).get("initialHistoryInClientContent")
        ):
            raise _Closing(
                1007,
                "Request contains an invalid argument: this model takes clientContent "
                "only to seed history (historyConfig.initialHistoryInClientContent).",
            )
        last_user = None
        for t in body.get("turns") or []:
            text = " ".join(
                str(p.get("text", "")) for p in t.get("parts") or [] if isinstance(p, dict)
            ).strip()
            self.convo.history.append({"role": t.get("role", "user"), "text": text})
            if t.get("role", "user") == "user":
                last_user = text
        if body.get("turnComplete"):
            self._interrupt("clientContent", force=True)
            self.turns.put_nowait(("user", ("text", last_user or "", "clientContent", True)))

    def _tool_response(self, body: Json) -> None:
        for fr in body.get("functionResponses") or []:
            pid = str(fr.get("id") or "")
            pending = self.pending.get(pid)
            if pending is None:
                self.emu.event(self.info.id, "unknownToolResponse", id=pid)
                continue
            response = fr.get("response") if isinstance(fr.get("response"), dict) else {}
            if not fr.get("willContinue"):
                del self.pending[pid]
            if not pending.non_blocking:
                if not pending.future.done():
                    pending.future.set_result(response)
                continue
            self.convo.history.append({"role": "tool", "name": pending.name, "response": response})
            scheduling = fr.get("scheduling") or "WHEN_IDLE"
            text = self._frames(_fill(pending.turn.after_tool_text, [response]))
            if scheduling == "SILENT" or not text:
                if not self.pending and (self.reply is None or self.reply.done()):
                    self._resumption()
                continue
            if scheduling == "INTERRUPT":
                self._interrupt("toolResponse", force=True, cancel_tools=False)
            self.turns.put_nowait(("model", text))

    # ---- turns -----------------------------------------------------------------------------

    def _activity_start(self, source: str) -> None:
        self.emu.event(self.info.id, "activityStart", source=source)
        self.turn_audio_seconds = 0.0
        if self.interrupts:
            self._interrupt(source)

    def _interrupt(self, source: str, force: bool = False, cancel_tools: bool = True) -> None:
        if not (force or self.interrupts):
            return
        if self.reply is None or self.reply.done():
            return
        self.reply.cancel()
        self.send({"serverContent": {"interrupted": True}}, tag="interrupted")
        ids = [p.id for p in self.pending.values()] if cancel_tools else []
        if ids:
            for pid in ids:
                self.pending.pop(pid).future.cancel()
            self.send({"toolCallCancellation": {"ids": ids}}, tag="toolCallCancellation")
        self.send({"serverContent": {"turnComplete": True}}, tag="turnComplete")
        self.emu.event(self.info.id, "interruptedBy", source=source)

    def _user_turn(self, kind: str, text: str | None, source: str) -> None:
        self.emu.event(self.info.id, "userTurnEnd", source=source)
        self.turns.put_nowait(("user", (kind, text, source, False)))

    async def _turn_worker(self) -> None:
        while True:
            item = await self.turns.get()
            if item[0] == "user":
                kind, text, _source, _forced = item[1]
                coro = self._respond(kind, text)
            else:
                coro = self._speak_turn(item[1])
            self.reply = asyncio.ensure_future(coro)
            self.chunks_in_reply = 0
            await asyncio.wait({self.reply})
            if not self.reply.cancelled() and self.reply.exception() is not None:
                exc = self.reply.exception()
                if isinstance(exc, _Closing):
                    self.close(exc.code, exc.reason)
                    return
                raise exc  # type: ignore[misc]
            self._resumption()

    async def _respond(self, kind: str, text: str | None) -> None:
        assert self.rules is not None
        turn = self.emu.scenario.turn(self.convo.turn_index)
        self.convo.turn_index += 1
        prompt_seconds, self.turn_audio_seconds = self.turn_audio_seconds, 0.0
        if kind == "audio":
            text = turn.user_transcript
            if text and "inputAudioTranscription" in self.setup:
                self.send(
                    {"serverContent": {"inputTranscription": {"text": text, "finished": True}}},
                    tag="inputTranscription",
                )
        self.convo.history.append({"role": "user", "text": text or ""})
        self._resumption()
        if self.emu.reply_delay_seconds > 0:
            await asyncio.sleep(self.emu.reply_delay_seconds)
        declared = {str(d.get("name")): d for d in models.declarations(self.setup)}
        calls = []
        for spec in turn.tool_calls:
            if spec.name not in declared:
                self.emu.event(self.info.id, "toolNotDeclared", name=spec.name)
                continue
            behavior = declared[spec.name].get("behavior")
            nb = spec.non_blocking
            if nb is None:
                nb = behavior == "NON_BLOCKING" or (behavior is None and self.rules.non_blocking_default)
            pid = "fc-" + uuid.uuid4().hex[:16]
            fut: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
            self.pending[pid] = _Pending(pid, spec.name, nb, turn, fut)
            calls.append({"id": pid, "name": spec.name, "args": spec.args})
        reply = self._frames(turn.reply_text)
        audio = turn.reply_audio
        if calls:
            self.send({"toolCall": {"functionCalls": calls}}, tag="toolCall")
            self._resumption()
            blocking = [p for p in self.pending.values() if not p.non_blocking and p.turn is turn]
            if blocking:
                results = await asyncio.gather(*(p.future for p in blocking))
                for p, r in zip(blocking, results, strict=True):
                    self.convo.history.append({"role": "tool", "name": p.name, "response": r})
                reply = self._frames(_fill(turn.after_tool_text or turn.reply_text, list(results)))
                audio = None
        await self._speak(reply, audio, prompt_seconds, len((text or "").split()))

    async def _speak_turn(self, text: str) -> None:
        await self._speak(text, None, 0.0, 0)

    async def _speak(self, text: str, audio: Path | None, prompt_seconds: float, prompt_words: int) -> None:
        assert self.rules is not None
        pcm = (
            await asyncio.to_thread(tts.read_wav, audio)
            if audio
            else await asyncio.to_thread(tts.synthesize, text)
        )
        step = int(tts.OUTPUT_RATE * CHUNK_SECONDS) * 2
        chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
        pieces = re.findall(r"\s*\S+\s*", text) if "outputAudioTranscription" in self.setup else []
        per_chunk: list[list[str]] = [[] for _ in chunks] or [[]]
        for i, piece in enumerate(pieces):
            per_chunk[min(len(per_chunk) - 1, i * len(per_chunk) // max(1, len(pieces)))].append(piece)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sent = 0.0
        for k, chunk in enumerate(chunks or [b""]):
            target = t0 + max(0.0, sent - BURST_SECONDS) / self.emu.pace
            if target > loop.time():
                await asyncio.sleep(target - loop.time())
            content: Json = {}
            if chunk:
                content["modelTurn"] = {
                    "parts": [{"inlineData": {"mimeType": OUTPUT_MIME, "data": wire.b64encode(chunk)}}]
                }
            said = "".join(per_chunk[k]) if k < len(per_chunk) else ""
            if said and self.rules.multi_part:
                content["outputTranscription"] = {"text": said}
            if content:
                self.send({"serverContent": content}, tag="firstAudio" if k == 0 and chunk else None)
            if said and not self.rules.multi_part:
                self.send({"serverContent": {"outputTranscription": {"text": said}}})
            self.chunks_in_reply += 1
            self._reply_faults()
            sent += len(chunk) / 2 / tts.OUTPUT_RATE
        self.convo.history.append({"role": "model", "text": text})
        self.send({"serverContent": {"generationComplete": True}}, tag="generationComplete")
        audio_prompt = int(prompt_seconds * TOKENS_PER_SECOND) + prompt_words
        frame_tokens, self.frame_tokens = self.frame_tokens, 0
        prompt = audio_prompt + frame_tokens
        response = int(sent * TOKENS_PER_SECOND)
        details = [{"modality": "AUDIO", "tokenCount": audio_prompt}]
        if frame_tokens:
            details.append({"modality": "VIDEO", "tokenCount": frame_tokens})
        self.send(
            {
                "serverContent": {"turnComplete": True},
                "usageMetadata": {
                    "promptTokenCount": prompt,
                    "responseTokenCount": response,
                    "totalTokenCount": prompt + response,
                    "promptTokensDetails": details,
                    "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": response}],
                },
            },
            tag="turnComplete",
        )


def _fill(template: str, results: list[Json]) -> str:
    """Put the tool results into ``{result}`` (a "result" field when present, else the JSON)."""
    shown = []
    for r in results:
        v = r.get("result", r.get("output", r)) if isinstance(r, dict) else r
        shown.append(v if isinstance(v, str) else json.dumps(v))
    return template.replace("{result}", ", ".join(shown))


def _constrain(setup: Json, constraint: Json) -> Json:
    """The token's setup wins over the client's for every field it sets (one level deep)."""
    out = copy.deepcopy(setup)
    for k, v in constraint.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **copy.deepcopy(v)}
        else:
            out[k] = copy.deepcopy(v)
    return out


def fault(kind: FaultKind, **kw: Any) -> Fault:
    """Shorthand used by the CLI."""
    return replace(Fault(kind), **kw)


Callback = Callable[[], None]
