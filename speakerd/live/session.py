"""One conversation with the Gemini Live API, kept alive across goAways, drops and restarts.

Why an outbox: the daemon must never wait on the network. Everything it sends (microphone audio,
text, activity markers, tool answers) goes into one ordered, bounded queue that a sender task
drains into whichever connection is current. While connecting or reconnecting the queue simply
holds, so no audio from the wake word on is lost and nothing is sent twice or out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import websockets
from google import genai
from google.genai import errors, types

from speakerd.config import Config
from speakerd.events import (
    SAMPLE_RATE_IN,
    GenerationComplete,
    GoAway,
    Interrupted,
    LiveEvent,
    ReplyAudio,
    SessionState,
    ToolCall,
    ToolCancelled,
    ToolResult,
    Transcript,
    TurnComplete,
)
from speakerd.live.connect_config import connect_config_and_warnings, http_options, options_for
from speakerd.live.store import ResumptionStore
from speakerd.live.tokens import TokenError, TokenSource, load_device_secret
from speakerd.live.tools import ToolRegistry

log = logging.getLogger("speakerd.live")

MAX_BUFFERED_AUDIO_SECONDS = 30.0
MAX_REPLAY_AUDIO_SECONDS = 30.0
GO_AWAY_MARGIN_SECONDS = 1.0
HEALTHY_SECONDS = 10.0  # a connection that lasted this long resets the reconnect backoff
AUDIO_MIME = f"audio/pcm;rate={SAMPLE_RATE_IN}"


class LiveError(Exception):
    """The session cannot be had. ``fatal``: retrying will not help (key, model, configuration)."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


STATS_KEPT = 256  # recent reconnect figures kept in SessionStats


@dataclass
class SessionStats:
    connects: int = 0
    reconnects: int = 0
    last_connect_seconds: float | None = None
    go_aways: int = 0
    dropped_audio_bytes: int = 0
    # The latest only: a speaker runs for months, and these are for benches and diagnostics.
    reconnect_gaps: deque[float] = field(default_factory=lambda: deque(maxlen=STATS_KEPT))
    backoffs: deque[float] = field(default_factory=lambda: deque(maxlen=STATS_KEPT))
    replayed_items: int = 0


