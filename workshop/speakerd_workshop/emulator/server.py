"""The emulated Live API service's front: TLS, HTTP and WebSocket acceptance, the record of what
happened, resumption handles; sessions live in :mod:`connection`, tokens in :mod:`tokens`.

Why sans-I/O rather than ``websockets.serve``: the same TLS port must also answer the SDK's
``POST /v1alpha/auth_tokens``, and faults need frame-level control (drop TCP, bad frames).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import re
import secrets
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from websockets.http11 import Request
from websockets.server import ServerProtocol

from speakerd_workshop.emulator import redact, video, wire
from speakerd_workshop.emulator.certs import CertFiles, ensure_certs
from speakerd_workshop.emulator.connection import Connection
from speakerd_workshop.emulator.faults import (
    AUDIO_LIMIT_SECONDS,
    AUDIO_VIDEO_LIMIT_SECONDS,
    GO_AWAY_BEFORE_SECONDS,
    LIFETIME_SECONDS,
    Fault,
    FaultKind,
    RawFrame,
    fault,
)
from speakerd_workshop.emulator.link import Link
from speakerd_workshop.emulator.records import (
    Closing,
    ConnectionInfo,
    Conversation,
    Handle,
    Received,
    ServerEvent,
)
from speakerd_workshop.emulator.scenario import Scenario
from speakerd_workshop.emulator.tokens import IssuedToken, TokenStore
from speakerd_workshop.emulator.vad import VAD_KINDS
from speakerd_workshop.emulator.wire import WireError

log = logging.getLogger("speakerd_workshop.emulator")

PATH_RE = re.compile(
    r"^/+ws/google\.ai\.generativelanguage\.(v1|v1beta|v1alpha)\.GenerativeService\."
    r"(BidiGenerateContent|BidiGenerateContentConstrained)$"
)

__all__ = [
    "ConnectionInfo",
    "Emulator",
    "Fault",
    "FaultKind",
    "IssuedToken",
    "RawFrame",
    "Received",
    "ServerEvent",
    "fault",
]


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
        connection_lifetime_seconds: float | None = LIFETIME_SECONDS,
        go_away_before_seconds: float = GO_AWAY_BEFORE_SECONDS,
        pace: float = 1.0,
        reply_delay_seconds: float = 0.0,
        audio_limit_seconds: float | None = AUDIO_LIMIT_SECONDS,
        audio_video_limit_seconds: float | None = AUDIO_VIDEO_LIMIT_SECONDS,
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
        self.audio_limit_seconds = audio_limit_seconds
        self.audio_video_limit_seconds = audio_video_limit_seconds
        self.cond = threading.Condition(threading.RLock())
        self._received: list[Received] = []
        self._connections: list[ConnectionInfo] = []
        self._events: list[ServerEvent] = []
        self.token_store = TokenStore(self.cond)
        self._handles: dict[str, Handle] = {}
        self._live: dict[int, Connection] = {}
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
        redact.protect(self.api_key)
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
        return self.token_store.tokens

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

    def session_open_elsewhere(self, conn: Connection) -> bool:
        """Another connection of ``conn``'s session (same start, carried over resumption) is open."""
        return any(c is not conn and c.info.closed is None and c.convo.started == conn.convo.started
                   for c in self._live.values())

    def take_next_faults(self) -> list[Fault]:
        faults, self._next_faults = self._next_faults, []
        return faults

    # ---- resumption handles ----------------------------------------------------------------

    def new_handle(self, conn: Link) -> str:
        handle = "emu-" + secrets.token_urlsafe(18)
        assert conn.info.model is not None
        self._handles[handle] = Handle(
            copy.deepcopy(conn.convo), conn.info.model, conn.info.id, time.monotonic()
        )
        return handle

    def resume(self, handle: str, model: str) -> Conversation:
        rec = self._handles.get(handle)
        if rec is None:
            raise Closing(1007, "Session resumption failed: unknown handle.")
        with self.cond:
            origin = self._connections[rec.connection - 1]
        ended = origin.closed
        if ended is not None and time.monotonic() - ended > self.handle_validity_seconds:
            raise Closing(1007, "Session resumption failed: the handle has expired.")
        if rec.model != model:
            raise Closing(1007, "Session resumption failed: the model cannot change when resuming.")
        return copy.deepcopy(rec.conversation)

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
        status, payload = self.token_store.http_response(self.api_key, method, target, headers, body)
        log.debug("%s %s: %d %s", method, target, status, payload.get("name") or payload.get("error", ""))
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
        path, query = wire.split_target(request.path if request else "/")
        m = PATH_RE.match(path)
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
        hdrs = {k.lower(): v for k, v in request.headers.raw_items()}
        auth, credential = _credential(hdrs, query, constrained=m.group(2).endswith("Constrained"))
        with self.cond:
            info = ConnectionInfo(
                id=len(self._connections) + 1,
                path=path,
                api_version=m.group(1),
                method=m.group(2),
                auth=auth,
                credential=credential,
                headers=hdrs,
                opened=time.monotonic(),
            )
            self._connections.append(info)
            self.cond.notify_all()
        log.debug("connection %d: GET %s (auth %s)", info.id, request.path, auth)
        conn = Connection(self, info, protocol, reader, writer)
        self._live[info.id] = conn
        try:
            await conn.run()
        finally:
            del self._live[info.id]
            self.changed()


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
