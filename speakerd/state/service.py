"""When the service or a device lets the conversation down: closed, failed, offline, stalled,
rejected, or a microphone gone.

Why apart: each of these has an outcome the person must be able to tell (a sound, an LED, a log
line), and the rules for them are about the world failing, not about the conversation itself.
``Machine`` supplies the transitions (``_end``, ``_to``, ``_follow_up``).
"""

from __future__ import annotations

from speakerd.effects import Earcon, Effect, FlushPlayback, Log, StartTimer
from speakerd.events import DeviceFault, SessionState
from speakerd.state.base import MachineBase

ERROR_SHOWN_SECONDS = 3.0  # how long a passing failure keeps the error LED on


class ServiceRules(MachineBase):
    """Mixed into ``Machine``."""

    def _generation_complete(self) -> list[Effect]:
        """The model has said all it will: the reply is over once the speaker has drained, even if
        the service's turnComplete comes seconds later."""
        if self.in_conversation and self.state == "speaking" and not self.dropping_reply:
            self.reply_done = True
        return []

    def _rejected(self, reason: str, fresh: bool) -> list[Effect]:
        """A turn ended with no reply (RESPONSE_REJECTED): a short cue instead of silence."""
        if not self.in_conversation:
            return []
        why = f"the model gave no answer ({reason})" + ("; starting a fresh session" if fresh else "")
        return [Log(why), Earcon("error")]

    def _stalled(self, waited: float, retrying: bool) -> list[Effect]:
        """No word from the service after the person's turn: wait for the retry, or give up on it."""
        if not self.in_conversation:
            return []
        if retrying:
            return [Log(f"no answer after {waited:.0f} s; asking again")]
        self.error = f"no answer from the service after {waited:.0f} s"
        fx = [FlushPlayback(), *self._end(self.error, earcon="error")]
        if not self.muted and not self.mic_failed:
            fx += [*self._to("error"), StartTimer("error_shown", ERROR_SHOWN_SECONDS)]  # then idle again
        return fx

    def _session(self, ev: SessionState) -> list[Effect]:
        if ev.phase == "ready":
            self.error = None
            if self.state == "offline":
                return self._to("listening" if self._before_offline == "wake" else self._before_offline)
            if self.state == "wake":
                return self._to("listening")
            return []
        if ev.phase == "reconnecting" and self.in_conversation:
            if self.state != "offline":
                self._before_offline = "listening" if self.state == "speaking" else self.state
            return self._to("offline")
        if ev.phase == "failed":
            # Fatal (key, model): the owner must act. Otherwise the service could not be reached:
            # say so with its own sound and LED until a conversation works again.
            self.error = ev.detail or "the Live session failed"
            fx = [FlushPlayback(), *self._end(self.error, earcon="error" if ev.fatal else "offline")]
            if not self.muted and not self.mic_failed:
                fx += [*self._to("error" if ev.fatal else "offline")]
            return fx
        if ev.phase == "closed" and self.in_conversation:
            return self._end(ev.detail or "the session closed")
        return []

    def _device(self, ev: DeviceFault) -> list[Effect]:
        if ev.kind != "input":
            return []  # a speaker fault is logged and retried; listening goes on
        if ev.recovered:
            if not self.mic_failed:
                return []
            self.mic_failed = False
            self.error = None
            return self._to("muted" if self.muted else "idle")
        self.mic_failed = True
        self.error = ev.message
        return [*self._end(f"microphone failed: {ev.message}", earcon=None), *self._to("error")]
