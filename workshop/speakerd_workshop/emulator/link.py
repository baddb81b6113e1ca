"""One WebSocket connection's transport: the sans-I/O protocol, the outgoing queue and writer,
frame reassembly, closing and aborting. The Live session logic is layered on top of it
(:mod:`faults`, :mod:`engine`, :mod:`connection`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any

from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol

from speakerd_workshop.emulator import models, wire
from speakerd_workshop.emulator.records import (
    DEFAULT_REASONS,
    Behaviour,
    Closing,
    ConnectionInfo,
    Conversation,
    Pending,
)
from speakerd_workshop.emulator.vad import Vad
from speakerd_workshop.emulator.wire import Json, WireError

if TYPE_CHECKING:
    from speakerd_workshop.emulator.faults import Fault
    from speakerd_workshop.emulator.server import Emulator

log = logging.getLogger("speakerd_workshop.emulator")

CLOSE_WAIT_SECONDS = 3.0


class Link:
    """The transport half of a connection; subclasses handle the messages (:meth:`_message`)."""

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
        self.convo = Conversation()
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
        self.pending: dict[str, Pending] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.chunks_in_reply = 0
        self.closing = False
        self.fragments: list[bytes] = []
        self.frames_total = 0  # image frames received on this connection
        self.frames_mark = 0  # frames already told of by a {frames} placeholder
        self.frame_tokens = 0  # VIDEO prompt tokens not yet reported in usageMetadata
        self.media_changed = asyncio.Event()  # audio or video seen for the first time
        self.behaviour = Behaviour()
        # The protocol answers pings by itself; a slow_pong fault holds the answer back.
        self._send_frame = protocol.send_frame
        protocol.send_frame = self._outgoing_frame  # type: ignore[method-assign]

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
            if isinstance(exc, Closing):
                self.close(exc.code, exc.reason)
            elif not isinstance(exc, ConnectionError):
                log.error("emulator task failed: %r", exc, exc_info=exc)
                self.close(1011)

    def _outgoing_frame(self, frame: Frame) -> None:
        if not self.delayed_pong(frame):
            self._send_frame(frame)

    def delayed_pong(self, frame: Frame) -> bool:
        return False

    async def late_frame(self, frame: Frame, delay: float) -> None:
        await asyncio.sleep(delay)
        self.out.put_nowait(("frame", frame, None))

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
                log.debug("connection %d: closed %s %r by %s", self.info.id, code, reason, by)
            self.emu.cond.notify_all()

    async def _writer(self) -> None:
        while True:
            kind, payload, tag = await self.out.get()
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            if self.info.closed is not None:
                return
            if self.behaviour.silent and kind in ("msg", "raw"):
                continue
            if kind == "frame":
                self._send_frame(payload)
            elif kind == "msg":
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
            except Closing as c:
                self.close(c.code, c.reason)
            except WireError as e:
                self.close(1007, str(e))

    def _message(self, data: bytes) -> None:
        raise NotImplementedError
