"""One conversation with the Gemini Live API, kept alive across goAways, drops and restarts.

The parts: :mod:`outbox` (ordered input and its replay log), :mod:`policy` (what a close code
means, backoff, figures), :mod:`dispatch` (server messages into events, tools), :mod:`watchdog`
(no reply while one is due). This module is the connection loop that ties them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import websockets
from google import genai
from google.genai import errors, types

from speakerd.config import Config
from speakerd.events import SAMPLE_RATE_IN, LiveEvent, ResponseStalled, SessionState
from speakerd.live.connect_config import (
    connect_config_and_warnings,
    http_options,
    options_for,
    with_keepalive,
)
from speakerd.live.dispatch import Dispatcher
from speakerd.live.outbox import Outbox
from speakerd.live.policy import ClosePolicy, LiveError, SessionStats, backoff, reason_of
from speakerd.live.store import ResumptionStore
from speakerd.live.tokens import TokenError, TokenSource, load_device_secret
from speakerd.live.tools import ToolRegistry
from speakerd.live.watchdog import DEFAULT_RESPONSE_TIMEOUT_SECONDS, ResponseWatchdog

__all__ = ["LiveError", "LiveSession", "SessionStats", "model_accepts_non_blocking"]

log = logging.getLogger("speakerd.live")

HEALTHY_SECONDS = 10.0  # a connection that lasted this long resets the reconnect backoff
AUDIO_MIME = f"audio/pcm;rate={SAMPLE_RATE_IN}"


class LiveSession:
    def __init__(
        self,
        config: Config,
        on_event: Callable[[LiveEvent], None],
        *,
        store: ResumptionStore,
        tools: ToolRegistry,
        http_options: types.HttpOptions | None = None,
        push_to_talk: bool | None = None,
        token_source: TokenSource | None = None,
        force_compression: bool = False,
        clock: Callable[[], float] = time.monotonic,
        response_timeout: float = DEFAULT_RESPONSE_TIMEOUT_SECONDS,
        watch_transcripts: bool = True,
    ) -> None:
        self.cfg = config
        self.live = config.settings.live
        self.on_event = on_event
        self.store = store
        self.tools = tools
        self._http_options = http_options
        self.push_to_talk = config.settings.gpio.push_to_talk if push_to_talk is None else push_to_talk
        self.token_source = token_source
        self._token_error: LiveError | None = None
        if token_source is None and self.live.token_broker.url:
            secret = load_device_secret()
            if secret is None:
                self._token_error = LiveError(
                    "live.token_broker.url is set but there is no device secret (credential "
                    "speakerd-device-secret or SPEAKERD_DEVICE_SECRET)", fatal=True)
            else:
                self.token_source = TokenSource(self.live.token_broker, secret, clock=clock)
        self.force_compression = force_compression
        self.clock = clock
        self.stats = SessionStats()
        self.session_id: str | None = None
        self.handle: str | None = store.load() if config.settings.conversation.resume else None
        self.outbox = Outbox(self.stats)
        self.policy = ClosePolicy(self.stats)
        self.dispatch = Dispatcher(self)
        self.watchdog = ResponseWatchdog(response_timeout, self._stalled, clock)
        self.watch_transcripts = watch_transcripts
        self.stall_retry_used = False
        self.switch = asyncio.Event()  # move to a new connection now (goAway, token, stall)
        self.go_away_pending = False
        self.timers: list[asyncio.TimerHandle] = []  # per connection: goAway deadline, token expiry
        self._session: Any = None  # google.genai.live.AsyncSession while connected
        self._runner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closing = False
        self._fresh_requested = False
        self._resume_now = False
        self._healthy = False
        self._disconnected_at: float | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-store")

    # Public API -----------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._session is not None and not self._closing

    async def open(self) -> None:
        """Connect (or resume); returns at setupComplete, raises LiveError if it cannot."""
        if self._runner is None:
            loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            self._runner = asyncio.create_task(self._run(), name="live-session")
        assert self._ready is not None
        await asyncio.shield(self._ready)

    def send_audio(self, pcm: bytes) -> None:
        self.outbox.put("audio", pcm)

    def send_text(self, text: str) -> None:
        self.outbox.put("text", text)
        self.watchdog.arm()

    def end_audio_stream(self) -> None:
        if not self.push_to_talk:  # with manual activity detection the markers say it instead
            self.outbox.put("audio_end", None)

    def activity_start(self) -> None:
        self.outbox.put("activity_start", None)

    def activity_end(self) -> None:
        self.outbox.put("activity_end", None)
        self.watchdog.arm()

    def user_turn_ended(self) -> None:
        """The daemon knows the user finished speaking (its own end-of-speech detection): a reply
        is due now. The session arms the watchdog by itself for text, activity_end and input
        transcriptions; under server VAD this call is the only other sign it can have."""
        self.watchdog.arm()

    def send_video(self, jpeg: bytes) -> None:
        self.outbox.put("video", jpeg)

    async def close(self) -> None:
        """Send what is queued (briefly), close, and start the handle's 2-hour validity."""
        if self._closing:
            return
        with contextlib.suppress(Exception):
            if self._session is not None:
                await asyncio.wait_for(self._drained(), 2.0)
        self._closing = True
        self.outbox.closed = True
        self.watchdog.disarm()
        self.outbox.wake.set()
        self.switch.set()
        self.dispatch.cancel_tools()
        if self._runner is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._runner), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                self._runner.cancel()
                with contextlib.suppress(BaseException):
                    await self._runner
            except Exception as e:
                log.debug("session runner ended with %s", type(e).__name__)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(LiveError("closed before the session was ready"))
            self._ready.exception()
        for timer in self.timers:
            timer.cancel()
        if self.handle is not None:
            await asyncio.get_running_loop().run_in_executor(self._io, self.store.touch)
        self._io.shutdown(wait=False)
        self.on_event(SessionState("closed"))

    # Called by the dispatcher ---------------------------------------------------------------------

    def handle_saved(self, handle: str) -> None:
        self.handle = handle
        self.outbox.handle_saved()
        # fsync on an SD card can take 100 ms: never on the loop; one thread keeps the order.
        asyncio.get_running_loop().run_in_executor(self._io, self.store.save, handle)

    def request_fresh(self) -> None:
        """Start over without the handle (after rejected turns): the old context is the problem."""
        self._fresh_requested = True
        self.outbox.forget_all()
        self.switch.set()

    def _stalled(self, waited: float) -> None:
        self.stats.stalls += 1
        if not self.stall_retry_used and self.is_open:
            self.stall_retry_used = True
            log.warning("no reply from the Live service %.0f s after the user's turn; resuming and "
                        "asking again", waited)
            self.on_event(ResponseStalled(waited, retrying=True))
            self.watchdog.arm()  # counts again on the new connection
            self._resume_now = True
            self.switch.set()
            return
        self.stall_retry_used = False
        log.warning("still no reply from the Live service after %.0f s; giving up on this turn", waited)
        self.on_event(ResponseStalled(waited, retrying=False))

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
                    await self._send(session, kind, value)
                except ValueError as e:  # the SDK refused the item itself: no connection would take it
                    log.warning("could not send %s to the Live service: %s; dropped", kind, reason_of(e))
                    box.pop(sent=False)
                    continue
                box.pop(sent=True)  # only once sent: a failed send keeps it for the next connection
                if kind == "tool_response":
                    self.dispatch.tool_response_sent(value)

    async def _send(self, session: Any, kind: str, value: Any) -> None:
        if kind == "audio":
            await session.send_realtime_input(audio=types.Blob(data=value, mime_type=AUDIO_MIME))
        elif kind == "audio_end":
            await session.send_realtime_input(audio_stream_end=True)
        elif kind == "text":
            await session.send_realtime_input(text=value)
        elif kind == "activity_start":
            await session.send_realtime_input(activity_start=types.ActivityStart())
        elif kind == "activity_end":
            await session.send_realtime_input(activity_end=types.ActivityEnd())
        elif kind == "video":
            await session.send_realtime_input(video=types.Blob(data=value, mime_type="image/jpeg"))
        elif kind == "tool_response":
            await session.send_tool_response(function_responses=value)

    async def _receiver(self, session: Any) -> None:
        while True:  # receive() ends at each turn; handles can come after it
            async for msg in session.receive():
                self.dispatch.handle(msg)

    # Connection loop ------------------------------------------------------------------------------

    async def _client(self) -> genai.Client:
        opts = self._http_options
        if self._token_error is not None:
            raise self._token_error
        if self.token_source is not None:
            try:
                token = (await self.token_source.token(new_session=self.handle is None)).name
            except TokenError as e:
                raise LiveError(str(e), fatal=e.fatal) from None
            version = "v1alpha"
            if opts is None:
                opts = http_options(self.live, api_version=version)
            else:
                opts = opts.model_copy(update={"api_version": version})
            return genai.Client(api_key=token, http_options=with_keepalive(opts))
        if self.cfg.api_key is None:
            raise LiveError("no API key: put it in /etc/speakerd/credentials/gemini-api-key "
                            "or set GEMINI_API_KEY", fatal=True)
        if opts is None:
            opts = http_options(self.live)
        return genai.Client(api_key=self.cfg.api_key.get_secret_value(), http_options=with_keepalive(opts))

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
                    self._fail(self._redact(str(e)), fatal=e.fatal)
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
        client = await self._client()
        config, warnings = connect_config_and_warnings(
            self.live, self.tools, handle=self.handle, push_to_talk=self.push_to_talk,
            force_compression=self.force_compression,
        )
        if self.stats.connects == 0:
            for w in warnings:
                log.warning("%s", w)
        started = self.clock()
        cm = client.aio.live.connect(model=self.live.model, config=config)
        try:
            session = await asyncio.wait_for(cm.__aenter__(), self.live.connect_timeout_seconds)
        except TimeoutError:
            log.warning("Live service did not answer within %.0f s", self.live.connect_timeout_seconds)
            return "retry"
        except errors.APIError as e:
            return self._decide(e.code, self._redact(reason_of(e)), after_setup=False)
        except websockets.InvalidStatus as e:
            status = e.response.status_code
            return self._decide(1008 if status in (401, 403) else 1011, f"HTTP {status}", after_setup=False)
        except (OSError, websockets.WebSocketException) as e:
            log.warning("cannot reach the Live service: %s", self._redact(reason_of(e)))
            return "retry"
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
                    outcome = self._decide(exc.code, self._redact(reason_of(exc)), after_setup=True)
                elif exc is not None:
                    self.stats.last_close_code, self.stats.last_close_reason = None, reason_of(exc)
                    log.warning("Live connection lost: %s", self._redact(reason_of(exc)))
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
        with contextlib.suppress(Exception):
            await asyncio.wait_for(cm.__aexit__(None, None, None), 2.0)
        # A close handshake stuck behind unread frames (the receiver stopped at a bad one) would
        # leave the socket and its keepalive task behind: cut it. The old socket must be gone
        # before a resume, or the service refuses the resume (1011).
        ws = getattr(session, "_ws", None)
        if ws is not None and ws.state is not websockets.State.CLOSED:
            ws.transport.abort()

    def _schedule_token_refresh(self) -> None:
        """Move to a new connection (resumed, with a fresh token) before the token expires."""
        source = self.token_source
        token = source.current if source is not None else None
        if source is None or token is None:
            return
        due = token.expires_at - source.settings.refresh_before_seconds - self.clock()
        self.timers.append(asyncio.get_running_loop().call_later(max(1.0, due), self.switch.set))

    def _redact(self, text: str) -> str:
        secrets = [self.cfg.api_key.get_secret_value()] if self.cfg.api_key is not None else []
        if self.token_source is not None:
            secrets += self.token_source.secret_values
        for secret in secrets:
            if len(secret) >= 4:
                text = text.replace(secret, "**********")
        return text


def model_accepts_non_blocking(model: str) -> bool:
    return options_for(model).non_blocking_tools

