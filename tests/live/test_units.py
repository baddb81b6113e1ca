"""The parts of the Live client that need no connection: per-model config, the store, the tools."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from speakerd import config
from speakerd.live import ResumptionStore, ToolRegistry, build_connect_config, connect_config_warnings

MODELS = ("gemini-3.8-live", "gemini-3.1-flash-live-preview", "gemini-2.5-flash-native-audio-preview-12-2025")
ALL_OPTIONS: dict[str, Any] = {"affective_dialog": True, "proactive_audio": False, "thinking_level": "low",
                               "thinking_budget": 0}


def registry(*commands: config.CommandTool, handlers: dict[str, Any] | None = None) -> ToolRegistry:
    return ToolRegistry(config.ToolsSettings(commands=list(commands)), handlers or {})


# Connect config ---------------------------------------------------------------------------------


def test_defaults_for_the_default_model() -> None:
    live = config.LiveSettings()
    cfg = build_connect_config(live, registry())
    assert isinstance(cfg, types.LiveConnectConfig)
    assert cfg.response_modalities == [types.Modality.AUDIO]
    assert cfg.context_window_compression is not None  # on by default: no 15-minute cut
    assert cfg.session_resumption is not None and cfg.session_resumption.handle is None
    assert cfg.input_audio_transcription is not None and cfg.output_audio_transcription is not None
    aad = cfg.realtime_input_config.automatic_activity_detection  # type: ignore[union-attr]
    assert aad is not None and not aad.disabled and aad.silence_duration_ms == live.vad.silence_duration_ms
    assert cfg.speech_config.voice_config.prebuilt_voice_config.voice_name == "Kore"  # type: ignore[union-attr]
    assert any(t.google_search is not None for t in cfg.tools or [])  # type: ignore[union-attr]
    assert cfg.enable_affective_dialog is None and cfg.proactivity is None and cfg.thinking_config is None


@pytest.mark.parametrize("model", MODELS)
def test_model_options_only_where_the_model_takes_them(model: str) -> None:
    live = config.LiveSettings(model=model, **ALL_OPTIONS)
    cfg = build_connect_config(live)
    warnings = connect_config_warnings(live)
    if model == "gemini-3.8-live":
        assert (cfg.enable_affective_dialog, cfg.proactivity, cfg.thinking_config) == (None, None, None)
        assert len(warnings) == 4
    elif model == "gemini-3.1-flash-live-preview":
        assert cfg.enable_affective_dialog is None and cfg.proactivity is None
        assert cfg.thinking_config is not None and cfg.thinking_config.thinking_level == types.ThinkingLevel.LOW
        assert cfg.thinking_config.thinking_budget is None
    else:
        assert cfg.enable_affective_dialog is True
        assert cfg.proactivity is not None and cfg.proactivity.proactive_audio is False
        assert cfg.thinking_config is not None and cfg.thinking_config.thinking_budget == 0
        assert cfg.thinking_config.thinking_level is None
    assert all(model in w for w in warnings)


def test_3_8_keeps_proactive_audio_true() -> None:
    cfg = build_connect_config(config.LiveSettings(proactive_audio=True))
    assert cfg.proactivity is not None and cfg.proactivity.proactive_audio is True


def test_push_to_talk_turns_server_vad_off_and_handle_resumes() -> None:
    cfg = build_connect_config(config.LiveSettings(), push_to_talk=True, handle="h-1")
    aad = cfg.realtime_input_config.automatic_activity_detection  # type: ignore[union-attr]
    assert aad is not None and aad.disabled is True
    assert cfg.session_resumption is not None and cfg.session_resumption.handle == "h-1"


def test_no_barge_in_and_compression_off() -> None:
    live = config.LiveSettings(vad=config.VadSettings(barge_in=False, start_sensitivity="low"),
                               compression=config.CompressionSettings(enabled=False), google_search=False)
    cfg = build_connect_config(live)
    ric = cfg.realtime_input_config
    assert ric is not None and ric.activity_handling == types.ActivityHandling.NO_INTERRUPTION
    aad = ric.automatic_activity_detection
    assert aad is not None and aad.start_of_speech_sensitivity == types.StartSensitivity.START_SENSITIVITY_LOW
    assert cfg.context_window_compression is None and not cfg.tools


@pytest.mark.parametrize(("model", "behaviors"), [
    ("gemini-3.8-live", {"note": types.Behavior.NON_BLOCKING, "current_time": types.Behavior.BLOCKING}),
    ("gemini-3.1-flash-live-preview", {"note": None, "current_time": None}),  # sync calls only
    # Google's tools page: 2.5 Flash Live calls functions synchronously and asynchronously.
    ("gemini-2.5-flash-native-audio-preview-12-2025",
     {"note": types.Behavior.NON_BLOCKING, "current_time": types.Behavior.BLOCKING}),
])
def test_tool_behaviour_per_model(model: str, behaviors: dict[str, Any]) -> None:
    tools = registry(config.CommandTool(name="note", description="d", argv=["true"], non_blocking=True))
    cfg = build_connect_config(config.LiveSettings(model=model), tools)
    decls = {d.name: d for t in cfg.tools or [] for d in (t.function_declarations or [])}  # type: ignore[union-attr]
    assert {n: decls[n].behavior for n in behaviors} == behaviors
    assert decls["note"].parameters_json_schema == {"type": "object", "properties": {}}


# Resumption store ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_store_round_trip_is_atomic_and_private(tmp_path: Path) -> None:
    store = ResumptionStore(tmp_path / "state", "gemini-3.8-live")
    assert store.load() is None
    store.save("h-1")
    store.save("h-2")
    assert store.load() == "h-2"
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["resumption.json"]  # no temp left
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    data = json.loads(store.path.read_text())
    assert data["model"] == "gemini-3.8-live" and data["handle"] == "h-2" and "saved_at" in data
    store.clear()
    assert store.load() is None


def test_store_expired_handle_is_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    store = ResumptionStore(tmp_path, "gemini-3.8-live", max_age_seconds=7200, now=clock)
    store.save("h-old")
    clock.now += 7199
    assert store.load() == "h-old"
    store.touch()  # the session ended now: validity restarts
    clock.now += 7199
    assert store.load() == "h-old"
    clock.now += 2
    with caplog.at_level(logging.WARNING):
        assert store.load() is None
    assert len(caplog.records) == 1 and "minutes ago" in caplog.records[0].getMessage()


def test_store_other_model_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ResumptionStore(tmp_path, "gemini-2.5-flash-native-audio-preview-12-2025").save("h-25")
    with caplog.at_level(logging.WARNING):
        assert ResumptionStore(tmp_path, "gemini-3.8-live").load() is None
    assert "gemini-2.5" in caplog.records[0].getMessage()


@pytest.mark.parametrize("content", [
    b"", b"{", b"\xff\xfe\x00garbage", b"[]", b'{"handle": 5, "model": "gemini-3.8-live", "saved_at": 1}',
    b'{"handle": "h", "model": "gemini-3.8-live"}', b'{"handle": "h", "model": "gemini-3.8-live", "saved_at": "x"}',
    b'{"handle": "", "model": "gemini-3.8-live", "saved_at": 1}',
])
def test_store_corrupt_file_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes) -> None:
    (tmp_path / "resumption.json").write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert ResumptionStore(tmp_path, "gemini-3.8-live").load() is None
    assert len(caplog.records) == 1 and "\n" not in caplog.records[0].getMessage()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_store_unwritable_directory_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    store = ResumptionStore(d, "gemini-3.8-live")
    with caplog.at_level(logging.WARNING):
        store.save("a")
        store.save("b")
    assert len(caplog.records) == 1 and store.load() is None


def test_store_unwritable_path_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "file").write_text("x")  # a file where the directory should be: even root cannot
    store = ResumptionStore(tmp_path / "file" / "state", "gemini-3.8-live")
    with caplog.at_level(logging.WARNING):
        store.save("a")
        store.save("b")
    assert len(caplog.records) == 1 and not store.writable


# Tools -----------------------------------------------------------------------------------------


async def test_builtins_follow_the_handlers_and_current_time_is_built_in() -> None:
    seen: list[int] = []

    async def set_volume(level: int) -> dict[str, Any]:
        seen.append(level)
        return {"volume": level}

    tools = ToolRegistry(config.ToolsSettings(), {"set_volume": set_volume})
    assert set(tools.specs) == {"set_volume", "current_time"}  # end_conversation has no handler here
    assert await tools.call("set_volume", {"level": 40}) == {"volume": 40}
    assert seen == [40]
    assert {"time", "date", "timezone"} <= set(await tools.call("current_time", {}))


@pytest.mark.parametrize(("args", "error"), [
    ({}, "missing 'level'"),
    ({"level": "loud"}, "expected integer"),
    ({"level": 101}, "<= 100"),
    ({"level": -1}, ">= 0"),
    ({"level": True}, "expected integer"),
    ({"level": 5, "extra": 1}, "unexpected 'extra'"),
])
async def test_arguments_are_validated_before_anything_runs(args: dict[str, Any], error: str) -> None:
    calls: list[Any] = []

    async def set_volume(**kw: Any) -> dict[str, Any]:
        calls.append(kw)
        return {}

    result = await ToolRegistry(config.ToolsSettings(), {"set_volume": set_volume}).call("set_volume", args)
    assert error in result["error"] and calls == []


async def test_unknown_tool_is_refused() -> None:
    assert "unknown tool" in (await registry().call("rm", {}))["error"]


async def test_argv_tool_gets_arguments_as_data_never_through_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    tool = config.CommandTool(
        name="note", description="d", argv=["printf", "%s|%s", "{text}", "n={count}"],
        parameters={"type": "object", "properties": {"text": {"type": "string"}, "count": {"type": "integer"}},
                    "required": ["text"]})
    evil = f"$(touch {marker}); `touch {marker}` && touch {marker} > x"
    result = await registry(tool).call("note", {"text": evil, "count": 3})
    assert result == {"exit_code": 0, "output": f"{evil}|n=3"}
    assert not marker.exists()


async def test_argv_tool_timeout_and_output_cap() -> None:
    slow = config.CommandTool(name="slow", description="d", argv=["sleep", "20"], timeout_seconds=0.3)
    chatty = config.CommandTool(name="chatty", description="d", argv=["head", "-c", "100000", "/dev/zero"],
                                max_output_bytes=64)
    tools = registry(slow, chatty)
    assert "timed out" in (await tools.call("slow", {}))["error"]
    out = await tools.call("chatty", {})
    assert out["output"].endswith("[output cut]") and len(out["output"]) == 64 + len(" [output cut]")


async def test_a_failing_command_is_an_error_for_the_model_not_a_crash() -> None:
    missing = config.CommandTool(name="missing", description="d", argv=["/nonexistent/speakerd-tool"])
    result = await registry(missing).call("missing", {})
    assert "failed" in result["error"]


class _Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, bytes]] = []  # noqa: RUF012 - shared by the test server's threads

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Handler.seen.append((self.command, self.path, body))
        reply = b"x" * 50 if self.path.startswith("/big") else b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer

    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


async def test_http_tools_post_json_and_get_query(http_server: str) -> None:
    params = {"type": "object", "properties": {"room": {"type": "string"}}}
    post = config.CommandTool(name="lights", description="d", url=f"{http_server}/lights", parameters=params)
    get = config.CommandTool(name="big", description="d", url=f"{http_server}/big", method="GET",
                             parameters=params, max_output_bytes=10)
    tools = registry(post, get)
    _Handler.seen.clear()
    assert await tools.call("lights", {"room": "kitchen & hall"}) == {"status": 200, "output": '{"ok": true}'}
    out = await tools.call("big", {"room": "a b"})
    assert out["status"] == 200 and out["output"] == "x" * 10 + " [output cut]"
    assert _Handler.seen[0][:2] == ("POST", "/lights")
    assert json.loads(_Handler.seen[0][2]) == {"room": "kitchen & hall"}
    assert _Handler.seen[1][:2] == ("GET", "/big?room=a+b")


async def test_http_tool_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tool = config.CommandTool(name="hang", description="d", url=f"http://127.0.0.1:{port}/", timeout_seconds=0.3)
    try:
        assert "timed out" in (await registry(tool).call("hang", {}))["error"]
    finally:
        server.close()
