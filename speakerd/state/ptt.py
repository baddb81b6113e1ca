"""Push-to-talk without the button: turns a wake word or ``speakerctl`` starts.

Why: with ``push_to_talk`` the service's own turn detection is off for the whole session, so
only activity markers end a turn. A button press and release send them; a conversation started
any other way gets them from the local speech detector instead: a voice turn opens when the
speaker listens, and closes when the person has spoken and then paused. A typed question
(``speakerctl say``) opens none, so the service answers the text at once.
"""

from __future__ import annotations

from speakerd.effects import ActivityEnd, ActivityStart, Effect, Stream
from speakerd.state.base import MachineBase


class PushToTalkRules(MachineBase):
    """Mixed into ``Machine``; only active with ``push_to_talk``."""

    def _open_voice_turn(self) -> list[Effect]:
        if not (self._push_to_talk() and self.in_conversation) or self.activity_open:
            return []
        self.activity_open = True
        return [ActivityStart(), Stream(True)]

    def _user_paused(self) -> list[Effect]:
        """The person spoke and then paused: end a voice turn the button did not open."""
        if not (self._push_to_talk() and self.in_conversation and self.activity_open) or self.button_turn:
            return []
        if not self.heard_user or self.state not in ("listening", "wake"):
            return []
        self.activity_open = False
        return [ActivityEnd(), Stream(False), *self._to("thinking")]

    def _turn_markers_reset(self) -> None:
        self.activity_open = self.button_turn = False


