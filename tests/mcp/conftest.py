"""A real MCP server process (tests/mcp/server.py) over streamable HTTP with a bearer token, or stdio."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speakerd.mcp import McpServerSettings

SERVER = Path(__file__).with_name("server.py")
TOKEN = "test-ha-long-lived-token-0123456789"


class HttpServer:
    """The test server as a subprocess on 127.0.0.1; ``kill`` and ``start`` again on the same port."""

    def __init__(self, tmp: Path, token: str = TOKEN, *, json_response: bool = False) -> None:
        self.json_response = json_response
        self.record = tmp / "calls.jsonl"
        self.token_file = tmp / "server-token"
        self.token_file.write_text(token)
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "http", "--record", str(self.record), "--port", str(self.port),
             "--token-file", str(self.token_file), *(["--json-response"] if self.json_response else [])],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            self.kill()
            raise RuntimeError(f"the test MCP server did not start (said {line!r})")
        self.port = int(line)
        _wait_port(self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/mcp"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def calls(self) -> list[dict[str, Any]]:
        return read_calls(self.record)


def read_calls(record: Path) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


def _wait_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[HttpServer]:
    server = HttpServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def creds(tmp_path: Path) -> dict[str, str]:
    """A systemd-style credential directory holding the token, as the environment the daemon sees."""
    d = tmp_path / "credentials"
    d.mkdir()
    (d / "ha-token").write_text(TOKEN + "\n")
    (d / "ha-token").chmod(0o400)
    return {"CREDENTIALS_DIRECTORY": str(d)}


def http_settings(server: HttpServer, **kw: Any) -> McpServerSettings:
    return McpServerSettings(**{"name": "ha", "url": server.url, "token_credential": "ha-token", **kw})


def stdio_settings(record: Path, **kw: Any) -> McpServerSettings:
    return McpServerSettings(**{"name": "local", "command": [sys.executable, str(SERVER), "stdio",
                                                              "--record", str(record)], **kw})
