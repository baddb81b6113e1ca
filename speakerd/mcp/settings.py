"""``[[tools.mcp]]``: one MCP server whose tools the model may call.

Why these keys: a server is reached either over streamable HTTP (Home Assistant's MCP Server
integration at ``http://HOST:8123/api/mcp``) with a bearer token that lives in a systemd
credential, never in the TOML file or a log, or as a local command speaking stdio. The owner
decides which of its tools the model sees (``allow``/``deny`` globs), and every call is bounded
in time and in the size of what comes back.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator


class McpServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The namespace: tools are declared to the model as "<name>__<tool>" (e.g. ha__HassTurnOn).
    name: Annotated[str, Field(pattern=r"^[a-zA-Z](?:_?[a-zA-Z0-9])*$", max_length=20)]
    url: str | None = None  # streamable HTTP endpoint, http:// or https://
    token_credential: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] | None = None
    command: list[str] | None = None  # argv of a local server speaking MCP on stdin/stdout; no shell
    allow: list[str] = ["*"]  # glob patterns over the server's own tool names
    deny: list[str] = []
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0  # connect + list, or one call
    max_output_bytes: Annotated[int, Field(gt=0, le=1_000_000)] = 4096
    idle_seconds: Annotated[float, Field(ge=0, le=3600)] = 60.0  # close an unused connection after this

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSettings:
        if (self.url is None) == (self.command is None):
            raise ValueError(f"mcp server {self.name!r} needs exactly one of url or command")
        if self.command is not None and not self.command:
            raise ValueError(f"mcp server {self.name!r}: command must not be empty")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"mcp server {self.name!r}: url must be http:// or https://HOST/...")
            if parts.username or parts.password:
                raise ValueError(f"mcp server {self.name!r}: no credentials in the url; use token_credential")
        if self.token_credential is not None and self.url is None:
            raise ValueError(f"mcp server {self.name!r}: token_credential is for a url server")
        return self

    @property
    def where(self) -> str:
        """The server's address for log lines (never a secret: a url cannot carry one)."""
        return self.url if self.url is not None else " ".join(self.command or [])
