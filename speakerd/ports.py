"""The seams where another implementation plugs in: audio, wake word, Live session, tools.

Why Protocols in one place: the daemon talks to its parts only through these, so a new audio
backend (PipeWire, a network stream), another wake-word engine, or a fake for the in-process
tests plugs in without touching the daemon. ``Backends`` names the ones in use; the defaults
are PyAudio on ALSA, openWakeWord and the google-genai Live session. docs/extending.md shows how.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from speakerd.audio.capture import CaptureStats
    from speakerd.audio.playqueue import PlayerStats
    from speakerd.config import AudioSettings, Config, WakewordSettings
    from speakerd.events import AudioFrame, DeviceFault, LiveEvent, WakeDetected
    from speakerd.live.tools import Handler, ToolRegistry, ToolSpec


# Audio -------------------------------------------------------------------------------------------


class Microphone(Protocol):
    """Delivers 80 ms ``AudioFrame``s of 16 kHz mono on the loop; reports faults, never raises."""

    stats: CaptureStats

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def set_muted(self, muted: bool) -> None: ...


class Speaker(Protocol):
    """Plays 24 kHz mono replies and earcons; ``flush`` silences at once, ``drain`` waits."""

    stats: PlayerStats

    @property
    def has_work(self) -> bool: ...  # something playable waits

    @property
    def volume(self) -> int: ...

    @volume.setter
    def volume(self, value: int) -> None: ...

    def start(self) -> None: ...

    def play(self, pcm: bytes) -> None: ...

    def end_of_reply(self) -> None: ...

    def flush(self) -> None: ...

    async def drain(self) -> None: ...

    def play_earcon(self, name: str) -> None: ...

    def play_sound(self, name: str, volume: int, *, absolute: bool = False) -> None: ...

    def hold(self, on: bool) -> None: ...

    def drop_sounds(self) -> None: ...

    def close(self) -> None: ...


AudioBackend = Callable[
    ["AudioSettings", Path, asyncio.AbstractEventLoop, Callable[["AudioFrame"], None], Callable[["DeviceFault"], None]],
    tuple[Microphone, Speaker],
]
"""Opens the microphone and the speaker together (they may share state: echo cancellation):
``(settings, state_dir, loop, on_frame, on_fault) -> (microphone, speaker)``."""


# Wake word ---------------------------------------------------------------------------------------


class WakeWordEngine(Protocol):
    """Takes microphone frames on the loop, decides on its own thread, calls back on the loop."""

    frames: int  # frames scored so far
    dropped: int  # frames dropped because scoring fell behind

    @property
    def pending(self) -> int: ...  # frames waiting to be scored

    def feed(self, frame: AudioFrame) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def close(self) -> None: ...


WakeWordFactory = Callable[
    ["WakewordSettings", asyncio.AbstractEventLoop, Callable[["WakeDetected"], None]], WakeWordEngine
]


# Live session ------------------------------------------------------------------------------------


class LiveSessionPort(Protocol):
    """One conversation's connection: takes input at any time (an outbox), reports events."""

    def send_audio(self, pcm: bytes) -> None: ...

    def send_text(self, text: str) -> None: ...

    def send_video(self, jpeg: bytes) -> None: ...

    def end_audio_stream(self) -> None: ...

    def activity_start(self) -> None: ...

    def activity_end(self) -> None: ...

    def interrupt(self) -> None: ...  # the person stopped the reply: stop generating it

    def status(self) -> dict[str, object]: ...  # the connection's figures for speakerctl status

    def user_turn_ended(self) -> None: ...  # the local detector heard the person stop: a reply is due

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class SessionFactory(Protocol):
    def __call__(
        self, cfg: Config, report: Callable[[LiveEvent], None], *, tools: ToolRegistry, force_compression: bool,
        fresh: bool = False,
    ) -> LiveSessionPort: ...


# Tools -------------------------------------------------------------------------------------------


class ToolProvider(Protocol):
    """Offers tools to the model: name -> (declaration, handler). Asked again for every session."""

    def tools(self) -> Mapping[str, tuple[ToolSpec, Handler]]: ...


# What the daemon runs with -----------------------------------------------------------------------


def _default_audio() -> AudioBackend:
    from speakerd.audio.backend import open_pyaudio

    return open_pyaudio


def _default_wakeword() -> WakeWordFactory:
    from speakerd.wakeword import WakeWordDetector

    return WakeWordDetector


@dataclass(frozen=True)
class Backends:
    """The implementations behind each seam. ``sessions`` None: the google-genai Live session."""

    audio: AudioBackend = field(default_factory=_default_audio)
    wakeword: WakeWordFactory = field(default_factory=_default_wakeword)
    sessions: SessionFactory | None = None
