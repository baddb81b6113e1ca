"""Typed events: what the parts of speakerd tell the daemon's event loop.

Why one module: every producer (capture thread, wake-word thread, gpiozero callbacks, the Live
receive task, the control socket) hands the loop one of these, and the pure state machine in
``state.py`` consumes them. One vocabulary, one place. They are frozen dataclasses: cheap, typed,
and safe to pass between threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from speakerd.effects import TimerName

# Audio -------------------------------------------------------------------------------------------

SAMPLE_RATE_IN = 16_000
SAMPLE_RATE_OUT = 24_000
FRAME_SAMPLES = 1280  # 80 ms at 16 kHz: one openWakeWord step
FRAME_BYTES = FRAME_SAMPLES * 2


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """80 ms of 16 kHz s16le mono microphone audio. ``index`` counts frames since capture began."""

    pcm: bytes
    index: int
    monotonic: float  # time.monotonic() when the frame was complete
    # The microphone after echo cancellation but before the gate (None: the same as ``pcm``). While
    # the speaker plays, half duplex sends the service zeros, but the stop word must still be heard.
    ungated: bytes | None = None


@dataclass(frozen=True, slots=True)
class WakeDetected:
    """A wake word: which model, its score, and the index of the frame in which it ended."""

    model: str
    score: float
    frame_index: int


@dataclass(frozen=True, slots=True)
class DeviceFault:
    """An audio device failed to open or vanished; ``recovered`` when it is back."""

    kind: Literal["input", "output"]
    message: str
    recovered: bool = False


# GPIO and control --------------------------------------------------------------------------------

Gesture = Literal["short", "double", "long", "ptt_down", "ptt_up"]


@dataclass(frozen=True, slots=True)
class ButtonEvent:
    gesture: Gesture
    monotonic: float


# The daemon's own events: what the user and the loop itself decide --------------------------------

Action = Literal[
    "interrupt", "wake", "end", "mute", "unmute", "mute_toggle", "ptt_start", "ptt_end", "stop"
]


@dataclass(frozen=True, slots=True)
class Started:
    """Capture and the wake-word detector are running."""


@dataclass(frozen=True, slots=True)
class UserAction:
    """A button gesture or a control command, already mapped to what it means."""

    action: Action
    frame_index: int | None = None  # for "wake": stream from this microphone frame on


@dataclass(frozen=True, slots=True)
class SayText:
    text: str


@dataclass(frozen=True, slots=True)
class UserSpeech:
    """Local energy detector: the person is talking (keeps the follow-up window open)."""


@dataclass(frozen=True, slots=True)
class UserPaused:
    """Local energy detector: the person spoke and has been quiet since (ends a push-to-talk voice turn)."""


@dataclass(frozen=True, slots=True)
class PlaybackDrained:
    """Everything queued for the speaker has been played."""


@dataclass(frozen=True, slots=True)
class TimerFired:
    name: TimerName


@dataclass(frozen=True, slots=True)
class Announce:
    """Say ``prompt``'s text through a short session of its own (no microphone, nothing kept)."""

    prompt: str


@dataclass(frozen=True, slots=True)
class AlarmRinging:
    """A timer, alarm or reminder started (``on``) or stopped ringing (dismissed or timed out)."""

    on: bool


# Live session -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyAudio:
    """24 kHz s16le mono audio from the model."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class Transcript:
    role: Literal["user", "model"]
    text: str
    finished: bool = False


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The server heard the user over the reply: flush playback now."""


@dataclass(frozen=True, slots=True)
class GenerationComplete:
    pass


@dataclass(frozen=True, slots=True)
class TurnComplete:
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool call finished and its answer was queued for the model."""

    id: str
    name: str
    response: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCancelled:
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GoAway:
    time_left_seconds: float


SessionPhase = Literal["connecting", "ready", "reconnecting", "closed", "failed"]


@dataclass(frozen=True, slots=True)
class SessionState:
    """The Live connection changed. ``fatal`` means retrying will not help (1008: key or model)."""

    phase: SessionPhase
    detail: str = ""
    fatal: bool = False
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class Sources:
    """The web pages an answer was grounded on (Google Search): ``(uri, title)`` pairs."""

    pages: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class TurnRejected:
    """The model ended a turn without a reply (``turnCompleteReason``, e.g. RESPONSE_REJECTED).

    A TurnComplete follows. ``in_a_row`` counts such turns; ``fresh_session``: this one was the
    last straw and the session is starting over without its handle.
    """

    reason: str
    in_a_row: int
    fresh_session: bool = False


@dataclass(frozen=True, slots=True)
class ResponseStalled:
    """No reply ``waited_seconds`` after the user's turn ended. ``retrying``: the session resumes
    and asks again (a warning); otherwise it gave up on this turn (show the failure)."""

    waited_seconds: float
    retrying: bool


LiveEvent = (
    ReplyAudio
    | Transcript
    | Interrupted
    | GenerationComplete
    | TurnComplete
    | ToolCall
    | ToolResult
    | ToolCancelled
    | GoAway
    | SessionState
    | TurnRejected
    | ResponseStalled
    | Sources
)
