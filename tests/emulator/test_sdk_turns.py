"""The real google-genai SDK over TLS against the emulator: turns, barge-in, tools, resumption."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from google.genai import types
from speakerd_workshop.emulator import EmulatorThread, Scenario, ToolCallSpec, Turn, tts

from tests.emulator.conftest import MODEL, SCENARIO, client, collect_turn, config, expect_close, send_pcm
from tests.sounds import loud, silence, speech


async def test_full_audio_turn_with_transcripts(emu: EmulatorThread) -> None:
    sent = speech("hello there") + silence(0.6)
    async with client(emu).aio.live.connect(model=MODEL, config=config()) as s:
        await send_pcm(s, sent)
        turn = await collect_turn(s)
    first = SCENARIO.turns[0]
    assert turn.input_text == first.user_transcript
    assert turn.output_text == first.reply_text
    assert turn.audio == tts.synthesize(first.reply_text)
    assert turn.flags == ["generation_complete", "turn_complete"]
    assert turn.messages[-1].usage_metadata is not None
    assert emu.received_audio() == sent
    (conn,) = emu.connections
    assert (conn.model, conn.api_version, conn.method, conn.auth) == (
        MODEL, "v1beta", "BidiGenerateContent", "header-key")
    assert conn.setup is not None and conn.setup["model"] == f"models/{MODEL}"
    # The SDK's snake_case arrives normalised, so tests can assert on one spelling.
    first_audio = emu.messages("realtimeInput")[0]
    assert first_audio["audio"]["mimeType"] == "audio/pcm;rate=16000"
    kinds = [e.kind for e in emu.events]
    assert kinds.index("userTurnEnd") < kinds.index("firstAudio") < kinds.index("turnComplete")


async def test_vad_waits_for_configured_silence(emu: EmulatorThread) -> None:
    # 0.5 s of silence is not enough when the setup asks for 800 ms.
    cfg = config(realtime_input_config={"automatic_activity_detection": {"silence_duration_ms": 800}})
    async with client(emu).aio.live.connect(model=MODEL, config=cfg) as s:
        await send_pcm(s, loud(0.5) + silence(0.5))
        await asyncio.sleep(0.3)
        assert "userTurnEnd" not in [e.kind for e in emu.events]
        await send_pcm(s, silence(0.4))
        turn = await collect_turn(s)
    assert turn.output_text == SCENARIO.turns[0].reply_text


async def test_audio_stream_end_ends_the_turn(emu: EmulatorThread) -> None:
    async with client(emu).aio.live.connect(model=MODEL, config=config()) as s:
        await send_pcm(s, loud(0.5))
        await s.send_realtime_input(audio_stream_end=True)
        turn = await collect_turn(s)
    assert turn.input_text == SCENARIO.turns[0].user_transcript
    assert [e.detail.get("source") for e in emu.events if e.kind == "userTurnEnd"] == ["audioStreamEnd"]


async def test_manual_activity_and_text_and_client_content(emu: EmulatorThread) -> None:
    cfg = config(realtime_input_config={"automatic_activity_detection": {"disabled": True}})
    async with client(emu).aio.live.connect(model=MODEL, config=cfg) as s:
        await s.send_realtime_input(activity_start=types.ActivityStart())
        await send_pcm(s, silence(0.3))  # with manual activity the server does not judge the audio
        await s.send_realtime_input(activity_end=types.ActivityEnd())
        one = await collect_turn(s)
        await s.send_realtime_input(text="what about tomorrow")
        two = await collect_turn(s)
        await s.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="and after that")]))
        three = await collect_turn(s)
    assert [one.output_text, two.output_text, three.output_text] == [t.reply_text for t in SCENARIO.turns]
    assert two.input_text == ""  # text turns have no input transcription
    assert emu.messages("clientContent")[0]["turns"][0]["parts"][0]["text"] == "and after that"


async def test_barge_in_interrupts_the_reply(cert_dir: Path) -> None:
    long = Scenario(turns=(Turn(user_transcript="tell me a story", reply_text=" ".join(["Once upon a time."] * 12)),))
    with EmulatorThread(long, cert_dir=cert_dir, pace=1.0) as emu:
        async with client(emu).aio.live.connect(model=MODEL, config=config()) as s:
            await send_pcm(s, loud(0.4) + silence(0.4))
            got = b""
            async for m in s.receive():
                if m.data:
                    got += m.data
                    break
            await send_pcm(s, loud(0.3))
            turn = await collect_turn(s)
        assert "interrupted" in turn.flags and turn.flags[-1] == "turn_complete"
        assert "generation_complete" not in turn.flags
        assert len(got + turn.audio) < len(tts.synthesize(long.turns[0].reply_text))
        assert "interrupted" in [e.kind for e in emu.events]


async def test_no_interruption_lets_the_reply_finish(emu: EmulatorThread) -> None:
    cfg = config(realtime_input_config={"automatic_activity_detection": {"silence_duration_ms": 300},
                                        "activity_handling": "NO_INTERRUPTION"})
    async with client(emu).aio.live.connect(model=MODEL, config=cfg) as s:
        await send_pcm(s, loud(0.4) + silence(0.4))
        async for m in s.receive():
            if m.data:
                break
        await send_pcm(s, loud(0.4) + silence(0.4))
        one = await collect_turn(s)
        two = await collect_turn(s)
    assert "interrupted" not in one.flags + two.flags
    assert two.output_text == SCENARIO.turns[1].reply_text


TOOLS = [types.Tool(function_declarations=[
    types.FunctionDeclaration(name="current_time", description="the time", behavior=types.Behavior.BLOCKING),
    types.FunctionDeclaration(name="lookup", description="slow lookup", behavior=types.Behavior.NON_BLOCKING),
])]


async def test_blocking_tool_round_trip(cert_dir: Path) -> None:
    sc = Scenario(turns=(Turn("what time is it", after_tool_text="It is {result}.",
                              tool_calls=(ToolCallSpec("current_time", {"zone": "local"}),)),))
    with EmulatorThread(sc, cert_dir=cert_dir, pace=8.0) as emu:
        async with client(emu).aio.live.connect(model=MODEL, config=config(tools=TOOLS)) as s:
            await s.send_realtime_input(text="what time is it")
            first = await collect_turn(s, until="tool_call")
            (call,) = first.tool_calls
            assert (call.name, call.args) == ("current_time", {"zone": "local"})
            await s.send_tool_response(function_responses=[
                types.FunctionResponse(id=call.id, name=call.name, response={"result": "half past four"})])
            turn = await collect_turn(s)
        assert turn.output_text == "It is half past four."
        assert emu.messages("toolResponse")[0]["functionResponses"][0]["id"] == call.id


async def test_non_blocking_tool_speaks_now_and_result_later(cert_dir: Path) -> None:
    sc = Scenario(turns=(Turn("look it up", reply_text="Let me check.", after_tool_text="Found {result}.",
                              tool_calls=(ToolCallSpec("lookup", {"q": "x"}),)),))
    with EmulatorThread(sc, cert_dir=cert_dir, pace=8.0) as emu:
        async with client(emu).aio.live.connect(model=MODEL, config=config(tools=TOOLS)) as s:
            await s.send_realtime_input(text="look it up")
            now = await collect_turn(s)
            (call,) = now.tool_calls
            assert now.output_text == "Let me check."
            await s.send_tool_response(function_responses=[types.FunctionResponse(
                id=call.id, name=call.name, response={"result": "three books"},
                scheduling=types.FunctionResponseScheduling.WHEN_IDLE)])
            later = await collect_turn(s)
        assert later.output_text == "Found three books."


async def test_barge_in_cancels_pending_tool_call(cert_dir: Path) -> None:
    sc = Scenario(turns=(Turn("what time is it", after_tool_text="It is {result}.",
                              tool_calls=(ToolCallSpec("current_time"),)),))
    with EmulatorThread(sc, cert_dir=cert_dir, pace=8.0) as emu:
        async with client(emu).aio.live.connect(model=MODEL, config=config(tools=TOOLS)) as s:
            await s.send_realtime_input(text="what time is it")
            first = await collect_turn(s, until="tool_call")
            await send_pcm(s, loud(0.3))
            turn = await collect_turn(s)
        assert turn.cancelled == [first.tool_calls[0].id]
        assert "interrupted" in turn.flags


async def test_undeclared_tool_is_not_called(emu: EmulatorThread, cert_dir: Path) -> None:
    sc = Scenario(turns=(Turn("hi", reply_text="Hello.", tool_calls=(ToolCallSpec("nope"),)),))
    with EmulatorThread(sc, cert_dir=cert_dir, pace=8.0) as e2:
        async with client(e2).aio.live.connect(model=MODEL, config=config()) as s:
            await s.send_realtime_input(text="hi")
            turn = await collect_turn(s)
        assert turn.tool_calls == [] and turn.output_text == "Hello."
        assert "toolNotDeclared" in [e.kind for e in e2.events]


async def _handle_after_turn(emu: EmulatorThread, text: str) -> tuple[str, str]:
    handle = ""
    async with client(emu).aio.live.connect(model=MODEL, config=config()) as s:
        await s.send_realtime_input(text=text)
        turn = await collect_turn(s)
        async for m in s.receive():
            u = m.session_resumption_update
            if u and u.resumable and u.new_handle:
                handle = u.new_handle
                break
    return handle, turn.output_text


async def test_resumption_handle_restores_the_conversation(emu: EmulatorThread) -> None:
    handle, said = await _handle_after_turn(emu, "hello there")
    assert said == SCENARIO.turns[0].reply_text and handle
    cfg = config(session_resumption=types.SessionResumptionConfig(handle=handle))
    async with client(emu).aio.live.connect(model=MODEL, config=cfg) as s:
        await s.send_realtime_input(text="what about tomorrow")
        turn = await collect_turn(s)
    assert turn.output_text == SCENARIO.turns[1].reply_text  # the emulator remembered turn one
    assert emu.connections[1].resumed_handle == handle


async def test_handle_is_not_resumable_while_generating(emu: EmulatorThread) -> None:
    async with client(emu).aio.live.connect(model=MODEL, config=config()) as s:
        await s.send_realtime_input(text="hello there")
        updates = []
        for m in (await collect_turn(s)).messages:
            if m.session_resumption_update:
                updates.append(m.session_resumption_update)
    # One handle right after setup, then only resumable=false until the turn is complete.
    assert updates[0].resumable and updates[0].new_handle
    assert updates[1:] and all(not u.resumable and not u.new_handle for u in updates[1:])


async def test_unknown_or_expired_handle_closes_1007(cert_dir: Path) -> None:
    with EmulatorThread(SCENARIO, cert_dir=cert_dir, pace=8.0, handle_validity_seconds=0.0) as emu:
        bad = config(session_resumption=types.SessionResumptionConfig(handle="no-such-handle"))
        e = await expect_close(client(emu).aio.live.connect(model=MODEL, config=bad).__aenter__())
        assert e.code == 1007
        handle, _ = await _handle_after_turn(emu, "hello there")
        emu.wait_for(lambda: emu.connections[-1].closed is not None)
        old = config(session_resumption=types.SessionResumptionConfig(handle=handle))
        e = await expect_close(client(emu).aio.live.connect(model=MODEL, config=old).__aenter__())
        assert e.code == 1007 and "expired" in str(e)


async def test_compression_settings_are_recorded(emu: EmulatorThread) -> None:
    cfg = config(context_window_compression=types.ContextWindowCompressionConfig(
        trigger_tokens=25600, sliding_window=types.SlidingWindow(target_tokens=12800)))
    async with client(emu).aio.live.connect(model=MODEL, config=cfg):
        pass
    (ev,) = [e for e in emu.events if e.kind == "compression"]
    assert ev.detail["config"] == {"triggerTokens": 25600, "slidingWindow": {"targetTokens": 12800}}


@pytest.mark.parametrize("model", ["gemini-2.5-flash-native-audio-preview-12-2025", "gemini-3.8-live"])
async def test_part_packing_follows_the_model(cert_dir: Path, model: str) -> None:
    with EmulatorThread(SCENARIO, cert_dir=cert_dir, pace=8.0) as emu:
        async with client(emu).aio.live.connect(model=model, config=config()) as s:
            await s.send_realtime_input(text="hi")
            turn = await collect_turn(s)
    packed = [m for m in turn.messages if m.server_content and m.server_content.model_turn
              and m.server_content.output_transcription]
    assert bool(packed) == model.startswith("gemini-3")
