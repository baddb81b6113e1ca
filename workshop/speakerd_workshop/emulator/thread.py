"""The emulator on its own loop in a background thread, for tests, benchmarks and the demo."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from google.genai import types

from speakerd_workshop.emulator.faults import (
    AUDIO_LIMIT_SECONDS,
    AUDIO_VIDEO_LIMIT_SECONDS,
    GO_AWAY_BEFORE_SECONDS,
    LIFETIME_SECONDS,
)
from speakerd_workshop.emulator.scenario import Scenario
from speakerd_workshop.emulator.server import (
    ConnectionInfo,
    Emulator,
    Fault,
    IssuedToken,
    Received,
    ServerEvent,
)


class EmulatorThread:
    """Runs an :class:`Emulator` on 127.0.0.1 with a free port; reads are safe from any thread."""

    def __init__(
        self,
        scenario: Scenario | Path | None = None,
        api_key: str = "test-key",
        *,
        cert_dir: Path | None = None,
        handle_validity_seconds: float = 7200,
        connection_lifetime_seconds: float | None = LIFETIME_SECONDS,
        go_away_before_seconds: float = GO_AWAY_BEFORE_SECONDS,
        pace: float = 1.0,
        reply_delay_seconds: float = 0.0,
        port: int = 0,
        audio_limit_seconds: float | None = AUDIO_LIMIT_SECONDS,
        audio_video_limit_seconds: float | None = AUDIO_VIDEO_LIMIT_SECONDS,
        vad: str = "energy",
    ) -> None:
        self.emulator = Emulator(
            scenario,
            api_key,
            port=port,
            cert_dir=cert_dir,
            handle_validity_seconds=handle_validity_seconds,
            connection_lifetime_seconds=connection_lifetime_seconds,
            go_away_before_seconds=go_away_before_seconds,
            pace=pace,
            reply_delay_seconds=reply_delay_seconds,
            audio_limit_seconds=audio_limit_seconds,
            audio_video_limit_seconds=audio_video_limit_seconds,
            vad=vad,
        )
        self.api_key = api_key
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    def start(self) -> EmulatorThread:
        started: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                self._stopped = asyncio.Event()
                try:
                    await self.emulator.start()
                except BaseException as e:
                    started.set_exception(e)
                    return
                started.set_result(None)
                await self._stopped.wait()
                await self.emulator.stop()

            try:
                loop.run_until_complete(main())
                # Connection handlers still winding down: let them finish, not be destroyed.
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="live-emulator", daemon=True)
        self._thread.start()
        started.result(timeout=60)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- where and how to connect ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    @property
    def port(self) -> int:
        return self.emulator.port

    @property
    def ca_file(self) -> Path:
        return self.emulator.ca_file

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def http_options(self, api_version: str = "v1beta") -> types.HttpOptions:
        """Options pointing the SDK here: the WebSocket takes ``ssl``, httpx (tokens) takes ``verify``."""
        ctx = self.ssl_context()
        return types.HttpOptions(
            base_url=self.base_url,
            api_version=api_version,
            async_client_args={"ssl": ctx, "verify": ctx},
            client_args={"verify": ctx},
        )

    def env(self, api_version: str = "v1beta") -> dict[str, str]:
        """Environment for a process that builds ``genai.Client()`` with no arguments."""
        return {
            "GEMINI_API_KEY": self.api_key,
            "GOOGLE_GEMINI_BASE_URL": self.base_url,
            "GOOGLE_GENAI_API_VERSION": api_version,
            "SSL_CERT_FILE": str(self.ca_file),
            "SPEAKERD_LIVE__ENDPOINT": self.base_url,
            "SPEAKERD_LIVE__CA_FILE": str(self.ca_file),
            "SPEAKERD_LIVE__API_VERSION": api_version,
        }

    # ---- what happened ---------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        return self.emulator.received

    def received_audio(self, connection: int | None = None) -> bytes:
        return self.emulator.received_audio(connection)

    def received_video(self, connection: int | None = None) -> list[tuple[float, bytes]]:
        """Image frames received, each with its arrival time (``time.monotonic()``)."""
        return self.emulator.received_video(connection)

    @property
    def connections(self) -> list[ConnectionInfo]:
        return self.emulator.connections

    @property
    def events(self) -> list[ServerEvent]:
        return self.emulator.events

    @property
    def tokens(self) -> list[IssuedToken]:
        return self.emulator.tokens

    def messages(self, key: str, connection: int | None = None) -> list[dict[str, Any]]:
        """Bodies of received messages with top-level ``key`` (e.g. "toolResponse")."""
        return [
            r.message[key]
            for r in self.received
            if key in r.message and (connection is None or r.connection == connection)
        ]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Block until ``predicate()`` is truthy (re-checked on every change); return its value."""
        deadline = time.monotonic() + timeout
        cond = self.emulator.cond
        with cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"emulator condition not met within {timeout:g} s")
                cond.wait(min(left, 0.25))

    def inject(self, fault: Fault) -> None:
        """Arm or fire a fault on the emulator's loop (see :class:`Fault`)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the emulator is not started")
        fut = asyncio.run_coroutine_threadsafe(self._inject(fault), loop)
        fut.result(timeout=10)

    async def _inject(self, fault: Fault) -> None:
        self.emulator.inject(fault)
