"""What production refuses, refused with its close code and message (issue 14 §1): tools the Live
API does not offer, an unknown prebuilt voice, an invalid language code, per-model options."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types
from speakerd_workshop.emulator import EmulatorThread

from tests.emulator.conftest import MODEL, client, collect_turn, config, expect_close

NOT_SUPPORTED = "Operation is not implemented, or supported, or enabled."


def _speech(voice: str = "Kore", language: str = "en-US") -> types.SpeechConfig:
    return types.SpeechConfig(
        voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=voice)),
        language_code=language)


async def _connect(emu: EmulatorThread, model: str = MODEL, **options: Any) -> None:
    async with client(emu).aio.live.connect(model=model, config=config(**options)) as s:
        await s.send_realtime_input(text="hello")
        await collect_turn(s)


@pytest.mark.parametrize("tool", [
    types.Tool(code_execution=types.ToolCodeExecution()),
    types.Tool(url_context=types.UrlContext()),
], ids=["codeExecution", "urlContext"])
async def test_tools_live_does_not_offer_close_1008(emu: EmulatorThread, tool: types.Tool) -> None:
    e = await expect_close(_connect(emu, tools=[tool]))
    assert e.code == 1008 and NOT_SUPPORTED in str(e)


@pytest.mark.parametrize(("speech", "needle"), [
    (_speech(voice="Robotnik"), "Unknown prebuilt voice 'Robotnik'"),
    (_speech(language="english"), "Invalid language code 'english'"),
    (_speech(language="en_US"), "Invalid language code 'en_US'"),
])
async def test_bad_speech_config_closes_1007(emu: EmulatorThread, speech: types.SpeechConfig, needle: str) -> None:
    e = await expect_close(_connect(emu, speech_config=speech))
    assert e.code == 1007 and "Request contains an invalid argument." in str(e) and needle in str(e)


async def test_valid_voice_language_and_search_are_accepted(emu: EmulatorThread) -> None:
    await _connect(emu, speech_config=_speech("Puck", "de-DE"), tools=[types.Tool(google_search=types.GoogleSearch())])
    assert emu.connections[0].close_code is None or emu.connections[0].close_code == 1000


async def test_translation_config_only_on_the_translate_model(emu: EmulatorThread) -> None:
    gen = {"translation_config": {"target_language_code": "es"}}
    raw = {"setup": {"model": f"models/{MODEL}", "generationConfig": gen}}
    e = await expect_close(_raw_setup(emu, raw))
    assert e.code == 1008 and "translationConfig is not supported by models/gemini-3.8-live" in str(e)


async def test_translate_model_refuses_text_input(emu: EmulatorThread) -> None:
    e = await expect_close(_connect(emu, model="gemini-3.5-live-translate-preview", input_audio_transcription=None))
    assert e.code == 1008 and "text input is not supported" in str(e)


async def _raw_setup(emu: EmulatorThread, setup: dict[str, Any]) -> None:
    """The SDK has no translation_config field in LiveConnectConfig: send the setup as a raw client would."""
    import json
    import ssl

    import websockets
    from google.genai import errors

    url = (f"wss://127.0.0.1:{emu.port}//ws/google.ai.generativelanguage.v1beta.GenerativeService."
           "BidiGenerateContent?key=test-key")
    async with websockets.connect(url, ssl=ssl.create_default_context(cafile=str(emu.ca_file))) as ws:
        await ws.send(json.dumps(setup))
        try:
            await ws.recv()
        except websockets.ConnectionClosed as c:
            assert c.rcvd is not None
            raise errors.APIError(c.rcvd.code, {"message": c.rcvd.reason}) from c
