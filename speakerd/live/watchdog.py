"""The response watchdog: no word from the service for too long while a reply is due.

Why: production sometimes transcribes the user's turn and then sends nothing for a minute with the
socket open (reference live-service-behaviours.md, "A stall"), and with relaxed WebSocket pings (a
pong can take 30 s) a dead link is only noticed by the silence. Either way the person is waiting.

Armed when the user's turn is known to be over: text or activity_end sent, an input transcription
received (the only sign under server VAD), a tool answer sent, or the daemon calling
``LiveSession.user_turn_ended()``. Each sign that the reply is on its way pushes the deadline back;
turnComplete or a tool call (the client's move) disarms it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("speakerd.live")

DEFAULT_RESPONSE_TIMEOUT_SECONDS = 10.0


class ResponseWatchdog:
    def __init__(self, timeout: float, on_stall: Callable[[float], None],
                 clock: Callable[[], float]) -> None:
        self.timeout = timeout
        self._on_stall = on_stall
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._since: float | None = None  # when the reply became due (for the log line)

    @property
    def armed(self) -> bool:
        return self._timer is not None

    def arm(self) -> None:
        """A reply is due from now (restarts the count if one was already due)."""
        if self.timeout <= 0:
            return
        if self._since is None:
            self._since = self._clock()
        self._restart()

    def progress(self) -> None:
        """The service is working on the reply: push the deadline back, if one is running."""
        if self._timer is not None:
            self._restart()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._since = None

    def pause(self) -> None:
        """The connection is gone; ``resume_if_due`` starts the count again on the next one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def resume_if_due(self) -> None:
        if self._since is not None:
            self._restart()

    def _restart(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.timeout, self._fire)

    def _fire(self) -> None:
        waited = self._clock() - (self._since if self._since is not None else self._clock())
        self._timer = None
        self._since = None
        self._on_stall(waited)
