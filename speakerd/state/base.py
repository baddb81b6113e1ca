"""What every layer of the machine may use: its fields and transitions, implemented by ``Machine``.

Why a base: the layers (actions, alarm, push-to-talk, service) are mixins of one machine; each
reads the same fields and calls the same transitions, declared once here so mypy checks them.
"""

from __future__ import annotations

from speakerd.effects import Effect, State


class MachineBase:
    state: State
    in_conversation: bool
    muted: bool
    mic_failed: bool
    error: str | None
    heard_user: bool
    dropping_reply: bool
    reply_done: bool
    _before_offline: State
    activity_open: bool = False  # an ActivityStart was sent and not yet ended (push-to-talk)
    button_turn: bool = False  # the button is held: its release, not a pause, ends the turn

    def _to(self, state: State) -> list[Effect]:
        raise NotImplementedError

    def _wake(self, frame_index: int | None, *, earcon: bool = True, voice: bool = True) -> list[Effect]:
        raise NotImplementedError

    def _end(self, reason: str, *, earcon: str | None = "end") -> list[Effect]:
        raise NotImplementedError

    def _follow_up(self) -> list[Effect]:
        raise NotImplementedError

    def _push_to_talk(self) -> bool:
        raise NotImplementedError

    def _follow_up_seconds(self) -> float:
        raise NotImplementedError
