"""A real MCP server for the tests, built with the ``mcp`` SDK: streamable HTTP or stdio.

Run as a script (``python server.py http --token-file F --record R`` or ``... stdio --record R``).
Over HTTP it checks a bearer token like Home Assistant does and prints its port on the first line.
Every call is appended to the record file as one JSON line, so a test can see what really arrived.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from starlette.types import ASGIApp, Receive, Scope, Send


def build(record: Path) -> MCPServer:
    server = MCPServer("test-home")

    def note(tool: str, **args: Any) -> None:
        with record.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"tool": tool, "args": args}) + "\n")

    @server.tool(name="HassTurnOn", description="Turns on a device or entity by its name.")
    def hass_turn_on(name: str, area: str | None = None) -> str:
        note("HassTurnOn", name=name, area=area)
        return f"Turned on {name}" + (f" in the {area}" if area else "")

    @server.tool(description="Sets a light's brightness in percent.")
    def light_set(name: str, brightness: int) -> str:
        note("light_set", name=name, brightness=brightness)
        return f"{name} at {brightness}%"

    @server.tool(description="Takes its time.")
    async def slow(seconds: float) -> str:
        note("slow", seconds=seconds)
        await anyio.sleep(seconds)
        return "finally"

    @server.tool(description="Always fails.")
    def broken() -> str:
        note("broken")
        raise ToolError("the light bulb is unreachable")

    @server.tool(description="Refused by the server itself, as a protocol error.")
    def refuse(area: str) -> str:
        note("refuse", area=area)
        raise MCPError(-32602, f"no area called {area}")

    @server.tool(description="Says a lot.")
    def chatty() -> str:
        note("chatty")
        return "blah " * 4000

    @server.tool(description="Takes a number or a word: a union Live cannot declare.")
    def either(target: int | str) -> str:
        note("either", target=target)
        return str(target)

    @server.tool(description="The server's process id.")
    def pid() -> str:
        return str(os.getpid())

    @server.tool(description="Unlocks the front door.")
    def unlock_door() -> str:
        note("unlock_door")
        return "unlocked"

    return server


class BearerCheck:
    """Refuse every request without the right ``Authorization: Bearer`` header (401)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != self.expected:
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"401: Unauthorized"})
            return
        await self.app(scope, receive, send)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("transport", choices=["http", "stdio"])
    ap.add_argument("--record", type=Path, required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token-file", type=Path)
    ap.add_argument("--json-response", action="store_true", help="answer with JSON, as Home Assistant does")
    a = ap.parse_args()
    server = build(a.record)
    if a.transport == "stdio":
        server.run("stdio")
        return
    token = a.token_file.read_text().strip() if a.token_file else ""
    app = BearerCheck(server.streamable_http_app(streamable_http_path="/api/mcp",
                                                          json_response=a.json_response), token)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", a.port))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
