"""Tools from MCP servers offered to the model: listed at start and on reload, called on demand.

Why a ToolProvider: the daemon asks its providers for tools before every session, so a server
that comes back joins the next conversation, and one that is down never blocks the others.
Every call is checked against the converted schema before it leaves the speaker, bounded by the
server's timeout, capped in size, and answered with ``{"error": ...}`` when anything fails:
the model always gets exactly one answer it can read aloud.
"""

from __future__ import annotations

import asyncio
import fnmatch
import importlib
import json
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from speakerd.live.tools import Handler, ToolArgumentError, ToolSpec, validate
from speakerd.mcp.link import Link, leaf
from speakerd.mcp.schema import NAME, SchemaNotSupported, to_live
from speakerd.mcp.settings import McpServerSettings

if TYPE_CHECKING:
    from mcp.types import CallToolResult, Tool

log = logging.getLogger("speakerd.mcp")

RETRY_SECONDS = 60.0  # a server that was down is listed again at most this often
MAX_DESCRIPTION = 1024
MAX_PAGES = 20


@dataclass
class _Server:
    settings: McpServerSettings
    link: Link
    tools: dict[str, tuple[ToolSpec, Handler]] = field(default_factory=dict)
    up: bool | None = None  # None: never listed
    last_try: float = float("-inf")
    listing: bool = False
    warned: set[str] = field(default_factory=set)  # tools left out: said once per configuration

    def warn_once(self, tool: str, message: str, *args: Any) -> None:
        if tool not in self.warned:
            self.warned.add(tool)
            log.warning(message, *args)


