"""Typed effects: what the state machine tells the daemon to do.

Why one type per effect: the daemon matches them exhaustively (``assert_never``), so mypy proves
every effect the machine can return is carried out, and a field an effect does not have cannot be
read by mistake. They are frozen values: a test compares them as plain data.

``State`` and ``TimerName`` live here too, as the vocabulary both the machine and the parts that
show a state (LEDs, systemd STATUS=, speakerctl) share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

State = Literal[
    "booting", "idle", "wake", "listening", "thinking", "speaking", "muted", "offline", "error", "alarm"
]
STATES: tuple[State, ...] = get_args(State)
TimerName = Literal["follow_up", "idle_timeout", "max_session", "error_shown"]


class _Effect:
    """``kind`` is the effect's name in logs: ``FlushPlayback`` is ``flush_playback``."""

    __slots__ = ()

    @property
    def kind(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()


@dataclass(frozen=True, slots=True)
class Show(_Effect):
    """Show a state: LEDs, systemd STATUS= and the log."""

    state: State


@dataclass(frozen=True, slots=True)
class Earcon(_Effect):
    """Play a short sound by name (wake, end, error, mute, ...)."""

    name: str


@dataclass(frozen=True, slots=True)
class OpenSession(_Effect):
    """Open (or resume) a Live session; stream the pre-roll from ``frame_index`` on once open.
    ``fresh``: a session that neither resumes nor replaces the kept conversation (announcements)."""

    frame_index: int | None
    fresh: bool = False


@dataclass(frozen=True, slots=True)
class CloseSession(_Effect):
    """Close the session; ``audioStreamEnd`` was already sent and the handle is kept."""


@dataclass(frozen=True, slots=True)
class Stream(_Effect):
    """Send microphone frames to the session (``on``) or stop."""

    on: bool


@dataclass(frozen=True, slots=True)
class EndAudioStream(_Effect):
    """The microphone pauses: the service should answer what it has (``audioStreamEnd``)."""


@dataclass(frozen=True, slots=True)
class ActivityStart(_Effect):
    """Push-to-talk: the person starts speaking (manual activity detection)."""


@dataclass(frozen=True, slots=True)
class ActivityEnd(_Effect):
    """Push-to-talk: the person stopped speaking."""


@dataclass(frozen=True, slots=True)
class SendText(_Effect):
    """A typed turn (``speakerctl say``)."""

    text: str


@dataclass(frozen=True, slots=True)
class FlushPlayback(_Effect):
    """Silence the speaker now: an interruption."""


@dataclass(frozen=True, slots=True)
class Play(_Effect):
    """Reply audio for the speaker: 24 kHz s16le mono."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class WakeListening(_Effect):
    """Run (``on``) or pause the wake-word detector; the stop word runs while it is paused."""

    on: bool


@dataclass(frozen=True, slots=True)
class Mic(_Effect):
    """Open (``on``) or close the capture device (closed while muted)."""

    on: bool


@dataclass(frozen=True, slots=True)
class StartTimer(_Effect):
    """(Re)arm a conversation timer; it fires as ``TimerFired``."""

    timer: TimerName
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer(_Effect):
    """Disarm a conversation timer if it runs."""

    timer: TimerName


@dataclass(frozen=True, slots=True)
class Log(_Effect):
    """A line for the journal about a decision the machine took."""

    text: str


@dataclass(frozen=True, slots=True)
class HoldPlayback(_Effect):
    """Hold reply audio where it is (``on``) or let it go on: an alarm rings over a paused reply."""

    on: bool


@dataclass(frozen=True, slots=True)
class StopReply(_Effect):
    """The person stopped the reply: tell the service to stop generating it (where it can)."""


@dataclass(frozen=True, slots=True)
class DismissAlarm(_Effect):
    """Stop the ringing alarm; what it was for is said next."""


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
    | HoldPlayback
    | StopReply
    | DismissAlarm
)
