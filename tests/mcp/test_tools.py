"""McpTools against a real MCP server (the SDK's MCPServer) over streamable HTTP and over stdio."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from speakerd.config import ToolsSettings
from speakerd.live import ToolRegistry
from speakerd.mcp.tools import McpTools
from tests.mcp.conftest import TOKEN, HttpServer, http_settings, read_calls, stdio_settings

LIGHT = {"type": "object", "properties": {"name": {"type": "string"}, "area": {"type": "string"}},
         "required": ["name"]}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "speakerd.mcp"]


async def until(pred: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_http_tools_listed_declared_validated_and_called(
        http_server: HttpServer, creds: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    mcp = McpTools([http_settings(http_server)], env=creds)
    try:
        await mcp.refresh()
        tools = mcp.tools()
        assert set(tools) == {"ha__HassTurnOn", "ha__light_set", "ha__slow", "ha__broken", "ha__chatty",
                              "ha__unlock_door", "ha__refuse", "ha__pid"}
        spec, handler = tools["ha__HassTurnOn"]
        assert spec.parameters == LIGHT and spec.description == "Turns on a device or entity by its name."
        # The union tool is left out with one warning naming it; the others are untouched.
        assert [w for w in warnings(caplog) if "'either'" in w and "anyOf" in w]
        assert len(warnings(caplog)) == 1

        registry = ToolRegistry(ToolsSettings(builtin=[]), {}, extra=tools)
        names = [d.name for d in registry.declarations()]
        assert "ha__HassTurnOn" in names and "ha__either" not in names
        assert await registry.call("ha__HassTurnOn", {"name": "kitchen light", "area": "kitchen"}) == {
            "output": "Turned on kitchen light in the kitchen"}
        # Arguments that do not match the schema never leave the speaker.
        bad = await registry.call("ha__light_set", {"name": "desk", "brightness": "bright"})
        assert "invalid arguments" in bad["error"]
        assert "invalid arguments" in (await handler(name="x", colour="red"))["error"]
        assert http_server.calls() == [{"tool": "HassTurnOn", "args": {"name": "kitchen light", "area": "kitchen"}}]
        assert TOKEN not in caplog.text
    finally:
        await mcp.close()


@pytest.mark.slow
async def test_allow_and_deny_lists(http_server: HttpServer, creds: dict[str, str]) -> None:
    mcp = McpTools([http_settings(http_server, allow=["Hass*", "light_*", "unlock_*"], deny=["unlock_*"])],
                   env=creds)
    try:
        await mcp.refresh()
        assert set(mcp.tools()) == {"ha__HassTurnOn", "ha__light_set"}
    finally:
        await mcp.close()


@pytest.mark.slow
async def test_stdio_server_called_and_answered(tmp_path: Path) -> None:
    record = tmp_path / "stdio-calls.jsonl"
    mcp = McpTools([stdio_settings(record, allow=["light_set", "broken"])])
    try:
        await mcp.refresh()
        tools = mcp.tools()
        assert set(tools) == {"local__light_set", "local__broken"}
        _, light = tools["local__light_set"]
        assert await light(name="desk", brightness=40) == {"output": "desk at 40%"}
        assert await light(name="desk", brightness=70) == {"output": "desk at 70%"}  # the same process
        assert read_calls(record) == [{"tool": "light_set", "args": {"name": "desk", "brightness": 40}},
                                      {"tool": "light_set", "args": {"name": "desk", "brightness": 70}}]
    finally:
        await mcp.close()


@pytest.mark.slow
async def test_stdio_server_killed_mid_session_is_restarted(tmp_path: Path) -> None:
    mcp = McpTools([stdio_settings(tmp_path / "calls.jsonl", allow=["pid", "light_set"])])
    try:
        await mcp.refresh()
        _, pid = mcp.tools()["local__pid"]
        first = int((await pid())["output"])
        assert int((await pid())["output"]) == first  # one process, kept between calls
        os.kill(first, signal.SIGKILL)
        gone = await pid()
        assert gone["error"].startswith("local is not reachable right now"), gone
        second = int((await pid())["output"])
        assert second != first
        assert await mcp.tools()["local__light_set"][1](name="lamp", brightness=1) == {"output": "lamp at 1%"}
    finally:
        await mcp.close()
    await until(lambda: _gone(second))  # close() ended the server process


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"  # exited, not yet reaped


@pytest.mark.slow
async def test_slow_failing_and_chatty_tools_answer_clearly(http_server: HttpServer, creds: dict[str, str],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    mcp = McpTools([http_settings(http_server, timeout_seconds=1.5, max_output_bytes=100)], env=creds)
    try:
        await mcp.refresh()
        tools = mcp.tools()
        slow = await tools["ha__slow"][1](seconds=30)
        assert slow == {"error": "ha did not answer within 1.5 seconds"}
        assert any("did not answer within 1.5 s" in w for w in warnings(caplog))
        broken = await tools["ha__broken"][1]()
        assert "the light bulb is unreachable" in broken["error"]
        refused = await tools["ha__refuse"][1](area="attic")
        assert refused == {"error": "ha refused the call: no area called attic"}
        chatty = (await tools["ha__chatty"][1]())["output"]
        assert chatty.startswith("blah blah") and chatty.endswith(" [output cut]")
        assert len(chatty.encode()) <= 100 + len(" [output cut]")
        # After all that the server still works.
        assert await tools["ha__HassTurnOn"][1](name="lamp") == {"output": "Turned on lamp"}
    finally:
        await mcp.close()


@pytest.mark.slow
async def test_vanished_server_is_an_error_answer_then_recovers(http_server: HttpServer,
                                                               creds: dict[str, str]) -> None:
    mcp = McpTools([http_settings(http_server, timeout_seconds=5)], env=creds)
    try:
        await mcp.refresh()
        _, turn_on = mcp.tools()["ha__HassTurnOn"]
        assert await turn_on(name="hall") == {"output": "Turned on hall"}
        http_server.kill()
        gone = await turn_on(name="hall")
        assert gone["error"].startswith("ha is not reachable right now")
        http_server.start()  # the same port
        assert await turn_on(name="hall") == {"output": "Turned on hall"}
        assert [c["args"]["name"] for c in http_server.calls()] == ["hall", "hall"]
    finally:
        await mcp.close()


@pytest.mark.slow
async def test_wrong_token_is_one_clear_warning_and_other_servers_work(
        tmp_path: Path, http_server: HttpServer, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "wrong-creds"
    d.mkdir()
    (d / "ha-token").write_text("not-the-token-4711")
    record = tmp_path / "stdio-calls.jsonl"
    mcp = McpTools([http_settings(http_server), stdio_settings(record, allow=["light_set"])],
                   env={"CREDENTIALS_DIRECTORY": str(d)}, retry_seconds=0)
    try:
        await mcp.refresh()
        assert set(mcp.tools()) == {"local__light_set"}
        await until(lambda: mcp.status()["ha"] is False and not mcp._background)  # the retry ran
        mcp.tools()
        await until(lambda: not mcp._background)
        ws = warnings(caplog)
        assert len(ws) == 1, ws
        assert "refused the token from credential 'ha-token' (HTTP 401)" in ws[0]
        assert "not-the-token-4711" not in caplog.text
        assert await mcp.tools()["local__light_set"][1](name="desk", brightness=5) == {"output": "desk at 5%"}
    finally:
        await mcp.close()


@pytest.mark.slow
async def test_server_down_at_start_joins_when_it_answers(tmp_path: Path, creds: dict[str, str],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    server = HttpServer(tmp_path)
    server.start()
    server.kill()  # a known port with nobody listening
    changes: list[set[str]] = []
    mcp = McpTools([http_settings(server, timeout_seconds=3)], env=creds, retry_seconds=0,
                   on_change=lambda: changes.append(set(mcp.tools())))
    try:
        await mcp.refresh()
        assert changes == []
        assert mcp.tools() == {} or not mcp.tools()
        ws = warnings(caplog)
        assert len(ws) == 1 and "is unreachable" in ws[0] and "left out until it answers" in ws[0]
        server.start()
        await until(lambda: "ha__HassTurnOn" in mcp.tools())
        await until(lambda: not mcp._background)
        ws = warnings(caplog)
        assert len([w for w in ws if "unreachable" in w]) == 1
        assert len([w for w in ws if "'either' left out" in w]) == 1, ws  # said once, not per listing
        assert len(changes) == 1 and "ha__HassTurnOn" in changes[0]  # the daemon rebuilds its registry once
    finally:
        await mcp.close()
        server.kill()


async def test_missing_credential_is_one_line(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from speakerd.mcp import McpServerSettings

    s = McpServerSettings(name="ha", url="http://127.0.0.1:9/api/mcp", token_credential="ha-token")
    mcp = McpTools([s], env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    try:
        await mcp.refresh()
        assert mcp.tools() == {}
        assert warnings(caplog) == ["mcp server ha: credential 'ha-token' not found in $CREDENTIALS_DIRECTORY; "
                                    "its tools are left out until it answers"]
    finally:
        await mcp.close()


@pytest.mark.slow
async def test_json_answers_and_a_connection_per_call(tmp_path: Path, creds: dict[str, str]) -> None:
    """Home Assistant answers with plain JSON; idle_seconds = 0 opens a connection for every use."""
    server = HttpServer(tmp_path, json_response=True)
    server.start()
    mcp = McpTools([http_settings(server, idle_seconds=0)], env=creds)
    try:
        await mcp.refresh()
        _, turn_on = mcp.tools()["ha__HassTurnOn"]
        for room in ("hall", "attic", "porch"):
            assert await turn_on(name="lamp", area=room) == {"output": f"Turned on lamp in the {room}"}
        assert [c["args"]["area"] for c in server.calls()] == ["hall", "attic", "porch"]
    finally:
        await mcp.close()
        server.kill()


@pytest.mark.slow
async def test_reconfigure_changes_the_offer_and_ends_old_servers(tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    mcp = McpTools([stdio_settings(record, allow=["pid"])])
    try:
        await mcp.refresh()
        first = int((await mcp.tools()["local__pid"][1]())["output"])
        await mcp.reconfigure([stdio_settings(record, allow=["pid", "light_set"])])
        assert set(mcp.tools()) == {"local__pid", "local__light_set"}
        second = int((await mcp.tools()["local__pid"][1]())["output"])
        assert second != first  # changed settings: a new connection, the old one closes
        await until(lambda: _gone(first))
        await mcp.reconfigure([])
        assert mcp.tools() == {}
        await until(lambda: _gone(second))
    finally:
        await mcp.close()
