"""Errors as the service reports them (close codes only), model option rules, goAway and faults."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from google.genai import errors, types
from speakerd_workshop.emulator import EmulatorThread, Fault

from tests.emulator.conftest import MODEL, client, collect_turn, config, expect_close


async def _connect(emu: EmulatorThread, model: str = MODEL, key: str = "test-key",
                   options: Mapping[str, object] | None = None) -> None:
    """One SDK session, opened and closed; ``options`` are LiveConnectConfig fields on top of ``config()``'s."""
    async with client(emu, key).aio.live.connect(model=model, config=config(**(options or {}))):
        pass


async def test_wrong_key_closes_1008(emu: EmulatorThread) -> None:
    e = await expect_close(_connect(emu, key="wrong"))
    assert e.code == 1008 and "API key not valid" in str(e)
    emu.wait_for(lambda: emu.connections[0].closed is not None)
    assert emu.connections[0].close_code == 1008


async def test_unknown_and_shut_down_models_close_1008(emu: EmulatorThread) -> None:
    for model in ("gemini-9-nonsense", "gemini-2.0-flash-live-001"):
        e = await expect_close(_connect(emu, model=model))
        assert e.code == 1008 and f"models/{model} is not found for API version v1beta" in str(e)
        assert len((e.details or "").encode()) <= 123


OPTION_CASES = [
    ("gemini-3.8-live", {"enable_affective_dialog": True}, True),
    ("gemini-3.8-live", {"proactivity": types.ProactivityConfig(proactive_audio=False)}, True),
    ("gemini-3.8-live", {"proactivity": types.ProactivityConfig(proactive_audio=True)}, False),
    ("gemini-3.8-live", {"thinking_config": types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW)}, True),
    ("gemini-3.8-live", {"response_modalities": ["TEXT"]}, True),
    ("gemini-3.1-flash-live-preview", {"thinking_config": types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW)}, False),
    ("gemini-3.1-flash-live-preview", {"thinking_config": types.ThinkingConfig(thinking_budget=0)}, True),
    ("gemini-3.1-flash-live-preview", {"enable_affective_dialog": True}, True),
    ("gemini-3.1-flash-live-preview", {"proactivity": types.ProactivityConfig(proactive_audio=True)}, True),
    ("gemini-2.5-flash-native-audio-preview-12-2025",
     {"enable_affective_dialog": True, "proactivity": types.ProactivityConfig(proactive_audio=False),
      "thinking_config": types.ThinkingConfig(thinking_budget=0)}, False),
    ("gemini-2.5-flash-native-audio-preview-12-2025",
     {"thinking_config": types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW)}, True),
]


@pytest.mark.parametrize(("model", "options", "rejected"), OPTION_CASES)
async def test_model_specific_options(emu: EmulatorThread, model: str, options: dict[str, object], rejected: bool) -> None:
    if rejected:
        e = await expect_close(_connect(emu, model=model, options=options))
        assert e.code == 1008 and model in str(e)
    else:
        await _connect(emu, model=model, options=options)
        emu.wait_for(lambda: emu.connections[0].closed is not None)
        assert emu.connections[0].close_code == 1000  # the SDK's own clean close


async def test_3_1_takes_client_content_only_to_seed_history(emu: EmulatorThread) -> None:
    model = "gemini-3.1-flash-live-preview"
    seeded = config(history_config=types.HistoryConfig(initial_history_in_client_content=True))
    async with client(emu).aio.live.connect(model=model, config=seeded) as s:
        await s.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="hi")]))
        turn = await collect_turn(s)
        assert turn.output_text
    async with client(emu).aio.live.connect(model=model, config=config()) as s:
        await s.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="hi")]))
        e = await expect_close(collect_turn(s))
    assert e.code == 1007


