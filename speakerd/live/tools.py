"""Tools the model may call: built-ins and the owner's own commands or HTTP requests.

Why so strict: the model's arguments are untrusted input arriving over the network. Every tool is
declared by the owner, every argument is checked against its JSON schema, commands run without a
shell with arguments as data, each call has a timeout and its output is capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import re
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.genai import types

from speakerd.config import CommandTool, ToolsSettings

log = logging.getLogger("speakerd.tools")

Handler = Callable[..., Awaitable[dict[str, Any]]]


class ToolArgumentError(ValueError):
    """Arguments that do not match the tool's schema; the model is told, nothing runs."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    non_blocking: bool = False
    scheduling: str = "when_idle"


BUILTIN_SPECS: dict[str, ToolSpec] = {
    "set_volume": ToolSpec(
        "set_volume",
        "Set the speaker volume, from 0 (silent) to 100 (loudest).",
        {"type": "object", "properties": {"level": {"type": "integer", "minimum": 0, "maximum": 100}},
         "required": ["level"]},
    ),
    "end_conversation": ToolSpec(
        "end_conversation",
        "End the conversation when the user says goodbye or asks you to stop listening.",
        {"type": "object", "properties": {}},
    ),
    "forget_conversation": ToolSpec(
        "forget_conversation",
        "Forget this conversation when the user asks you to: it ends after this reply and the next "
        "one starts with no memory of it.",
        {"type": "object", "properties": {}},
    ),
    "current_time": ToolSpec(
        "current_time",
        "The current local date, time and time zone of the speaker.",
        {"type": "object", "properties": {}},
    ),
}


