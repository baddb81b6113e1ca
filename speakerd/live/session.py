"""One conversation with the Gemini Live API, kept alive across goAways, drops and restarts.

The parts: :mod:`outbox` (ordered input and its replay log), :mod:`policy` (what a close code
means, backoff, figures), :mod:`dispatch` (server messages into events, tools), :mod:`watchdog`
(no reply while one is due), :mod:`connection` (one WebSocket) and :mod:`loop` (the connection
loop). This module is what the daemon calls, and the callbacks the parts share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.genai import types

from speakerd.config import Config
from speakerd.events import LiveEvent, ResponseStalled, SessionState
from speakerd.live.connect_config import options_for
from speakerd.live.connection import Connector
from speakerd.live.dispatch import Dispatcher
from speakerd.live.loop import ConnectionLoop
from speakerd.live.outbox import Outbox
from speakerd.live.policy import ClosePolicy, LiveError, SessionStats
from speakerd.live.store import ResumptionStore
from speakerd.live.tokens import TokenSource, load_device_secret
from speakerd.live.tools import ToolRegistry
from speakerd.live.watchdog import DEFAULT_RESPONSE_TIMEOUT_SECONDS, ResponseWatchdog

__all__ = ["LiveError", "LiveSession", "SessionStats", "model_accepts_non_blocking"]

log = logging.getLogger("speakerd.live")


class LiveSession(ConnectionLoop):
    """The daemon's handle on one conversation: what it sends, and the events it gets back."""

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
        self._on_event = on_event
        self.store = store
        self.tools = tools
        self.push_to_talk = config.settings.gpio.push_to_talk if push_to_talk is None else push_to_talk
        self.token_source = token_source
        token_error: LiveError | None = None
        if token_source is None and self.live.token_broker.url:
            secret = load_device_secret()
            if secret is None:
                token_error = LiveError(
                    "live.token_broker.url is set but there is no device secret (credential "
                    "speakerd-device-secret or SPEAKERD_DEVICE_SECRET)", fatal=True)
            else:
                self.token_source = TokenSource(self.live.token_broker, secret, clock=clock)
        self.connector = Connector(config, self.token_source, token_error, http_options)
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

    def status(self) -> dict[str, object]:
        """The connection's figures for ``speakerctl status`` (close codes, backoffs, stalls)."""
        return self.stats.status()

    def interrupt(self) -> None:
        """The person stopped the reply (the button): tell the service too, where the model allows
        it, so the unheard rest of the reply does not stay in the conversation's context."""
        if options_for(self.live.model).client_interrupt:
            self.outbox.put("interrupt", None)

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

    def on_event(self, event: LiveEvent) -> None:
        """Hand ``event`` to the daemon. A handler that raises is a daemon bug: logged, and the
        connection goes on (the receive task must not die of it, nor a watchdog timer)."""
        try:
            self._on_event(event)
        except Exception:
            log.exception("handling the Live event %s failed", type(event).__name__)

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


def model_accepts_non_blocking(model: str) -> bool:
    return options_for(model).non_blocking_tools

