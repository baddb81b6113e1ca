"""Faults and limits: the failures a test can inject (close codes, drops, stalls, bad frames,
goAway), the connection lifetime and the session-length limits production enforces.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from speakerd_workshop.emulator import video, wire
from speakerd_workshop.emulator.link import Link

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


class FaultActions(Link):
    """Acting out faults and limits on one connection."""

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


def fault(kind: FaultKind, **kw: Any) -> Fault:
    """Shorthand used by the CLI."""
    return replace(Fault(kind), **kw)
