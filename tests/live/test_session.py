"""LiveSession with the real google-genai SDK over TLS against the emulator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from speakerd_workshop.emulator import EmulatorThread, Fault, Scenario, ToolCallSpec, Turn, tts

from speakerd import config
from speakerd.events import (
    GoAway,
    Interrupted,
    ReplyAudio,
    SessionState,
    ToolCall,
    ToolCancelled,
    Transcript,
    TurnComplete,
)
from speakerd.live import LiveError, LiveSession, ResumptionStore, ToolRegistry
from tests.sounds import loud, silence
from tests.support import until

KEY = "test-key-live"
RATE = 16000
SCENARIO = Scenario(
    turns=(
        Turn(user_transcript="what time is it", reply_text="It is time for tea."),
        Turn(user_transcript="and tomorrow", reply_text="Tomorrow will be sunny and warm."),
        Turn(user_transcript="tell me a story", reply_text=(
            "Once upon a time a small speaker told a very long story about the sea, the wind, the "
            "boats, the gulls and the lighthouse that stood on the rocks for a hundred years.")),
    ),
    default_reply="That is all.",
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait(self, pred: Any, timeout: float = 20.0) -> None:
        await until(pred, lambda: f"the condition; events: {[type(e).__name__ for e in self.events][-30:]}",
                    timeout=timeout)

    def audio(self) -> bytes:
        return b"".join(e.pcm for e in self.of(ReplyAudio))


def make_cfg(tmp_path: Path, emu: EmulatorThread, key: str = KEY, **live: Any) -> config.Config:
    settings = config.Settings(
        live=config.LiveSettings(endpoint=emu.base_url, ca_file=emu.ca_file,
                                 vad=config.VadSettings(silence_duration_ms=300),
                                 reconnect_max_seconds=0.5, connect_timeout_seconds=2.0, **live),
        state=config.StateSettings(directory=tmp_path / "state"),
    )
    return config.Config(settings=settings, path=tmp_path / "x.toml", api_key=SecretStr(key),
                         api_key_source="test")


async def _noop(**_: Any) -> dict[str, Any]:
    return {"ok": True}


def make_session(cfg: config.Config, rec: Recorder, **kw: Any) -> LiveSession:
    s = cfg.settings
    tools = ToolRegistry(s.tools, {"set_volume": _noop, "end_conversation": _noop})
    return LiveSession(cfg, rec, store=ResumptionStore(s.state.directory, s.live.model), tools=tools, **kw)


async def say(session: LiveSession, pcm: bytes) -> None:
    for i in range(0, len(pcm), 2560):
        session.send_audio(pcm[i : i + 2560])
        await asyncio.sleep(0)


async def test_audio_turn_with_transcripts_and_buffering_before_ready(tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    speech = tts.synthesize("what time is it", rate=RATE) + silence(1.0)
    await say(session, speech)  # before open: buffered, then sent in order
    await session.open()
    await rec.wait(lambda: rec.of(TurnComplete))
    assert emu.received_audio() == speech
    assert [t.text for t in rec.of(Transcript) if t.role == "user"] == ["what time is it"]
    assert "".join(t.text for t in rec.of(Transcript) if t.role == "model").strip() == "It is time for tea."
    assert rec.audio() == tts.synthesize("It is time for tea.", rate=24000)
    setup = emu.connections[0].setup or {}
    assert "contextWindowCompression" in setup and "sessionResumption" in setup
    session.end_audio_stream()
    await session.close()
    assert any(m.get("audioStreamEnd") for m in emu.messages("realtimeInput"))
    assert isinstance(rec.events[-1], SessionState) and rec.events[-1].phase == "closed"


@pytest.mark.slow
async def test_barge_in_interrupts(tmp_path: Path, cert_dir: Path) -> None:
    with EmulatorThread(SCENARIO, api_key=KEY, cert_dir=cert_dir, pace=1.0) as emu:
        rec = Recorder()
        session = make_session(make_cfg(tmp_path, emu), rec)
        await session.open()
        for text in ("what time is it", "and tomorrow"):
            n = len(rec.of(TurnComplete))
            await say(session, tts.synthesize(text, rate=RATE) + silence(0.6))
            await rec.wait(lambda n=n: len(rec.of(TurnComplete)) > n)
        before = len(rec.audio())
        await say(session, tts.synthesize("tell me a story", rate=RATE) + silence(0.6))
        await rec.wait(lambda: len(rec.audio()) - before > 24000 * 2)  # one second into the story
        await say(session, loud(0.8))
        await rec.wait(lambda: rec.of(Interrupted))
        await session.close()


async def test_tools_blocking_and_non_blocking_round_trip(tmp_path: Path, cert_dir: Path) -> None:
    scenario = Scenario(turns=(
        Turn(user_transcript="time", tool_calls=(ToolCallSpec("current_time", {}, non_blocking=False),),
             after_tool_text="It is {result}."),
        Turn(user_transcript="note", reply_text="Noting it.",
             tool_calls=(ToolCallSpec("note", {"text": "milk; rm -rf /"}),), after_tool_text="Done."),
    ))
    with EmulatorThread(scenario, api_key=KEY, cert_dir=cert_dir, pace=8.0) as emu:
        rec = Recorder()
        cfg = make_cfg(tmp_path, emu)
        cfg.settings.tools.commands.append(config.CommandTool(
            name="note", description="write a note", argv=["echo", "{text}"], non_blocking=True,
            parameters={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}))
        session = make_session(cfg, rec)
        await session.open()
        await say(session, loud(0.5) + silence(0.6))
        await rec.wait(lambda: rec.of(TurnComplete) and rec.audio())
        call = rec.of(ToolCall)[0]
        response = emu.messages("toolResponse")[0]
        fr = response["functionResponses"][0]
        assert fr["id"] == call.id and fr["name"] == "current_time" and "time" in fr["response"]
        await say(session, loud(0.5) + silence(0.6))
        await rec.wait(lambda: len(emu.messages("toolResponse")) == 2, timeout=20)
        fr2 = emu.messages("toolResponse")[1]["functionResponses"][0]
        assert fr2["name"] == "note" and fr2.get("scheduling") == "WHEN_IDLE"
        assert fr2["response"] == {"exit_code": 0, "output": "milk; rm -rf /\n"}  # data, not a shell
        await session.close()


async def test_tool_call_cancelled_by_barge_in(tmp_path: Path, cert_dir: Path) -> None:
    scenario = Scenario(turns=(
        Turn(user_transcript="slow", reply_text="Let me check, this will take a while to answer you.",
             tool_calls=(ToolCallSpec("slow_tool", {}, non_blocking=True),), after_tool_text="Done."),
    ))
    with EmulatorThread(scenario, api_key=KEY, cert_dir=cert_dir, pace=1.0) as emu:
        rec = Recorder()
        cfg = make_cfg(tmp_path, emu)
        cfg.settings.tools.commands.append(config.CommandTool(
            name="slow_tool", description="sleeps", argv=["sleep", "30"], non_blocking=True))
        session = make_session(cfg, rec)
        await session.open()
        await say(session, loud(0.5) + silence(0.6))
        await rec.wait(lambda: rec.of(ToolCall) and rec.audio())
        await say(session, loud(0.8))
        await rec.wait(lambda: rec.of(ToolCancelled))
        assert rec.of(ToolCancelled)[0].ids == (rec.of(ToolCall)[0].id,)
        await session.close()


async def test_go_away_mid_reply_resumes_without_gap_or_repeat(tmp_path: Path, cert_dir: Path) -> None:
    with EmulatorThread(SCENARIO, api_key=KEY, cert_dir=cert_dir, pace=2.0, go_away_before_seconds=3.0) as emu:
        rec = Recorder()
        session = make_session(make_cfg(tmp_path, emu), rec)
        await session.open()
        await say(session, tts.synthesize("what time is it", rate=RATE) + silence(0.6))
        await rec.wait(lambda: rec.audio())
        emu.inject(Fault("go_away", target="current", during="now"))
        await rec.wait(lambda: rec.of(TurnComplete))
        await rec.wait(lambda: len(emu.connections) == 2 and session.is_open)
        assert rec.of(GoAway) and emu.connections[1].resumed_handle
        handles = [e for e in emu.events if e.connection == 1 and e.kind == "handle"]
        assert len(handles) >= 2  # the switch waited for the handle issued after the reply
        assert rec.audio() == tts.synthesize("It is time for tea.", rate=24000)  # whole, once
        assert not any(e.phase == "reconnecting" for e in rec.of(SessionState))  # no offline blip
        await say(session, tts.synthesize("and tomorrow", rate=RATE) + silence(0.6))
        await rec.wait(lambda: len(rec.of(TurnComplete)) == 2)
        assert [t.text for t in rec.of(Transcript) if t.role == "user"] == ["what time is it", "and tomorrow"]
        await session.close()


@pytest.mark.parametrize(("fault", "outcome"), [
    (Fault("drop", target="current", during="now"), "resumed"),
    (Fault("close", code=1011, target="current", during="now"), "resumed"),
])
async def test_transient_faults_reconnect_with_handle(tmp_path: Path, emu: EmulatorThread,
                                                       fault: Fault, outcome: str) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    await session.open()
    await say(session, tts.synthesize("what time is it", rate=RATE) + silence(0.6))
    await rec.wait(lambda: rec.of(TurnComplete))
    emu.inject(fault)
    await rec.wait(lambda: len(emu.connections) == 2 and session.is_open)
    assert emu.connections[1].resumed_handle == session.handle or emu.connections[1].resumed_handle
    assert any(e.phase == "reconnecting" for e in rec.of(SessionState))
    await say(session, tts.synthesize("and tomorrow", rate=RATE) + silence(0.6))
    await rec.wait(lambda: len(rec.of(TurnComplete)) == 2)
    await session.close()


async def test_1007_drops_the_handle_and_starts_fresh(tmp_path: Path, emu: EmulatorThread) -> None:
    cfg = make_cfg(tmp_path, emu)
    store = ResumptionStore(cfg.settings.state.directory, cfg.settings.live.model)
    store.save("not-a-handle-the-emulator-knows")
    rec = Recorder()
    session = make_session(cfg, rec)
    await session.open()
    first, second = emu.connections
    assert emu.messages("setup")[0]["sessionResumption"]["handle"] == "not-a-handle-the-emulator-knows"
    assert first.close_code == 1007 and second.resumed_handle is None
    assert store.load() != "not-a-handle-the-emulator-knows"
    await session.close()


async def test_1008_is_fatal_and_not_retried(tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu, key="wrong-key"), rec)
    with pytest.raises(LiveError) as e:
        await session.open()
    assert e.value.fatal and "1008" in str(e.value) and "wrong-key" not in str(e.value)
    await asyncio.sleep(1.0)
    assert len(emu.connections) == 1  # no hot loop
    await session.close()


@pytest.mark.slow
async def test_stall_before_setup_complete_times_out_and_retries(tmp_path: Path, emu: EmulatorThread) -> None:
    emu.inject(Fault("stall", during="setup", seconds=0))
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    await asyncio.wait_for(session.open(), 20)
    assert len(emu.connections) == 2
    await session.close()


async def test_restart_resumes_from_the_stored_handle(tmp_path: Path, emu: EmulatorThread) -> None:
    cfg = make_cfg(tmp_path, emu)
    rec = Recorder()
    first = make_session(cfg, rec)
    await first.open()
    await say(first, tts.synthesize("what time is it", rate=RATE) + silence(0.6))
    await rec.wait(lambda: rec.of(TurnComplete))
    handle = first.handle
    await first.close()
    stored = json.loads((cfg.settings.state.directory / "resumption.json").read_text())
    assert stored["handle"] == handle and stored["model"] == cfg.settings.live.model

    rec2 = Recorder()
    second = make_session(cfg, rec2)  # a new process would do exactly this
    await second.open()
    assert emu.connections[-1].resumed_handle == handle
    assert any(e.phase == "ready" and e.resumed for e in rec2.of(SessionState))
    await say(second, tts.synthesize("and tomorrow", rate=RATE) + silence(0.6))
    await rec2.wait(lambda: rec2.of(TurnComplete))
    assert "".join(t.text for t in rec2.of(Transcript) if t.role == "model").strip() == \
        "Tomorrow will be sunny and warm."  # the emulator remembered turn one
    await second.close()


async def test_model_options_are_mapped_so_the_service_accepts_them(tmp_path: Path, emu: EmulatorThread) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [  # validated by config.LiveSettings itself
        ("gemini-3.8-live", {"affective_dialog": True, "proactive_audio": False, "thinking_level": "low"}),
        ("gemini-3.1-flash-live-preview", {"thinking_level": "minimal", "affective_dialog": True}),
        ("gemini-2.5-flash-native-audio-preview-12-2025",
         {"affective_dialog": True, "proactive_audio": True, "thinking_budget": 0}),
    ]
    for model, extra in cases:
        rec = Recorder()
        session = make_session(make_cfg(tmp_path / model, emu, model=model, **extra), rec)
        await session.open()
        await session.close()
    assert [c.close_code for c in emu.connections if c.close_code not in (None, 1000)] == []
    gen25 = (emu.connections[2].setup or {}).get("generationConfig", {})
    assert gen25.get("enableAffectiveDialog") is True and "thinkingConfig" in gen25
    assert "thinkingConfig" not in (emu.connections[0].setup or {}).get("generationConfig", {})


@pytest.mark.parametrize(("model", "tells"), [("gemini-3.8-live", True), ("gemini-3.1-flash-live-preview", False)])
async def test_a_button_interrupt_tells_the_service_where_the_model_allows_it(
    tmp_path: Path, cert_dir: Path, model: str, tells: bool
) -> None:
    """On 3.8 clientContent{turnComplete} stops the reply (and starts none); 3.1 takes clientContent
    only to seed history, so nothing is sent there and the reply is only silenced locally."""
    with EmulatorThread(SCENARIO, api_key=KEY, cert_dir=cert_dir, pace=1.0) as emu:
        rec = Recorder()
        session = make_session(make_cfg(tmp_path, emu, model=model), rec)
        await session.open()
        session.send_text("tell me a story")
        await rec.wait(lambda: len(rec.audio()) > 24000 * 2)  # a second into the story
        session.interrupt()
        if tells:
            await rec.wait(lambda: rec.of(Interrupted))
            sources = [e.detail.get("source") for e in emu.events if e.kind == "interruptedBy"]
            assert sources == ["clientContent"]
            stopped_at = len(rec.audio())
            await asyncio.sleep(1.0)
            assert len(rec.audio()) - stopped_at < 24000 * 2 * 0.5  # no new reply was started
        else:
            await asyncio.sleep(0.5)
            assert emu.messages("clientContent") == [] and not rec.of(Interrupted)
        await session.close()