def _duration(text: str | None) -> float:
    """A protobuf Duration string ("5s", "1.5s") in seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)s\s*", text or "")
    return float(m[1]) if m else 0.0


def _reason(e: BaseException) -> str:
    text = str(getattr(e, "details", None) or e).strip() or type(e).__name__
    return text.splitlines()[0][:160]


_REALTIME = frozenset({"audio", "audio_end", "text", "activity_start", "activity_end"})


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
        self._outbox: deque[tuple[str, Any]] = deque()
        self._audio_bytes = 0
        self._wake = asyncio.Event()
        self._session: Any = None  # google.genai.live.AsyncSession while connected
        self._runner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closing = False
        self._switch = asyncio.Event()  # goAway: move to a new connection now
        self._go_away_pending = False
        self._generating = False
        self._tool_tasks: dict[str, asyncio.Task[None]] = {}
        self._fresh_retry_used = False
        self._healthy = False
        self._disconnected_at: float | None = None
        self._warned_overflow = False
        self._timers: list[asyncio.TimerHandle] = []  # per connection: goAway deadline, token expiry
        self._switch_by_go_away = False
        # Input sent that no stored handle covers yet: a resumed session has not heard it, so it is
        # sent again first. Items sent before the model began its answer are covered by the handle
        # after that turn's turnComplete; input sent while it answered (a barge-in) belongs to the next.
        self._since_handle: deque[tuple[str, Any]] = deque()
        self._since_handle_audio = 0
        self._covered = 0
        self._answered = 0  # len(_since_handle) when the model's current or last answer began
        self._token_retry_used = False
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
        self._put("audio", pcm)

    def send_text(self, text: str) -> None:
        self._put("text", text)

    def end_audio_stream(self) -> None:
        if not self.push_to_talk:  # with manual activity detection the markers say it instead
            self._put("audio_end", None)

    def activity_start(self) -> None:
        self._put("activity_start", None)

    def activity_end(self) -> None:
        self._put("activity_end", None)

    def send_video(self, jpeg: bytes) -> None:
        # Latest frame wins: an old frame still queued is worthless.
        for i in range(len(self._outbox) - 1, -1, -1):
            if self._outbox[i][0] == "video":
                del self._outbox[i]
                break
        self._put("video", jpeg)

    async def close(self) -> None:
        """Send what is queued (briefly), close, and start the handle's 2-hour validity."""
        if self._closing:
            return
        with contextlib.suppress(Exception):
            if self._session is not None:
                await asyncio.wait_for(self._drained(), 2.0)
        self._closing = True
        self._wake.set()
        self._switch.set()
        for task in list(self._tool_tasks.values()):
            task.cancel()
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
        for timer in self._timers:
            timer.cancel()
        if self.handle is not None:
            await asyncio.get_running_loop().run_in_executor(self._io, self.store.touch)
        self._io.shutdown(wait=False)
        self.on_event(SessionState("closed"))

    # Outbox ---------------------------------------------------------------------------------------

    def _put(self, kind: str, value: Any) -> None:
        if self._closing:
            return
        self._outbox.append((kind, value))
        if kind == "audio":
            self._audio_bytes += len(value)
            limit = int(MAX_BUFFERED_AUDIO_SECONDS * SAMPLE_RATE_IN * 2)
            while self._audio_bytes > limit:
                self._drop_oldest_audio()
        self._wake.set()

    def _drop_oldest_audio(self) -> None:
        for i, (kind, value) in enumerate(self._outbox):
            if kind == "audio":
                del self._outbox[i]
                self._audio_bytes -= len(value)
                self.stats.dropped_audio_bytes += len(value)
                if not self._warned_overflow:
                    log.warning("offline for too long: dropping the oldest buffered microphone audio")
                    self._warned_overflow = True
                return

    async def _drained(self) -> None:
        while self._outbox and self._session is not None:  # noqa: ASYNC110 - polled for at most 2 s
            await asyncio.sleep(0.01)

    async def _sender(self, session: Any) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                kind, value = self._outbox[0]
                try:
                    await self._send(session, kind, value)
                except ValueError as e:  # the SDK refused the item itself: no connection would take it
                    log.warning("could not send %s to the Live service: %s; dropped", kind, _reason(e))
                    self._outbox.popleft()
                    if kind == "audio":
                        self._audio_bytes -= len(value)
                    continue
                self._outbox.popleft()  # only once sent: a failed send keeps it for the next connection
                if kind == "audio":
                    self._audio_bytes -= len(value)
                if kind in _REALTIME:
                    self._remember(kind, value)

    def _remember(self, kind: str, value: Any) -> None:
        """Keep input no handle covers yet: after a drop the session resumes from the newest handle,
        which has not heard it, so it is sent again first (at least once, never lost)."""
        self._since_handle.append((kind, value))
        if kind == "audio":
            self._since_handle_audio += len(value)
            limit = int(MAX_REPLAY_AUDIO_SECONDS * SAMPLE_RATE_IN * 2)
            while self._since_handle_audio > limit and self._since_handle:
                self._forget_oldest()

    def _forget_oldest(self) -> None:
        kind, value = self._since_handle.popleft()
        if kind == "audio":
            self._since_handle_audio -= len(value)
        self._covered = max(0, self._covered - 1)
        self._answered = max(0, self._answered - 1)

    def _replay(self) -> None:
        """Put what the resumed session has not heard back at the front of the outbox, in order."""
        items = list(self._since_handle)
        self.stats.replayed_items += len(items)
        self._since_handle.clear()
        self._since_handle_audio = 0
        self._covered = 0
        self._answered = 0
        for kind, value in reversed(items):
            self._outbox.appendleft((kind, value))
            if kind == "audio":
                self._audio_bytes += len(value)

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

    # Connection loop ------------------------------------------------------------------------------

    async def _client(self) -> tuple[genai.Client, types.HttpOptions | None]:
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
            return genai.Client(api_key=token, http_options=opts), opts
        if self.cfg.api_key is None:
            raise LiveError("no API key: put it in /etc/speakerd/credentials/gemini-api-key "
                            "or set GEMINI_API_KEY", fatal=True)
        if opts is None:
            opts = http_options(self.live)
        return genai.Client(api_key=self.cfg.api_key.get_secret_value(), http_options=opts), opts

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
                log.warning("Live connection error: %s: %s", type(e).__name__, _reason(e))
                outcome = "retry"
            if self._stopped():
                return
            if outcome == "switch":
                attempt = 0
                continue
            if self._healthy:  # a connection that worked for a while starts the backoff over
                attempt = 0
            if outcome == "fresh_token":
                continue
            if outcome == "fresh":
                self.on_event(SessionState("reconnecting", "starting a new conversation"))
                continue
            attempt += 1
            delay = min(self.live.reconnect_max_seconds, 0.25 * 2 ** min(attempt - 1, 10))
            delay *= random.uniform(0.5, 1.0)  # jitter, so a fleet does not reconnect in step
            self.on_event(SessionState("reconnecting", f"retrying in {delay:.1f} s"))
            self.stats.backoffs.append(delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._switch.wait(), delay)

    def _stopped(self) -> bool:
        return self._closing

    def _fail(self, message: str, *, fatal: bool) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(LiveError(message, fatal=fatal))
        else:
            self.on_event(SessionState("failed", message, fatal=fatal))

    async def _connection(self) -> str:
        """One connection, from connect to close. Returns what to do next."""
        client, _opts = await self._client()
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
            return self._decide(e.code, self._redact(_reason(e)))
        except websockets.InvalidStatus as e:
            status = e.response.status_code
            return self._decide(1008 if status in (401, 403) else 1011, f"HTTP {status}")
        except (OSError, websockets.WebSocketException) as e:
            log.warning("cannot reach the Live service: %s", self._redact(_reason(e)))
            return "retry"
        self._session = session
        self.session_id = getattr(session, "session_id", None)
        self.stats.connects += 1
        self.stats.last_connect_seconds = self.clock() - started
        if self.stats.connects > 1:
            self.stats.reconnects += 1
            if self._disconnected_at is not None:
                self.stats.reconnect_gaps.append(self.clock() - self._disconnected_at)
        self._fresh_retry_used = self._fresh_retry_used and self.handle is None
        self._token_retry_used = False
        self._switch.clear()
        self._go_away_pending = False
        self._generating = False
        if self.stats.connects > 1:
            self._replay()
        self._schedule_token_refresh()
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        self.on_event(SessionState("ready", resumed=config.session_resumption is not None
                                   and config.session_resumption.handle is not None))
        connected_at = self.clock()
        self._healthy = False
        sender = asyncio.create_task(self._sender(session), name="live-sender")
        receiver = asyncio.create_task(self._receiver(session), name="live-receiver")
        switch = asyncio.create_task(self._switch.wait(), name="live-switch")
        self._wake.set()
        outcome = "retry"
        try:
            done, _ = await asyncio.wait({sender, receiver, switch}, return_when=asyncio.FIRST_COMPLETED)
            if switch in done:
                outcome = "switch"
            else:
                task = receiver if receiver in done else sender
                exc = task.exception()
                if isinstance(exc, errors.APIError):
                    outcome = self._decide(exc.code, self._redact(_reason(exc)))
                elif exc is not None:
                    log.warning("Live connection lost: %s", self._redact(_reason(exc)))
                if outcome == "retry":
                    self.on_event(SessionState("reconnecting", "connection lost"))
        finally:
            self._session = None
            self._disconnected_at = self.clock()
            self._healthy = self._disconnected_at - connected_at >= HEALTHY_SECONDS
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            for t in (sender, receiver, switch):
                t.cancel()
            await asyncio.gather(sender, receiver, switch, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(cm.__aexit__(None, None, None), 2.0)
            # A close handshake stuck behind unread frames (the receiver stopped at a bad one) would
            # leave the socket and its keepalive task behind: cut it.
            ws = getattr(session, "_ws", None)
            if ws is not None and ws.state is not websockets.State.CLOSED:
                ws.transport.abort()
        return outcome

    def _decide(self, code: int | None, reason: str) -> str:
        if code == 1000 and self._go_away_pending:
            return "switch"
        if code == 1008:
            if self.token_source is not None and not self._token_retry_used:
                # A token out of uses or expired: one fresh token, then it is the configuration.
                log.warning("the Live service refused the token (%s); fetching a new one", reason)
                self.token_source.invalidate()
                self._token_retry_used = True
                return "fresh_token"
            raise LiveError(f"the Live service refused the session (1008): {reason}", fatal=True)
        if code == 1007:
            if self.handle is not None and not self._fresh_retry_used:
                log.warning("the stored conversation cannot be resumed (%s); starting a new one", reason)
                self.handle = None
                self.store.clear()
                self._fresh_retry_used = True
                return "fresh"
            raise LiveError(f"the Live service rejected the request (1007): {reason}", fatal=True)
        log.warning("Live connection closed (%s): %s; reconnecting", code, reason)
        return "retry"

    # Receiving ------------------------------------------------------------------------------------

    async def _receiver(self, session: Any) -> None:
        while True:
            async for msg in session.receive():
                self._handle_message(msg)

    def _handle_message(self, msg: types.LiveServerMessage) -> None:
        sc = msg.server_content
        if sc is not None:
            if sc.input_transcription is not None and sc.input_transcription.text:
                self.on_event(Transcript("user", sc.input_transcription.text,
                                         bool(sc.input_transcription.finished)))
            if sc.model_turn is not None and sc.model_turn.parts:
                for part in sc.model_turn.parts:
                    if part.inline_data is not None and part.inline_data.data:
                        if not self._generating:
                            self._answered = len(self._since_handle)
                        self._generating = True
                        self.on_event(ReplyAudio(part.inline_data.data))
            if sc.output_transcription is not None and sc.output_transcription.text:
                self.on_event(Transcript("model", sc.output_transcription.text,
                                         bool(sc.output_transcription.finished)))
            if sc.interrupted:
                self._generating = False
                self.on_event(Interrupted())
            if sc.generation_complete:
                self.on_event(GenerationComplete())
            if sc.turn_complete:
                self._generating = False
                self._covered = self._answered
                usage = msg.usage_metadata.model_dump(exclude_none=True) if msg.usage_metadata else {}
                self.on_event(TurnComplete(usage))
                if self._go_away_pending:
                    self._switch.set()
        if msg.tool_call is not None:
            if not self._generating:
                self._answered = len(self._since_handle)
            for call in msg.tool_call.function_calls or []:
                self._start_tool(call)
        if msg.tool_call_cancellation is not None:
            ids = tuple(msg.tool_call_cancellation.ids or ())
            for call_id in ids:
                task = self._tool_tasks.pop(call_id, None)
                if task is not None:
                    task.cancel()
            self.on_event(ToolCancelled(ids))
        if msg.session_resumption_update is not None:
            upd = msg.session_resumption_update
            if upd.resumable and upd.new_handle:
                self.handle = upd.new_handle
                while self._covered and self._since_handle:  # the turns this handle includes
                    self._forget_oldest()
                # fsync on an SD card can take 100 ms: never on the loop; one thread keeps the order.
                asyncio.get_running_loop().run_in_executor(self._io, self.store.save, upd.new_handle)
        if msg.go_away is not None:
            left = _duration(msg.go_away.time_left)
            self.stats.go_aways += 1
            self.on_event(GoAway(left))
            self._go_away_pending = True
            if not self._generating and not self._tool_tasks:
                self._switch.set()
            else:  # let the reply finish, but move before the server cuts us off
                margin = max(GO_AWAY_MARGIN_SECONDS, 2 * (self.stats.last_connect_seconds or 0.0))
                self._timers.append(asyncio.get_running_loop().call_later(
                    max(0.0, left - min(margin, left / 2)), self._switch.set))

    def _schedule_token_refresh(self) -> None:
        """Move to a new connection (resumed, with a fresh token) before the token expires."""
        source = self.token_source
        token = source.current if source is not None else None
        if source is None or token is None:
            return
        due = token.expires_at - source.settings.refresh_before_seconds - self.clock()
        self._timers.append(asyncio.get_running_loop().call_later(max(1.0, due), self._switch.set))

    def _redact(self, text: str) -> str:
        secrets = [self.cfg.api_key.get_secret_value()] if self.cfg.api_key is not None else []
        if self.token_source is not None:
            secrets += self.token_source.secret_values
        for secret in secrets:
            if len(secret) >= 4:
                text = text.replace(secret, "**********")
        return text

    def _start_tool(self, call: types.FunctionCall) -> None:
        call_id, name = call.id or "", call.name or ""
        if not call_id:  # the answer needs the call's id; without it the SDK refuses to send one
            log.warning("the Live service called tool %r without an id; ignored", name)
            return
        args = dict(call.args or {})
        self.on_event(ToolCall(call_id, name, args))

        async def run() -> None:
            try:
                result = await self.tools.call(name, args)
            finally:
                self._tool_tasks.pop(call_id, None)
            scheduling = self.tools.scheduling(name) if options_for(self.live.model).non_blocking_tools else None
            response = types.FunctionResponse(id=call_id or None, name=name, response=result,
                                              scheduling=scheduling)
            self._put("tool_response", [response])
            self.on_event(ToolResult(call_id, name, result))
            if self._go_away_pending and not self._generating and not self._tool_tasks:
                self._switch.set()

        self._tool_tasks[call_id] = asyncio.create_task(run(), name=f"tool-{name}")


def model_accepts_non_blocking(model: str) -> bool:
    return options_for(model).non_blocking_tools
