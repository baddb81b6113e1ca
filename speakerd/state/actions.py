"""What a person asks for by button or ``speakerctl``: wake, interrupt, end, mute, push-to-talk.

Why apart: these are the rules with the most branches, and each is about the person, not the
service. ``Machine`` supplies the transitions they use (``_wake``, ``_end``, ``_to``, ``_follow_up``).
"""

from __future__ import annotations

from speakerd.effects import (
    ActivityEnd,
    ActivityStart,
    Earcon,
    Effect,
    FlushPlayback,
    Mic,
    StopReply,
    Stream,
    WakeListening,
)
from speakerd.events import Action
from speakerd.state.base import MachineBase


class UserActions(MachineBase):
    """Mixed into ``Machine``."""

    def _action(self, action: Action, frame_index: int | None) -> list[Effect]:
        if action == "stop":
            return []  # it stops an alarm (AlarmRules); with none ringing there is nothing to stop
        if action == "wake":
            return self._wake(frame_index)
        if action == "interrupt":
            if self.state == "speaking" or (self.in_conversation and self.reply_done):
                self.dropping_reply = not self.reply_done
                stop: list[Effect] = [StopReply()] if self.dropping_reply else []  # still generating
                self.reply_done = False
                return [FlushPlayback(), *stop, *self._to("listening"), *self._follow_up()]
            return []
        if action == "end":
            return [FlushPlayback(), *self._end("ended by the user")]
        if action == "mute_toggle":
            action = "unmute" if self.muted else "mute"
        if action == "mute":
            if self.muted:
                return []
            self.muted = True  # first: ending the conversation must not show "idle" on the way
            fx = [FlushPlayback(), *self._end("microphone muted", earcon=None)]
            return [
                *fx,
                WakeListening(False),
                Mic(False),
                Earcon("mute"),
                *self._to("muted"),
            ]
        if action == "unmute":
            if not self.muted:
                return []
            self.muted = False
            return [
                Mic(True),
                WakeListening(True),
                Earcon("unmute"),
                *self._to("idle"),
            ]
        if action == "ptt_start":
            if not self.in_conversation:
                fx = self._wake(frame_index)
                self.button_turn = True
                return fx
            fx = []
            if self.state == "speaking":
                self.dropping_reply = True
                fx.append(FlushPlayback())
            self.button_turn = True
            opened: list[Effect] = [] if self.activity_open else [Stream(True), ActivityStart()]
            self.activity_open = True
            return [*fx, *opened, *self._to("listening")]
        # ptt_end
        if not self.in_conversation:
            return []
        self.button_turn = self.activity_open = False
        return [ActivityEnd(), Stream(False), *self._to("thinking")]