async def test_go_away_before_lifetime_then_close_1000(cert_dir) -> None:  # type: ignore[no-untyped-def]
    with EmulatorThread(cert_dir=cert_dir, connection_lifetime_seconds=1.0, go_away_before_seconds=0.5) as emu:
        async with client(emu).aio.live.connect(model=MODEL, config=config()) as s:
            seen = []

            async def read() -> None:
                while True:
                    async for m in s.receive():
                        if m.go_away:
                            seen.append(m.go_away.time_left)

            e = await expect_close(read())
        assert e.code == 1000 and seen == ["0.5s"]
        assert [ev.kind for ev in emu.events if ev.kind in ("goAway", "close")] == ["goAway", "close"]


async def _turn_outcome(emu: EmulatorThread) -> BaseException:
    async with client(emu).aio.live.connect(model=MODEL, config=config()) as s:
        await s.send_realtime_input(text="hello")
        try:
            await asyncio.wait_for(collect_turn(s), 20)
        except Exception as e:
            return e
    raise AssertionError("the turn completed despite the fault")


@pytest.mark.parametrize("code", [1007, 1008, 1011])
async def test_fault_close_mid_reply(emu: EmulatorThread, code: int) -> None:
    emu.inject(Fault("close", code=code))
    e = await _turn_outcome(emu)
    assert isinstance(e, errors.APIError) and e.code == code
    emu.wait_for(lambda: emu.connections[0].closed is not None)
    assert emu.connections[0].close_code == code


async def test_fault_close_at_setup(emu: EmulatorThread) -> None:
    emu.inject(Fault("close", code=1011, during="setup", reason="The service is currently unavailable."))
    e = await expect_close(_connect(emu))
    assert e.code == 1011 and "currently unavailable" in str(e)
    await _connect(emu)  # only the next connection was affected


async def test_fault_drop_mid_reply(emu: EmulatorThread) -> None:
    emu.inject(Fault("drop", after_chunks=1))
    e = await _turn_outcome(emu)
    # No close frame arrives: websockets reports 1006, which the SDK wraps.
    assert isinstance(e, errors.APIError) and e.code == 1006
    assert emu.connections[0].closed_by == "drop"


async def test_fault_malformed_frame(emu: EmulatorThread) -> None:
    emu.inject(Fault("malformed"))
    e = await _turn_outcome(emu)
    # The SDK raises a plain ValueError, not APIError: a client must survive that too.
    assert type(e) is ValueError and "Failed to parse response" in str(e)


async def test_fault_oversized_frame(emu: EmulatorThread) -> None:
    emu.inject(Fault("oversized"))
    e = await _turn_outcome(emu)
    assert isinstance(e, errors.APIError) and e.code == 1006  # the client refuses frames over 1 MiB


async def test_fault_stall_before_setup_complete(emu: EmulatorThread) -> None:
    emu.inject(Fault("stall", seconds=0))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_connect(emu), 1.0)
    emu.wait_for(lambda: "stall" in [e.kind for e in emu.events])
    assert "setupComplete" not in [e.kind for e in emu.events]


async def test_fault_delay_every_message(emu: EmulatorThread) -> None:
    emu.inject(Fault("delay", seconds=0.3))
    await _connect(emu)
    setup_in = next(r.time for r in emu.received if "setup" in r.message)
    setup_out = next(e.time for e in emu.events if e.kind == "setupComplete")
    assert setup_out - setup_in >= 0.3


async def test_fault_go_away_now_on_current_connection(emu: EmulatorThread) -> None:
    async with client(emu).aio.live.connect(model=MODEL, config=config()) as s:
        emu.wait_for(lambda: "setupComplete" in [e.kind for e in emu.events])
        await asyncio.to_thread(emu.inject, Fault("go_away", target="current", during="now"))
        async for m in s.receive():
            if m.go_away:
                assert m.go_away.time_left == "60s"  # production's notice
                break


async def test_fault_close_now_on_current_connection(emu: EmulatorThread) -> None:
    async with client(emu).aio.live.connect(model=MODEL, config=config()) as s:
        await asyncio.to_thread(emu.inject, Fault("close", code=1011, target="current", during="now"))

        async def read() -> None:
            while True:
                async for _ in s.receive():
                    pass

        e = await expect_close(read())
    assert e.code == 1011 and "Internal error" in str(e)
