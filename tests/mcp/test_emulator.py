"""An MCP tool in a real Live session: google-genai over TLS to the emulator, a real MCP server behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from speakerd_workshop.emulator import EmulatorThread, Scenario, ToolCallSpec, Turn

from speakerd.events import ToolCall, Transcript, TurnComplete
from speakerd.live import LiveSession, ResumptionStore, ToolRegistry
from speakerd.mcp.tools import McpTools
from tests.live.test_session import KEY, Recorder, make_cfg, say
from tests.mcp.conftest import HttpServer, http_settings
from tests.sounds import loud, silence


async def _noop(**_: Any) -> dict[str, Any]:
    return {"ok": True}


@pytest.mark.slow
async def test_scripted_turn_calls_a_declared_mcp_tool(tmp_path: Path, http_server: HttpServer,
                                                       creds: dict[str, str]) -> None:
    scenario = Scenario(turns=(
        Turn(user_transcript="turn on the kitchen light",
             tool_calls=(ToolCallSpec("ha__HassTurnOn", {"name": "kitchen light"}, non_blocking=False),),
             after_tool_text="Done: {result}"),
        Turn(user_transcript="take your time",
             tool_calls=(ToolCallSpec("ha__slow", {"seconds": 30}, non_blocking=False),),
             after_tool_text="Sorry: {result}"),
    ))
    mcp = McpTools([http_settings(http_server, timeout_seconds=2)], env=creds)
    await mcp.refresh()
    with EmulatorThread(scenario, api_key=KEY, cert_dir=tmp_path / "certs", pace=8.0) as emu:
        rec = Recorder()
        cfg = make_cfg(tmp_path, emu)
        s = cfg.settings
        tools = ToolRegistry(s.tools, {"set_volume": _noop, "end_conversation": _noop}, extra=mcp.tools())
        session = LiveSession(cfg, rec, store=ResumptionStore(s.state.directory, s.live.model), tools=tools)
        try:
            await session.open()
            declared = {d["name"]: d for t in (emu.connections[0].setup or {})["tools"]
                        for d in t.get("functionDeclarations", [])}
            assert declared["ha__HassTurnOn"]["parametersJsonSchema"] == {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}, "area": {"type": "string"}}}
            assert "ha__either" not in declared

            await say(session, loud(0.5) + silence(0.6))
            await rec.wait(lambda: len(rec.of(TurnComplete)) >= 1)
            call = rec.of(ToolCall)[0]
            fr = emu.messages("toolResponse")[0]["functionResponses"][0]
            assert fr["id"] == call.id and fr["name"] == "ha__HassTurnOn"
            assert fr["response"] == {"output": "Turned on kitchen light"}
            assert http_server.calls() == [{"tool": "HassTurnOn", "args": {"name": "kitchen light", "area": None}}]
            spoken = "".join(t.text for t in rec.of(Transcript) if t.role == "model")
            assert "Turned on kitchen light" in spoken

            # A server too slow for its timeout: the model still gets exactly one answer, an error.
            await say(session, loud(0.5) + silence(0.6))
            await rec.wait(lambda: len(emu.messages("toolResponse")) >= 2, timeout=30)
            fr2 = emu.messages("toolResponse")[1]["functionResponses"][0]
            assert fr2["name"] == "ha__slow"
            assert fr2["response"] == {"error": "ha did not answer within 2 seconds"}
            await rec.wait(lambda: len(rec.of(TurnComplete)) >= 2)
            spoken = "".join(t.text for t in rec.of(Transcript) if t.role == "model")
            assert "ha did not answer within 2 seconds" in spoken
        finally:
            await session.close()
            await mcp.close()