def validate(schema: dict[str, Any], value: Any, where: str = "arguments") -> None:
    """The subset of JSON Schema that tool declarations use; raises ToolArgumentError."""
    kind = schema.get("type")
    checks: dict[str, Callable[[Any], bool]] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer()),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if isinstance(kind, str) and kind in checks and not checks[kind](value):
        raise ToolArgumentError(f"{where}: expected {kind}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise ToolArgumentError(f"{where}: must be one of {schema['enum']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ToolArgumentError(f"{where}: must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ToolArgumentError(f"{where}: must be <= {schema['maximum']}")
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise ToolArgumentError(f"{where}: longer than {schema['maxLength']} characters")
        if "\0" in value:
            raise ToolArgumentError(f"{where}: contains a NUL character")
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise ToolArgumentError(f"{where}: missing {name!r}")
        for name, item in value.items():
            if name in props:
                validate(props[name], item, f"{where}.{name}")
            elif schema.get("additionalProperties", False) is False:
                raise ToolArgumentError(f"{where}: unexpected {name!r}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            validate(schema["items"], item, f"{where}[{i}]")


def _cap(data: bytes, limit: int) -> str:
    text = data[:limit].decode("utf-8", errors="replace")
    return text + (" [output cut]" if len(data) > limit else "")


class ToolRegistry:
    """Declarations for the setup message, and the runner for the calls that come back."""

    def __init__(self, settings: ToolsSettings, handlers: Mapping[str, Handler],
                 extra: Mapping[str, tuple[ToolSpec, Handler]] | None = None) -> None:
        self.specs: dict[str, ToolSpec] = {}
        self._handlers: dict[str, Handler] = {}
        self._commands: dict[str, CommandTool] = {}
        for name in settings.builtin:
            if name == "current_time":
                self._add(BUILTIN_SPECS[name], _current_time)
            elif name in handlers:
                self._add(BUILTIN_SPECS[name], handlers[name])
        for cmd in settings.commands:
            spec = ToolSpec(cmd.name, cmd.description, cmd.parameters, cmd.non_blocking, cmd.scheduling)
            self.specs[cmd.name] = spec
            self._commands[cmd.name] = cmd
        for spec, handler in (extra or {}).values():
            self._add(spec, handler)

    def _add(self, spec: ToolSpec, handler: Handler) -> None:
        self.specs[spec.name] = spec
        self._handlers[spec.name] = handler

    def declarations(self, *, non_blocking_allowed: bool = True) -> list[types.FunctionDeclaration]:
        out = []
        for spec in self.specs.values():
            behavior = None
            if non_blocking_allowed:
                behavior = types.Behavior.NON_BLOCKING if spec.non_blocking else types.Behavior.BLOCKING
            out.append(types.FunctionDeclaration(
                name=spec.name, description=spec.description,
                parameters_json_schema=spec.parameters, behavior=behavior,
            ))
        return out

    def scheduling(self, name: str) -> types.FunctionResponseScheduling | None:
        spec = self.specs.get(name)
        if spec is None or not spec.non_blocking:
            return None
        return types.FunctionResponseScheduling(spec.scheduling.upper())

    async def call(self, name: str, args: dict[str, Any] | None) -> dict[str, Any]:
        """Run one call. Failures become an ``error`` the model can read; nothing propagates."""
        spec = self.specs.get(name)
        if spec is None:
            log.warning("the model called an undeclared tool %r; refused", name)
            return {"error": f"unknown tool {name}"}
        args = dict(args or {})
        try:
            validate(spec.parameters, args)
        except ToolArgumentError as e:
            log.warning("tool %s: refused the model's arguments: %s", name, e)
            return {"error": f"invalid arguments: {e}"}
        try:
            if name in self._handlers:
                return await self._handlers[name](**args)
            return await self._run_command(self._commands[name], args)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.error("tool %s failed: %s: %s", name, type(e).__name__, e)
            return {"error": f"the tool failed ({type(e).__name__})"}

    async def _run_command(self, cmd: CommandTool, args: dict[str, Any]) -> dict[str, Any]:
        values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in args.items()}
        if cmd.argv:
            argv = [_substitute(part, values) for part in cmd.argv]
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )
            cap = cmd.max_output_bytes

            async def collect() -> bytes:
                # Keep at most cap + 1 bytes (to know it was cut); drain the rest so the tool ends.
                assert proc.stdout is not None
                data = bytearray()
                while chunk := await proc.stdout.read(65536):
                    if len(data) <= cap:
                        data += chunk[: cap + 1 - len(data)]
                await proc.wait()
                return bytes(data)

            try:
                out = await asyncio.wait_for(collect(), cmd.timeout_seconds)
            except TimeoutError:
                _kill_group(proc)
                await proc.wait()
                return {"error": f"timed out after {cmd.timeout_seconds:g} s"}
            except asyncio.CancelledError:
                _kill_group(proc)
                raise
            return {"exit_code": proc.returncode, "output": _cap(out, cap)}
        import httpx

        url = cmd.url
        assert url is not None

        async def fetch() -> dict[str, Any]:
            async with httpx.AsyncClient(timeout=cmd.timeout_seconds, follow_redirects=False) as client:
                request = client.build_request(
                    cmd.method, url, params=values if cmd.method == "GET" else None,
                    json=args if cmd.method == "POST" else None)
                resp = await client.send(request, stream=True)
                body = bytearray()
                try:
                    async for chunk in resp.aiter_bytes():  # read no more than the cap (plus one chunk)
                        body += chunk
                        if len(body) > cmd.max_output_bytes:
                            break
                finally:
                    await resp.aclose()
                return {"status": resp.status_code, "output": _cap(bytes(body), cmd.max_output_bytes)}

        try:
            return await asyncio.wait_for(fetch(), cmd.timeout_seconds)
        except (httpx.TimeoutException, TimeoutError):
            return {"error": f"timed out after {cmd.timeout_seconds:g} s"}
        except httpx.HTTPError as e:
            return {"error": f"request failed ({type(e).__name__})"}


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """The tool runs in its own session: end it and whatever it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _substitute(part: str, values: Mapping[str, str]) -> str:
    """"{name}" placeholders take the argument's value as data; no shell ever sees it."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m[1], m[0]), part)


async def _current_time() -> dict[str, Any]:
    now = dt.datetime.now().astimezone()
    return {"time": now.strftime("%H:%M"), "date": now.strftime("%A %d %B %Y"),
            "timezone": now.tzname() or ""}
