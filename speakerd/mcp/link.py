"""One MCP server's connection: opened on first use, reused while it works, dropped on failure.

Why this shape, for months of uptime: a session kept forever goes stale without telling anyone
(Home Assistant restarts for an update, a stateful server expires idle sessions, a stdio server
dies), and the first call after that would fail. Opening one per call would cost a process start
for a stdio server and a handshake per call over HTTP. So a connection is kept while a
conversation uses it, closed after ``idle_seconds`` unused, and dropped at once on any failure or
timeout; the next use opens a new one (re-reading the token). Nothing is retried behind the
model's back: a call that failed may have acted, so the model is told and decides.

The SDK's transports are anyio task groups that must be entered and left by one task, so each
connection is owned by a task of its own; callers only borrow the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from speakerd.mcp.settings import McpServerSettings

if TYPE_CHECKING:
    from mcp import Client

log = logging.getLogger("speakerd.mcp")

CLOSE_TIMEOUT = 5.0


class McpUnavailable(Exception):
    """The server cannot be used right now; the message is one line for the log and the model."""


def read_token(name: str, env: dict[str, str] | None = None) -> str:
    """The bearer token from systemd's credential directory (LoadCredential=), never the TOML."""
    env = dict(os.environ) if env is None else env
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise McpUnavailable(f"credential {name!r} not found: $CREDENTIALS_DIRECTORY is not set "
                             f"(add LoadCredential={name}:... to the unit)")
    try:
        token = (Path(directory) / name).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise McpUnavailable(f"credential {name!r} not found in $CREDENTIALS_DIRECTORY") from None
    except (OSError, UnicodeDecodeError) as e:
        raise McpUnavailable(f"credential {name!r}: cannot read ({type(e).__name__})") from None
    if not token:
        raise McpUnavailable(f"credential {name!r} is empty")
    return token


def leaf(e: BaseException) -> BaseException:
    """The first real error inside anyio's exception groups."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


class Link:
    """Borrow the client with ``use()``; ``drop()`` after a failure; ``close()`` at the end."""

    def __init__(self, settings: McpServerSettings, *, env: dict[str, str] | None = None,
                 on_secret: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self._env = env
        self._on_secret = on_secret
        self._lock = asyncio.Lock()
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._closing = False
        self._busy = 0
        self._last_used = 0.0
        self._old: set[asyncio.Task[None]] = set()
        self.last_status: int | None = None  # the last HTTP status seen: 401/403 mean a bad token

    @asynccontextmanager
    async def use(self) -> AsyncIterator[Client]:
        client = await self._get()
        try:
            yield client
        finally:
            self._busy -= 1
            self._last_used = asyncio.get_running_loop().time()
            if self._busy == 0 and self.settings.idle_seconds == 0:  # one connection per use
                self._closing = True
                self._stop.set()

    async def _get(self) -> Client:
        async with self._lock:
            self._busy += 1  # before opening: the owner must not see an idle connection and close it
            if self._client is None or self._closing or self._owner is None or self._owner.done():
                self.drop()
                try:
                    self._client = await self._open()
                except BaseException:
                    self._busy -= 1
                    raise
            return self._client

    async def _open(self) -> Client:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Client] = loop.create_future()
        self._stop = stop = asyncio.Event()
        self._closing = False
        self._last_used = loop.time()
        self._owner = owner = asyncio.create_task(self._own(ready, stop), name=f"mcp-{self.settings.name}")
        try:
            return await ready
        except BaseException:
            owner.cancel()
            self._retire(owner)
            self._owner = None
            raise

    async def _own(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with self._connect() as client:
                if ready.done():
                    return
                ready.set_result(client)
                idle = self.settings.idle_seconds
                while not stop.is_set():
                    left = self._last_used + idle - loop.time()
                    if self._busy == 0 and left <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), max(left, 0.5))
                if self._owner is asyncio.current_task():
                    self._closing = True
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except BaseException as e:  # the transport's task group: report, never escape the task
            if not ready.done():
                ready.set_exception(leaf(e))
            else:
                log.debug("mcp server %s: connection ended: %r", self.settings.name, leaf(e))

    def _connect(self) -> AbstractAsyncContextManager[Client]:
        """The SDK client for this server (imported here: the SDK costs ~28 MiB and ~1 s to load)."""
        from mcp import Client, StdioServerParameters

        s = self.settings
        if s.command is not None:
            env = {}
            if self._env_get("CREDENTIALS_DIRECTORY"):  # a stdio server may read its own credentials
                env["CREDENTIALS_DIRECTORY"] = self._env_get("CREDENTIALS_DIRECTORY") or ""
            params = StdioServerParameters(command=s.command[0], args=s.command[1:], env=env)
            return Client(params, cache=None)
        return self._http_client()

    @asynccontextmanager
    async def _http_client(self) -> AsyncIterator[Client]:
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        s = self.settings
        assert s.url is not None
        headers = {}
        if s.token_credential is not None:
            token = read_token(s.token_credential, self._env)
            if self._on_secret is not None:
                self._on_secret(token)
            headers["Authorization"] = f"Bearer {token}"

        async def seen(response: httpx2.Response) -> None:
            self.last_status = response.status_code

        timeout = httpx2.Timeout(s.timeout_seconds, read=max(s.timeout_seconds, 60.0))
        async with httpx2.AsyncClient(headers=headers, timeout=timeout,
                                      event_hooks={"response": [seen]}) as http:
            transport = streamable_http_client(s.url, http_client=http,
                                               max_sse_event_size=max(4 * s.max_output_bytes, 1 << 20))
            async with Client(transport, cache=None) as client:
                yield client

    def _env_get(self, key: str) -> str | None:
        return (os.environ if self._env is None else self._env).get(key)

    @property
    def idle(self) -> bool:
        """No connection open and none still closing."""
        return self._owner is None and not self._old

    def drop(self) -> None:
        """Forget the connection (it failed, or the settings changed); it closes in the background."""
        self._client = None
        self._stop.set()
        if self._owner is not None:
            self._retire(self._owner)
            self._owner = None

    def _retire(self, task: asyncio.Task[None]) -> None:
        if not task.done():
            self._old.add(task)
            task.add_done_callback(self._old.discard)

    async def close(self) -> None:
        """Close the connection and wait (bounded) for what was closing already."""
        self.drop()
        tasks = set(self._old)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)

    def describe(self, e: BaseException) -> str:
        """One line about a failure, naming a refused token without showing it."""
        e = leaf(e)
        s = self.settings
        if self.last_status in (401, 403) and s.token_credential is not None:
            return (f"{s.where} refused the token from credential {s.token_credential!r} "
                    f"(HTTP {self.last_status}); check it is a valid long-lived access token")
        if isinstance(e, McpUnavailable):
            return str(e)
        if isinstance(e, TimeoutError):
            return f"{s.where} did not answer within {s.timeout_seconds:g} s"
        detail = str(e).splitlines()[0][:200] if str(e) else ""
        return f"{s.where} is unreachable ({type(e).__name__}{': ' + detail if detail else ''})"