class McpTools:
    """``tools()`` for the daemon's ``tool_providers``; ``refresh``/``reconfigure``/``close`` on its loop."""

    def __init__(self, servers: Sequence[McpServerSettings] = (), *, env: dict[str, str] | None = None,
                 on_secret: Callable[[str], None] | None = None, on_change: Callable[[], None] | None = None,
                 retry_seconds: float = RETRY_SECONDS) -> None:
        self._env = env
        self._on_change = on_change  # the offer changed: rebuild the registry for the next session
        self._on_secret = on_secret
        self._retry_seconds = retry_seconds
        self._servers: dict[str, _Server] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._retired: list[Link] = []  # links of servers removed or changed by a reload
        self._settings: tuple[McpServerSettings, ...] = tuple(servers)

    # What the daemon calls ---------------------------------------------------------------------------

    def tools(self) -> Mapping[str, tuple[ToolSpec, Handler]]:
        """The tools of every server that answered; retries the others in the background."""
        self._retry_due()
        out: dict[str, tuple[ToolSpec, Handler]] = {}
        for server in self._servers.values():
            out.update(server.tools)
        return out

    async def refresh(self) -> None:
        """List every server's tools again, concurrently, each bounded by its own timeout."""
        self._sync_servers()
        if self._servers:
            await load_sdk()
        await asyncio.gather(*(self._list(s) for s in self._servers.values()))

    async def reconfigure(self, servers: Sequence[McpServerSettings]) -> None:
        """New settings (a reload): connections whose settings changed are closed, then all relisted."""
        self._settings = tuple(servers)
        await self.refresh()

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(self._background, timeout=5.0)
        links = [s.link for s in self._servers.values()] + self._retired
        await asyncio.gather(*(link.close() for link in links))
        self._servers.clear()
        self._retired.clear()

    def status(self) -> dict[str, bool | None]:
        """Each server's last known state: True up, False down, None never listed."""
        return {name: s.up for name, s in self._servers.items()}

    # Listing -----------------------------------------------------------------------------------------

    def _sync_servers(self) -> None:
        wanted = {s.name: s for s in self._settings}
        self._retired = [link for link in self._retired if not link.idle]
        for name, server in list(self._servers.items()):
            if wanted.get(name) != server.settings:
                server.link.drop()  # closes in the background; close() waits for it
                self._retired.append(server.link)
                del self._servers[name]
                self._replace(server, {})
        for name, settings in wanted.items():
            if name not in self._servers:
                link = Link(settings, env=self._env, on_secret=self._on_secret)
                self._servers[name] = _Server(settings, link)

    def _retry_due(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for server in self._servers.values():
            if server.up is False and not server.listing and loop.time() - server.last_try >= self._retry_seconds:
                server.last_try = loop.time()
                self._spawn(self._list(server))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _list(self, server: _Server) -> None:
        s = server.settings
        server.last_try = asyncio.get_running_loop().time()
        server.listing = True
        await load_sdk()
        try:
            async with asyncio.timeout(s.timeout_seconds), server.link.use() as client:
                listed: list[Tool] = []
                cursor: str | None = None
                for _ in range(MAX_PAGES):
                    page = await client.list_tools(cursor=cursor)
                    listed.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
        except asyncio.CancelledError:
            server.listing = False
            raise
        except BaseException as e:
            server.link.drop()
            server.listing = False
            if server.up is not False:  # one warning when it goes down, not one per retry
                log.warning("mcp server %s: %s; its tools are left out until it answers",
                            s.name, server.link.describe(e))
            server.up = False
            self._replace(server, {})
            return
        server.listing = False
        if server.up is False:
            log.info("mcp server %s answers again", s.name)
        server.up = True
        self._replace(server, self._declare(server, listed))
        log.info("mcp server %s: %d tool(s) offered: %s", s.name, len(server.tools),
                 ", ".join(server.tools) or "none")

    def _replace(self, server: _Server, tools: dict[str, tuple[ToolSpec, Handler]]) -> None:
        changed = {n: spec for n, (spec, _) in tools.items()} != {n: spec for n, (spec, _) in server.tools.items()}
        server.tools = tools
        if changed and self._on_change is not None:
            self._on_change()

    def _declare(self, server: _Server, listed: Sequence[Tool]) -> dict[str, tuple[ToolSpec, Handler]]:
        s = server.settings
        out: dict[str, tuple[ToolSpec, Handler]] = {}
        for tool in listed:
            if not _allowed(tool.name, s):
                continue
            live_name = f"{s.name}__{re.sub(r'[^a-zA-Z0-9_]', '_', tool.name)}"
            if not NAME.match(live_name):
                server.warn_once(tool.name, "mcp server %s: tool %r left out: its name %r is not a valid Live "
                                 "name", s.name, tool.name, live_name)
                continue
            if live_name in out:
                server.warn_once(tool.name, "mcp server %s: tool %r left out: %r is already declared", s.name,
                                 tool.name, live_name)
                continue
            try:
                parameters = to_live(tool.input_schema)
            except SchemaNotSupported as e:
                server.warn_once(tool.name, "mcp server %s: tool %r left out: its schema cannot be declared to "
                                 "Live: %s", s.name, tool.name, e)
                continue
            description = (tool.description or tool.title or tool.name).strip()[:MAX_DESCRIPTION]
            spec = ToolSpec(live_name, description, parameters)
            out[live_name] = (spec, self._handler(server, tool.name, spec))
        return out

    # Calling -----------------------------------------------------------------------------------------

    def _handler(self, server: _Server, tool_name: str, spec: ToolSpec) -> Handler:
        async def call(**args: Any) -> dict[str, Any]:
            return await self._call(server, tool_name, spec, args)

        return call

    async def _call(self, server: _Server, tool_name: str, spec: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
        s = server.settings
        try:
            validate(spec.parameters, args)
        except ToolArgumentError as e:
            log.warning("tool %s: refused the model's arguments: %s", spec.name, e)
            return {"error": f"invalid arguments: {e}"}
        await load_sdk()
        try:
            async with asyncio.timeout(s.timeout_seconds), server.link.use() as client:
                result = await client.call_tool(tool_name, args)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            server.link.drop()
            reason = server.link.describe(e)
            log.warning("tool %s: %s", spec.name, reason)
            if isinstance(leaf(e), TimeoutError):
                return {"error": f"{s.name} did not answer within {s.timeout_seconds:g} seconds"}
            if refused(leaf(e)):
                return {"error": f"{s.name} refused the call: {str(getattr(leaf(e), 'message', ''))[:200]}"}
            return {"error": f"{s.name} is not reachable right now ({type(leaf(e)).__name__})"}
        return answer(result, s.max_output_bytes)


async def load_sdk() -> None:
    """Import the SDK on a worker thread: ~1 s here, more on a Pi, must neither block the loop
    (the voice path) nor count against a server's timeout."""
    if "mcp.client.streamable_http" not in sys.modules:
        await asyncio.to_thread(importlib.import_module, "mcp.client.streamable_http")
        # One line per HTTP request at INFO, and the SDK's own view of failures we already report.
        for noisy in ("httpx2", "httpcore2", "mcp", "client"):
            logger = logging.getLogger(noisy)
            logger.setLevel(max(logging.ERROR, logging.getLogger().level, logger.level))


# What the SDK itself reports when the connection, not the server, failed (see its transports).
_TRANSPORT_CODES = (-32000, -32001)  # CONNECTION_CLOSED, REQUEST_TIMEOUT
_TRANSPORT_MESSAGES = ("Server returned an error response", "Session terminated", "Not Found")


def refused(e: BaseException) -> bool:
    """A JSON-RPC error the server itself sent: it is up and said no (unknown area, bad value)."""
    from mcp import MCPError

    return (isinstance(e, MCPError) and e.code not in _TRANSPORT_CODES
            and not e.message.startswith(_TRANSPORT_MESSAGES))


def _allowed(name: str, s: McpServerSettings) -> bool:
    return (any(fnmatch.fnmatchcase(name, p) for p in s.allow)
            and not any(fnmatch.fnmatchcase(name, p) for p in s.deny))


def answer(result: CallToolResult, cap: int) -> dict[str, Any]:
    """The result as the model reads it: its text, capped; ``error`` when the tool says it failed."""
    texts: list[str] = []
    skipped = 0
    for part in result.content:
        if part.type == "text":
            texts.append(part.text)
        else:
            skipped += 1
    text = "\n".join(texts)
    if not text and result.structured_content is not None:
        text = json.dumps(result.structured_content, ensure_ascii=False)
    data = text.encode("utf-8")
    out = data[:cap].decode("utf-8", errors="ignore") + (" [output cut]" if len(data) > cap else "")
    if skipped:
        out += f" [{skipped} non-text part(s) left out]"
    if result.is_error:
        return {"error": out or "the tool failed"}
    return {"output": out}
