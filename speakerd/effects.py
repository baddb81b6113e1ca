"""Typed effects: what the state machine tells the daemon to do.

Why one type per effect: the daemon matches them exhaustively (``assert_never``), so mypy proves
every effect the machine can return is carried out, and a field an effect does not have cannot be
read by mistake. They are frozen values: a test compares them as plain data.

``State`` and ``TimerName`` live here too, as the vocabulary both the machine and the parts that
show a state (LEDs, systemd STATUS=, speakerctl) share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

State = Literal[
    "booting", "idle", "wake", "listening", "thinking", "speaking", "muted", "offline", "error"
]
STATES: tuple[State, ...] = get_args(State)
TimerName = Literal["follow_up", "idle_timeout", "max_session"]


@dataclass(frozen=True, slots=True)
class Show:
    """Show a state: LEDs, systemd STATUS= and the log."""

    kind: ClassVar[str] = "show"
    state: State


@dataclass(frozen=True, slots=True)
class Earcon:
    kind: ClassVar[str] = "earcon"
    name: str


@dataclass(frozen=True, slots=True)
class OpenSession:
    """Open (or resume) a Live session; stream the pre-roll from ``frame_index`` on once open."""

    kind: ClassVar[str] = "open_session"
    frame_index: int | None


@dataclass(frozen=True, slots=True)
class CloseSession:
    """Close the session; ``audioStreamEnd`` was already sent and the handle is kept."""

    kind: ClassVar[str] = "close_session"


@dataclass(frozen=True, slots=True)
class Stream:
    """Send microphone frames to the session (``on``) or stop."""

    kind: ClassVar[str] = "stream"
    on: bool


@dataclass(frozen=True, slots=True)
class EndAudioStream:
    kind: ClassVar[str] = "end_audio_stream"


@dataclass(frozen=True, slots=True)
class ActivityStart:
    kind: ClassVar[str] = "activity_start"


@dataclass(frozen=True, slots=True)
class ActivityEnd:
    kind: ClassVar[str] = "activity_end"


@dataclass(frozen=True, slots=True)
class SendText:
    kind: ClassVar[str] = "send_text"
    text: str


@dataclass(frozen=True, slots=True)
class FlushPlayback:
    kind: ClassVar[str] = "flush_playback"


@dataclass(frozen=True, slots=True)
class Play:
    kind: ClassVar[str] = "play"
    pcm: bytes


@dataclass(frozen=True, slots=True)
class WakeListening:
    """Run (``on``) or pause the wake-word detector; the stop word runs while it is paused."""

    kind: ClassVar[str] = "wake_listening"
    on: bool


@dataclass(frozen=True, slots=True)
class Mic:
    """Open (``on``) or close the capture device (closed while muted)."""

    kind: ClassVar[str] = "mic"
    on: bool


@dataclass(frozen=True, slots=True)
class StartTimer:
    kind: ClassVar[str] = "start_timer"
    timer: TimerName
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    kind: ClassVar[str] = "cancel_timer"
    timer: TimerName


@dataclass(frozen=True, slots=True)
class Log:
    kind: ClassVar[str] = "log"
    text: str


Effect = (
    Show
    | Earcon
    | OpenSession
    | CloseSession
    | Stream
    | EndAudioStream
    | ActivityStart
    | ActivityEnd
    | SendText
    | FlushPlayback
    | Play
    | WakeListening
    | Mic
    | StartTimer
    | CancelTimer
    | Log
)
