"""Fakes at the seams the project owns (speakerd.ports): audio, wake word and Live session.

Why fakes here: the in-process daemon tests check the daemon's own rules (what it streams, plays,
flushes, shows and answers) in milliseconds. The real parts behind these seams have their own
tests, and tests/e2e runs them all together in the real process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speakerd import config
from speakerd.audio.capture import CaptureStats
from speakerd.audio.playqueue import PlayerStats
from speakerd.events import FRAME_BYTES, AudioFrame, DeviceFault, LiveEvent, WakeDetected
from speakerd.live.tools import ToolRegistry
from speakerd.ports import Backends


class FakeMic:
    def __init__(self, on_frame: Callable[[AudioFrame], None]) -> None:
        self.stats = CaptureStats()
        self.on_frame = on_frame
        self.muted = False
        self.started = self.stopped = False
        self.index = 0

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def set_muted(self, muted: bool) -> None:
        self.muted = muted

    def frame(self, loud: bool = False) -> AudioFrame:
        """Deliver one 80 ms frame, as the capture thread would (on the loop)."""
        pcm = (b"\x00\x40" if loud else b"\x00\x00") * (FRAME_BYTES // 2)
        frame = AudioFrame(pcm, self.index, asyncio.get_running_loop().time())
        self.index += 1
        self.stats.frames += 1
        self.on_frame(frame)
        return frame


class FakeSpeaker:
    def __init__(self) -> None:
        self.stats = PlayerStats()
        self.played: list[bytes] = []
        self.earcons: list[str] = []
        self.sounds: list[tuple[str, int]] = []
        self.held = False
        self.sounds_dropped = 0
        self.flushes = 0
        self.replies_ended = 0
        self._volume = 50
        self.closed = False

    @property
    def volume(self) -> int:
        return self._volume

    @volume.setter
    def volume(self, value: int) -> None:
        self._volume = value

    def start(self) -> None:
        pass

    def play(self, pcm: bytes) -> None:
        self.played.append(pcm)

    def end_of_reply(self) -> None:
        self.replies_ended += 1

    def flush(self) -> None:
        self.flushes += 1

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def play_earcon(self, name: str) -> None:
        self.earcons.append(name)

    @property
    def has_work(self) -> bool:
        return False

    def play_sound(self, name: str, volume: int, *, absolute: bool = False) -> None:
        self.sounds.append((name, volume))

    def hold(self, on: bool) -> None:
        self.held = on

    def drop_sounds(self) -> None:
        self.sounds_dropped += 1

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeAudio:
    """Hands out one FakeMic and FakeSpeaker and keeps them for the test."""

    mic: FakeMic | None = None
    speaker: FakeSpeaker = field(default_factory=FakeSpeaker)
    on_fault: Callable[[DeviceFault], None] | None = None

    def __call__(self, settings: config.AudioSettings, state_dir: Path, loop: asyncio.AbstractEventLoop,
             on_frame: Callable[[AudioFrame], None],
             on_fault: Callable[[DeviceFault], None]) -> tuple[FakeMic, FakeSpeaker]:
        self.mic = FakeMic(on_frame)
        self.on_fault = on_fault
        return self.mic, self.speaker


class FakeEngine:
    def __init__(self, settings: config.WakewordSettings, loop: asyncio.AbstractEventLoop,
                 on_wake: Callable[[WakeDetected], None]) -> None:
        self.settings = settings
        self.on_wake = on_wake
        self.frames = self.dropped = 0
        self.paused = False
        self.closed = False
        self.fed: list[int] = []

    pending = 0

    def feed(self, frame: AudioFrame) -> None:
        if not self.paused:
            self.frames += 1
            self.fed.append(frame.index)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def close(self) -> None:
        self.closed = True


class FakeSession:
    """Records what the daemon sends; ``emit`` says what the service would."""

    def __init__(self, report: Callable[[LiveEvent], None], tools: ToolRegistry) -> None:
        self.report = report
        self.tools = tools
        self.sent: list[tuple[str, Any]] = []
        self.opened = self.closed = False

    def send_audio(self, pcm: bytes) -> None:
        self.sent.append(("audio", pcm))

    def send_text(self, text: str) -> None:
        self.sent.append(("text", text))

    def send_video(self, jpeg: bytes) -> None:
        self.sent.append(("video", jpeg))

    def end_audio_stream(self) -> None:
        self.sent.append(("audio_stream_end", None))

    def activity_start(self) -> None:
        self.sent.append(("activity_start", None))

    def activity_end(self) -> None:
        self.sent.append(("activity_end", None))

    def interrupt(self) -> None:
        self.sent.append(("interrupt", None))

    def status(self) -> dict[str, object]:
        return {"connects": 1 if self.opened else 0}

    def user_turn_ended(self) -> None:
        self.sent.append(("user_turn_ended", None))

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.closed = True

    def emit(self, event: LiveEvent) -> None:
        self.report(event)

    def audio_frames(self) -> int:
        return sum(1 for kind, _ in self.sent if kind == "audio")


@dataclass
class FakeLive:
    sessions: list[FakeSession] = field(default_factory=list)

    def __call__(self, cfg: config.Config, report: Callable[[LiveEvent], None], *, tools: ToolRegistry,
                 force_compression: bool, fresh: bool = False) -> FakeSession:
        session = FakeSession(report, tools)
        self.sessions.append(session)
        return session


@dataclass
class Fakes:
    audio: FakeAudio = field(default_factory=FakeAudio)
    engines: list[FakeEngine] = field(default_factory=list)
    live: FakeLive = field(default_factory=FakeLive)

    def engine(self, settings: config.WakewordSettings, loop: asyncio.AbstractEventLoop,
               on_wake: Callable[[WakeDetected], None]) -> FakeEngine:
        engine = FakeEngine(settings, loop, on_wake)
        self.engines.append(engine)
        return engine

    def backends(self) -> Backends:
        return Backends(audio=self.audio, wakeword=self.engine, sessions=self.live)

    @property
    def mic(self) -> FakeMic:
        assert self.audio.mic is not None, "the daemon has not started"
        return self.audio.mic

    @property
    def speaker(self) -> FakeSpeaker:
        return self.audio.speaker

    @property
    def session(self) -> FakeSession:
        assert self.live.sessions, "no session was opened"
        return self.live.sessions[-1]
