"""The rules while an alarm rings: it is shown, heard, and dismissed by whatever the person does.

Why a layer over the conversation and not a state of it: an alarm rings with or without a
conversation, and the conversation goes on afterwards. While it rings the machine keeps its
conversation state (what it would show); the LEDs show ``alarm``; the microphone stops streaming
(the service must not take the ringing for speech) and a reply is held where it is. A press, the
wake word, the stop word or ``speakerctl stop`` dismisses it; then the conversation resumes.
"""

from __future__ import annotations

from speakerd.effects import (
    CancelTimer,
    DismissAlarm,
    Effect,
    EndAudioStream,
    HoldPlayback,
    Show,
    StartTimer,
    State,
    Stream,
)
from speakerd.events import UserAction, WakeDetected
from speakerd.state.base import MachineBase


class AlarmRules(MachineBase):
    """Mixed into ``Machine``; uses its ``state``, ``in_conversation``, ``timings`` and ``muted``."""

    alarm: bool = False

    @property
    def shown(self) -> State:
        """What the LEDs, STATUS= and speakerctl show: the alarm over anything else."""
        return "alarm" if self.alarm else self.state

    def _alarm_ringing(self, on: bool) -> list[Effect]:
        if on == self.alarm:
            return []
        self.alarm = on
        if on:
            paused: list[Effect] = []
            if self.in_conversation:
                paused = [Stream(False), EndAudioStream(), HoldPlayback(True),
                          CancelTimer("follow_up"), CancelTimer("idle_timeout")]
            return [*paused, Show("alarm")]
        fx: list[Effect] = [Show(self.state)]
        if self.in_conversation:
            fx.append(HoldPlayback(False))
            if not self._push_to_talk():
                fx.append(Stream(True))
            if self.state == "listening":
                fx.append(StartTimer("follow_up", self._follow_up_seconds()))
        return fx

    def _dismisses(self, event: object) -> bool:
        """While ringing, a press, a wake word or a stop/end dismisses (mute and unmute do not)."""
        if not self.alarm:
            return False
        if isinstance(event, WakeDetected):
            return True
        return isinstance(event, UserAction) and event.action not in ("mute", "unmute")

    def _dismiss(self) -> list[Effect]:
        return [DismissAlarm()]


