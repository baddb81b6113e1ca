"""The conversation state machine: events in, effects out, no I/O.

Why pure: every rule about when the microphone streams, when the speaker is flushed and when a
session ends lives here, where a test can drive it with plain values and a fake clock. The daemon
performs the effects (it owns the devices and the Live session) and feeds results back as events.

States (effects.STATES): booting, idle, wake (acknowledged, connecting), listening, thinking,
speaking, muted, offline (connection lost mid-conversation, retrying), error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import assert_never

from speakerd.effects import (
    CancelTimer,
    CloseSession,
    Earcon,
    Effect,
    EndAudioStream,
    FlushPlayback,
    Log,
    OpenSession,
    Play,
    SendText,
    Show,
    StartTimer,
    State,
    Stream,
    TimerName,
    WakeListening,
)
from speakerd.events import (
    AlarmRinging,
    Announce,
    DeviceFault,
    GenerationComplete,
    GoAway,
    Interrupted,
    PlaybackDrained,
    ReplyAudio,
    ResponseStalled,
    SayText,
    SessionState,
    Sources,
    Started,
    TimerFired,
    ToolCall,
    ToolCancelled,
    ToolResult,
    Transcript,
    TurnComplete,
    TurnRejected,
    UserAction,
    UserPaused,
    UserSpeech,
    WakeDetected,
)
from speakerd.state.actions import UserActions
from speakerd.state.alarm import AlarmRules
from speakerd.state.ptt import PushToTalkRules
from speakerd.state.service import ServiceRules

Event = (
    Started
    | AlarmRinging
    | Announce
    | UserAction
    | SayText
    | UserSpeech
    | UserPaused
    | PlaybackDrained
    | TimerFired
    | WakeDetected
    | DeviceFault
    | SessionState
    | ReplyAudio
    | Transcript
    | Interrupted
    | GenerationComplete
    | GoAway
    | TurnComplete
    | ToolCall
    | ToolResult
    | ToolCancelled
    | TurnRejected
    | ResponseStalled
    | Sources
)


@dataclass(frozen=True, slots=True)
class Timings:
    follow_up_seconds: float = 8.0
    idle_timeout_seconds: float = 15.0
    max_session_seconds: float = 600.0
    push_to_talk: bool = False


@dataclass
class Machine(UserActions, ServiceRules, AlarmRules, PushToTalkRules):
    """The conversation's rules. ``handle`` returns the effects of one event, in order."""

    timings: Timings = field(default_factory=Timings)
    state: State = "booting"
    in_conversation: bool = False
    muted: bool = False
    dropping_reply: bool = False  # a button interrupt: ignore the rest of this reply
    reply_done: bool = False  # turnComplete seen, waiting for the speaker to drain
    end_after_reply: bool = False  # the model called end_conversation
    heard_user: bool = False  # any speech since the conversation started
    tools_running: set[str] = field(default_factory=set)
    error: str | None = None
    mic_failed: bool = False
    announcing: bool = False  # the conversation is an announcement (no microphone)
    _before_offline: State = "listening"

    # Dispatch -------------------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Effect]:
        if self._dismisses(event):
            return self._dismiss()
        match event:
            case AlarmRinging(on=on):
                return self._alarm_ringing(on)
            case Announce(prompt=prompt):
                return self._announce(prompt)
            case Started():
                return self._to("muted" if self.muted else "idle")
            case WakeDetected(frame_index=index):
                return self._wake(index)
            case UserAction(action=action, frame_index=index):
                return self._action(action, index)
            case SayText(text=text):
                fx = [] if self.in_conversation else self._wake(None, earcon=False, voice=False)
                if not self.in_conversation and not fx:
                    return [Log("say ignored: microphone muted or in error")]
                return [*fx, SendText(text), *self._to("thinking")]
            case UserSpeech():
                return self._user_speech()
            case UserPaused():
                return self._user_paused()
            case Transcript(role="user"):
                return self._user_speech()
            case Transcript():
                return []
            case ReplyAudio(pcm=pcm):
                return self._reply_audio(pcm)
            case Interrupted():
                if not self.in_conversation:
                    return []
                self.dropping_reply = False
                self.reply_done = False
                return [FlushPlayback(), *self._to("listening")]
            case GenerationComplete():
                return self._generation_complete()
            case GoAway() | Sources():
                return []  # the session moves by itself; sources are logged and shown by the daemon
            case TurnRejected(reason=reason, fresh_session=fresh):
                return self._rejected(reason, fresh)
            case ResponseStalled(retrying=retrying, waited_seconds=waited):
                return self._stalled(waited, retrying)
            case TurnComplete():
                return self._turn_complete()
            case PlaybackDrained():
                return self._drained()
            case ToolCall(id=tool_id):
                if not self.in_conversation:
                    return []
                self.tools_running.add(tool_id)
                return self._to("thinking") if self.state in ("listening", "wake") else []
            case ToolResult(id=tool_id, name=name, response=response):
                self.tools_running.discard(tool_id)
                ending = name in ("end_conversation", "forget_conversation")
                if ending and "error" not in response and self.in_conversation:
                    self.end_after_reply = True
                    if self.state != "speaking":
                        # The model may say goodbye first; if it does not, end after a beat.
                        return [StartTimer("follow_up", 2.0)]
                return []
            case ToolCancelled(ids=ids):
                self.tools_running.difference_update(ids)
                return []
            case TimerFired(name=name):
                return self._timer(name)
            case SessionState():
                return self._session(event)
            case DeviceFault():
                return self._device(event)
            case _:
                assert_never(event)

    # Transitions ----------------------------------------------------------------------------------

    def _to(self, state: State) -> list[Effect]:
        if state == self.state:
            return []
        self.state = state
        return [] if self.alarm else [Show(state)]  # the alarm stays shown; its end shows this

    def _push_to_talk(self) -> bool:
        return self.timings.push_to_talk

    def _follow_up_seconds(self) -> float:
        return self.timings.follow_up_seconds

    def _wake(self, frame_index: int | None, *, earcon: bool = True, voice: bool = True) -> list[Effect]:
        if self.in_conversation or self.muted or self.state == "booting" or self.mic_failed:
            return []
        self.error = None  # a new attempt clears an earlier session error
        self.in_conversation = True
        self.heard_user = False
        self.dropping_reply = self.reply_done = self.end_after_reply = False
        self.tools_running.clear()
        fx: list[Effect] = [*self._to("wake")]
        if earcon:
            fx.append(Earcon("wake"))
        fx += [
            WakeListening(False),
            OpenSession(frame_index),
            StartTimer("max_session", self.timings.max_session_seconds),
        ]
        self._turn_markers_reset()
        if self.timings.push_to_talk:
            fx += self._open_voice_turn() if voice else []
        else:
            fx += [
                Stream(True),
                StartTimer("idle_timeout", self.timings.idle_timeout_seconds),
            ]
        return fx

    def _announce(self, prompt: str) -> list[Effect]:
        """A session of its own that says a text: no microphone, the wake word stays on, then idle."""
        if self.in_conversation or self.state == "booting":  # no microphone needed: muted is fine
            return [Log("announcement not started: the speaker is busy")]
        self.error = None
        self.in_conversation = self.announcing = True
        self.heard_user = self.dropping_reply = self.reply_done = False
        self.end_after_reply = True
        self.tools_running.clear()
        return [
            Earcon("chime"),
            OpenSession(None, fresh=True),
            StartTimer("max_session", self.timings.max_session_seconds),
            SendText(prompt),
            *self._to("thinking"),
        ]

    def _end(self, reason: str, *, earcon: str | None = "end") -> list[Effect]:
        """Close the conversation: audioStreamEnd, stop streaming, close (handle kept), listen."""
        if not self.in_conversation:
            return []
        if self.announcing:
            self.announcing = False
            earcon = None if earcon == "end" else earcon
        self.in_conversation = False
        self._turn_markers_reset()
        self.dropping_reply = self.reply_done = self.end_after_reply = False
        self.tools_running.clear()
        fx: list[Effect] = [
            Log(f"conversation ended: {reason}"),
            Stream(False),
            EndAudioStream(),
            CloseSession(),
            *(CancelTimer(t) for t in ("follow_up", "idle_timeout", "max_session")),
        ]
        if earcon:
            fx.append(Earcon(earcon))
        if not self.muted:
            fx.append(WakeListening(True))
        fx += self._to("muted" if self.muted else "error" if self.mic_failed else "idle")
        return fx

    def _user_speech(self) -> list[Effect]:
        if not self.in_conversation:
            return []
        fx: list[Effect] = []
        if not self.heard_user:
            self.heard_user = True
            fx.append(CancelTimer("idle_timeout"))
        if self.state == "speaking":
            return fx  # our own reply or barge-in: the server decides
        # The window stays open while the person talks, and ends if no answer ever comes.
        seconds = max(self.timings.follow_up_seconds, self.timings.idle_timeout_seconds)
        fx.append(StartTimer("follow_up", seconds))
        return fx

    def _reply_audio(self, pcm: bytes) -> list[Effect]:
        if not self.in_conversation or self.dropping_reply:
            return []
        self.reply_done = False
        return [
            CancelTimer("follow_up"),
            CancelTimer("idle_timeout"),
            *self._to("speaking"),
            Play(pcm),
        ]

    def _turn_complete(self) -> list[Effect]:
        if not self.in_conversation:
            return []
        if self.dropping_reply:
            self.dropping_reply = False
            return []
        if self.state == "speaking":
            self.reply_done = True  # wait for the speaker to finish before the window opens
            return []
        if self.end_after_reply:
            return self._end(self._why_done())
        if self.state == "thinking" and self.tools_running:
            return []
        return [*self._to("listening"), *self._follow_up()]

    def _drained(self) -> list[Effect]:
        if not (self.in_conversation and self.reply_done):
            return []
        self.reply_done = False
        if self.end_after_reply:
            return self._end(self._why_done())
        return [*self._to("listening"), *self._follow_up()]

    def _why_done(self) -> str:
        return "the announcement was said" if self.announcing else "the model ended the conversation"

    def _follow_up(self) -> list[Effect]:
        return [StartTimer("follow_up", self.timings.follow_up_seconds), *self._open_voice_turn()]

    def _timer(self, name: TimerName) -> list[Effect]:
        if name == "error_shown":  # a passing failure was shown long enough: back to listening for a wake
            if self.state == "error" and not self.in_conversation and not self.mic_failed:
                return self._to("muted" if self.muted else "idle")
            return []
        if not self.in_conversation:
            return []
        if name == "follow_up":
            if self.state == "speaking" or self.tools_running:
                return []
            return self._end("follow-up window over" if not self.end_after_reply else "goodbye")
        if name == "idle_timeout":
            if self.heard_user or self.state in ("speaking", "thinking"):
                return []
            return self._end("no speech after the wake word")
        return [FlushPlayback(), *self._end("maximum conversation length reached")]
