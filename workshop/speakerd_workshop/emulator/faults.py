"""Faults and limits: the failures a test can inject (close codes, drops, stalls, bad frames,
goAway), the connection lifetime and the session-length limits production enforces.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from websockets.frames import Frame, Opcode

from speakerd_workshop.emulator import video, wire
from speakerd_workshop.emulator.link import Link

BURST_CHUNK_SECONDS = 0.85  # 24 kHz s16le: about 40 KB of audio, about 55 KB as base64 JSON
BURST_PACE = 15.0  # a 30 s reply in 2 s

FaultKind = Literal[
    "drop", "close", "stall", "malformed", "oversized", "delay", "go_away", "raw",
    # production's behaviours (reference live-service-behaviours.md), one per row:
    "slow_pong", "abort_on_input", "stall_reply", "reject", "late_turn_complete", "go_away_silent",
    "refuse_resume", "unresumable", "burst", "slow_audio",
]
# Kinds that change how the connection behaves from now on rather than acting once.
BEHAVIOURS = frozenset({
    "slow_pong", "abort_on_input", "stall_reply", "reject", "late_turn_complete", "go_away_silent",
    "unresumable", "burst", "slow_audio",
})
DEADLINE_REASON = "Deadline expired"
ABORTED_REASON = "The operation was aborted."
REJECTED = "RESPONSE_REJECTED"
RawFrame = str | bytes  # str: a text frame (UTF-8, lone surrogates kept as-is); bytes: a binary frame

# Production's limits (reference live-protocol.md §4); each is shortened by a flag for tests.
LIFETIME_SECONDS = 600.0  # a connection lasts about 10 minutes...
GO_AWAY_BEFORE_SECONDS = 60.0  # ...and goAway.timeLeft is about 60 s before the close
AUDIO_LIMIT_SECONDS = 900.0  # a session without contextWindowCompression: audio-only 15 minutes
AUDIO_VIDEO_LIMIT_SECONDS = video.AUDIO_VIDEO_LIMIT_SECONDS  # audio+video 2 minutes


@dataclass(frozen=True)
class Fault:
    """A failure to act out. ``target`` "next": the next connection; "current": the newest open one.

    - close/drop/malformed/oversized: ``during`` "setup" (instead of setupComplete), "reply" (after
      ``after_chunks`` audio messages of the next reply) or "now" (current connection at once).
    - stall: hold setupComplete back ``seconds`` (0: forever). delay: hold every message ``seconds``.
    - go_away: send goAway{timeLeft=``seconds``, or the emulator's go_away_before_seconds when 0}
      (at once or right after setupComplete), then close 1000 when the time is up.
    - raw: send ``frames`` exactly as given (for fuzzing the client), "setup" before setupComplete,
      then go on normally; with ``then_close`` close with ``code``/``reason`` right after them.

    Production's behaviours, for the rest of the connection ("now"/"current", or from setupComplete
    of the next one); ``count`` turns where it says so:
    - slow_pong: answer WebSocket pings after ``seconds`` (the service's pongs take 8-30 s).
    - abort_on_input: microphone audio while a BLOCKING call is unanswered closes 1008 "The
      operation was aborted.".
    - stall_reply: the next ``count`` user turns are transcribed, then nothing (``seconds`` > 0:
      the reply comes after that long), socket open.
    - reject: the next ``count`` turns end with turnCompleteReason RESPONSE_REJECTED and no audio.
    - late_turn_complete: turnComplete ``seconds`` after generationComplete.
    - go_away_silent: goAway{timeLeft}, then nothing at all until a 1011 "Deadline expired".
    - refuse_resume (next connection): a resume while a socket of the same session is open is
      refused with 1011.
    - unresumable: every sessionResumptionUpdate says resumable false with no handle.
    - burst: reply audio in messages of ``seconds`` of audio (0: 0.85 s, about 40 KB) sent as fast
      as the socket takes them.
    - slow_audio: reply audio at ``seconds`` times real time (e.g. 0.8).
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
    count: int = 1


class FaultActions(Link):
    """Acting out faults and limits on one connection."""

    def add_fault(self, fault: Fault) -> None:
        if fault.kind in BEHAVIOURS:
            self.behave(fault)
        elif fault.kind == "delay":
            self.delay = fault.seconds
        elif fault.kind == "go_away" and fault.during in ("now", "setup"):
            self.spawn(self._go_away(fault.seconds or self.emu.go_away_before_seconds))
        elif fault.during == "now":
            self._act(fault)
        else:
            self.faults.append(fault)

    def behave(self, fault: Fault) -> None:
        """Switch on one of production's behaviours for the rest of this connection."""
        self.emu.event(self.info.id, "fault", fault=fault.kind)
        b = self.behaviour
        if fault.kind == "slow_pong":
            b.pong_delay = fault.seconds
        elif fault.kind == "abort_on_input":
            b.abort_on_input = True
        elif fault.kind == "stall_reply":
            b.stall_replies += fault.count
            b.stall_seconds = fault.seconds
        elif fault.kind == "reject":
            b.reject_turns += fault.count
        elif fault.kind == "late_turn_complete":
            b.turn_complete_delay = fault.seconds
        elif fault.kind == "go_away_silent":
            self.spawn(self._go_away_silent(self.emu.go_away_before_seconds))
        elif fault.kind == "unresumable":
            b.unresumable = True
        elif fault.kind == "burst":
            b.chunk_seconds = fault.seconds or BURST_CHUNK_SECONDS
            b.pace = BURST_PACE
        elif fault.kind == "slow_audio":
            b.pace = fault.seconds or 0.8

    def delayed_pong(self, frame: Frame) -> bool:
        """Hold a pong back ``pong_delay`` seconds; True if it was taken care of."""
        delay = self.behaviour.pong_delay
        if frame.opcode is not Opcode.PONG or delay <= 0:
            return False
        self.emu.event(self.info.id, "slowPong", seconds=delay)
        self.spawn(self.late_frame(frame, delay))
        return True

    async def _go_away_silent(self, time_left: float) -> None:
        self.send({"goAway": {"timeLeft": wire.duration(time_left)}}, tag="goAway")
        # Reads on, sends nothing after the goAway: the client's timer must drive the move.
        self.out.put_nowait(("call", lambda: setattr(self.behaviour, "silent", True), None))
        await asyncio.sleep(time_left)
        self.behaviour.silent = False
        self.close(1011, DEADLINE_REASON)

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
            self.spawn(self._go_away(fault.seconds or self.emu.go_away_before_seconds))
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
        """Note audio or video in the session: audio+video has the shorter session limit."""
        seen = (self.convo.had_audio, self.convo.had_video)
        if kind == "audio":
            self.convo.had_audio = True
        else:
            self.convo.had_video = True
        if seen != (self.convo.had_audio, self.convo.had_video):
            self.media_changed.set()

    def session_limit(self) -> float | None:
        """This session's length limit now, or None (compression on, or no limit configured)."""
        if "contextWindowCompression" in self.setup:
            return None
        if self.convo.had_audio and self.convo.had_video:
            return self.emu.audio_video_limit_seconds
        return self.emu.audio_limit_seconds

    async def _session_limit(self) -> None:
        """End the session when its length limit is reached; the clock survives resumption."""
        while True:
            self.media_changed.clear()
            limit = self.session_limit()
            if limit is None:
                await self.media_changed.wait()
                continue
            left = self.convo.started + limit - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.media_changed.wait(), left)
        media = "audio+video" if self.convo.had_audio and self.convo.had_video else "audio"
        self.emu.event(self.info.id, "sessionLimit", media=media, seconds=limit)
        self.close(1011, video.LIMIT_REASON)


def fault(kind: FaultKind, **kw: Any) -> Fault:
    """Shorthand used by the CLI."""
    return replace(Fault(kind), **kw)
