"""The connection loop: connect, pump the outbox and the server's messages, decide what's next.

Why a base class of LiveSession: it is the half of the session the daemon never calls; the other
half (session.py) is the public API and the callbacks of the parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from google.genai import errors

from speakerd.config import Config, LiveSettings
from speakerd.events import LiveEvent, SessionState
from speakerd.live.connect_config import connect_config_and_warnings
from speakerd.live.connection import ConnectFailed, Connector, send_item
from speakerd.live.dispatch import Dispatcher
from speakerd.live.outbox import Outbox
from speakerd.live.policy import ClosePolicy, LiveError, SessionStats, backoff, reason_of
from speakerd.live.store import ResumptionStore
from speakerd.live.tokens import TokenSource
from speakerd.live.tools import ToolRegistry
from speakerd.live.watchdog import ResponseWatchdog

log = logging.getLogger("speakerd.live")

HEALTHY_SECONDS = 10.0  # a connection that lasted this long resets the reconnect backoff


class ConnectionLoop:
    # Set up by LiveSession.__init__.
    cfg: Config
    live: LiveSettings
    store: ResumptionStore
    tools: ToolRegistry
    push_to_talk: bool
    token_source: TokenSource | None
    connector: Connector
    force_compression: bool
    clock: Callable[[], float]
    stats: SessionStats
    session_id: str | None
    handle: str | None
    outbox: Outbox
    policy: ClosePolicy
    dispatch: Dispatcher
    watchdog: ResponseWatchdog
    switch: asyncio.Event
    go_away_pending: bool
    timers: list[asyncio.TimerHandle]
    _session: Any
    _ready: asyncio.Future[None] | None
    _closing: bool
    _fresh_requested: bool
    _resume_now: bool
    _healthy: bool
    _disconnected_at: float | None

    def on_event(self, event: LiveEvent) -> None:
        raise NotImplementedError

    # Outbox -> connection -------------------------------------------------------------------------

    async def _drained(self) -> None:
        while self.outbox.items and self._session is not None:  # noqa: ASYNC110 - polled for at most 2 s
            await asyncio.sleep(0.01)

    async def _sender(self, session: Any) -> None:
        box = self.outbox
        while True:
            await box.wake.wait()
            box.wake.clear()
            while box.items:
                kind, value = box.items[0]
                if kind == "audio" and self.dispatch.holding_mic():
                    self.stats.held_back_audio_bytes += len(value)
                    box.pop(sent=False)
                    continue
                try:
                    await send_item(session, kind, value)
                except ValueError as e:  # the SDK refused the item itself: no connection would take it
                    log.warning("could not send %s to the Live service: %s; dropped", kind, reason_of(e))
                    box.pop(sent=False)
                    continue
                box.pop(sent=True)  # only once sent: a failed send keeps it for the next connection
                if kind == "tool_response":
                    self.dispatch.tool_response_sent(value)

    async def _receiver(self, session: Any) -> None:
        while True:  # receive() ends at each turn; handles can come after it
            async for msg in session.receive():
                self.dispatch.handle(msg)

    # Connection loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        outcome = "first"
        while not self._closing:
            if outcome == "first":
                self.on_event(SessionState("connecting", resumed=self.handle is not None))
            try:
                outcome = await self._connection()
            except LiveError as e:
                if not e.fatal and self.token_source is not None:
                    log.warning("%s; retrying", e)  # the broker may be back in a moment
                    outcome = "retry"
                else:
                    self._fail(self.connector.redact(str(e)), fatal=e.fatal)
                    return
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a bug or an SDK surprise: report, back off, retry
                log.warning("Live connection error: %s: %s", type(e).__name__, reason_of(e))
                outcome = "retry"
            if self._stopped():
                return
            if outcome == "resume":
                self.on_event(SessionState("reconnecting", "resuming"))
            if outcome in ("switch", "resume"):
                attempt = 0
                continue
            if self._healthy:  # a connection that worked for a while starts the backoff over
                attempt = 0
            if outcome == "fresh_token":
                continue
            if outcome == "fresh":
                self.handle = None
                self.store.clear()
                self.on_event(SessionState("reconnecting", "starting a new conversation"))
                continue
            attempt += 1
            quota = self.policy.quota
            delay = backoff(attempt, self.live.reconnect_max_seconds, quota=quota)
            self.stats.backoffs.append(delay)
            self.stats.last_backoff_seconds, self.stats.last_backoff_quota = delay, quota
            detail = f"retrying in {delay:.1f} s" + (" (quota exhausted: backing off longer)" if quota else "")
            self.on_event(SessionState("reconnecting", detail))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.switch.wait(), delay)

    def _stopped(self) -> bool:
        return self._closing  # a method: mypy would take the loop's check for the last word

    def _fail(self, message: str, *, fatal: bool) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(LiveError(message, fatal=fatal))
        else:
            self.on_event(SessionState("failed", message, fatal=fatal))

    def _decide(self, code: int | None, reason: str, *, after_setup: bool) -> str:
        outcome = self.policy.decide(code, reason, after_setup=after_setup, has_handle=self.handle is not None,
                                     has_token_source=self.token_source is not None,
                                     go_away_pending=self.go_away_pending)
        if outcome == "fresh_token" and self.token_source is not None:
            self.token_source.invalidate()
        return outcome

    async def _connection(self) -> str:
        """One connection, from connect to close. Returns what to do next."""
        config, warnings = connect_config_and_warnings(
            self.live, self.tools, handle=self.handle, push_to_talk=self.push_to_talk,
            force_compression=self.force_compression,
        )
        if self.stats.connects == 0:
            for w in warnings:
                log.warning("%s", w)
        started = self.clock()
        try:
            session, cm = await self.connector.connect(config, new_session=self.handle is None)
        except ConnectFailed as e:
            if e.code is None:
                return "retry"
            return self._decide(e.code, e.reason, after_setup=False)
        self._connected(session, started)
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        self.on_event(SessionState("ready", resumed=config.session_resumption is not None
                                   and config.session_resumption.handle is not None))
        connected_at = self.clock()
        self._healthy = False
        sender = asyncio.create_task(self._sender(session), name="live-sender")
        receiver = asyncio.create_task(self._receiver(session), name="live-receiver")
        switch = asyncio.create_task(self.switch.wait(), name="live-switch")
        self.outbox.wake.set()
        outcome = "retry"
        try:
            done, _ = await asyncio.wait({sender, receiver, switch}, return_when=asyncio.FIRST_COMPLETED)
            if switch in done:
                outcome = self._planned_move()
            else:
                task = receiver if receiver in done else sender
                exc = task.exception()
                if isinstance(exc, errors.APIError):
                    outcome = self._decide(exc.code, self.connector.redact(reason_of(exc)), after_setup=True)
                elif exc is not None:
                    self.stats.last_close_code, self.stats.last_close_reason = None, reason_of(exc)
                    log.warning("Live connection lost: %s", self.connector.redact(reason_of(exc)))
                if outcome == "retry":
                    self.on_event(SessionState("reconnecting", "connection lost"))
        finally:
            await self._disconnected(session, cm, (sender, receiver, switch), connected_at)
        return outcome

    def _connected(self, session: Any, started: float) -> None:
        self._session = session
        self.session_id = getattr(session, "session_id", None)
        self.stats.connects += 1
        self.stats.last_connect_seconds = self.clock() - started
        if self.stats.connects > 1:
            self.stats.reconnects += 1
            if self._disconnected_at is not None:
                self.stats.reconnect_gaps.append(self.clock() - self._disconnected_at)
        self.policy.fresh_retry_used = self.policy.fresh_retry_used and self.handle is None
        self.policy.token_retry_used = False
        self.switch.clear()
        self.go_away_pending = False
        self._resume_now = False
        self.dispatch.new_connection()
        if self.stats.connects > 1 and self.outbox.replay():
            self.watchdog.arm()  # the replayed input is a question the model has not answered
        self.watchdog.resume_if_due()
        self._schedule_token_refresh()

    def _planned_move(self) -> str:
        if self._fresh_requested:
            self._fresh_requested = False
            return "fresh"
        return "resume" if self._resume_now else "switch"

    async def _disconnected(self, session: Any, cm: Any, tasks: tuple[asyncio.Task[Any], ...],
                            connected_at: float) -> None:
        self._session = None
        self.watchdog.pause()
        self._disconnected_at = self.clock()
        self._healthy = self._disconnected_at - connected_at >= HEALTHY_SECONDS
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await Connector.teardown(session, cm)

    def _schedule_token_refresh(self) -> None:
        """Move to a new connection (resumed, with a fresh token) before the token expires."""
        source = self.token_source
        token = source.current if source is not None else None
        if source is None or token is None:
            return
        due = token.expires_at - source.settings.refresh_before_seconds - self.clock()
        self.timers.append(asyncio.get_running_loop().call_later(max(1.0, due), self.switch.set))
