"""The "raw" fault: frames sent exactly as the test gives them, then the session goes on (or closes)."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import pytest
import websockets
from speakerd_workshop.emulator import EmulatorThread, Fault

from tests.emulator.conftest import MODEL, SCENARIO

SETUP = json.dumps({"setup": {"model": f"models/{MODEL}", "generationConfig": {"responseModalities": ["AUDIO"]},
                              "outputAudioTranscription": {}}})


def _url(emu: EmulatorThread) -> str:
    return (f"wss://127.0.0.1:{emu.port}/ws/google.ai.generativelanguage.v1beta.GenerativeService."
            "BidiGenerateContent?key=test-key")


def _ctx(emu: EmulatorThread) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(emu.ca_file))


async def _text_turn(ws: Any) -> str:
    """Ask by text and read to turnComplete; the output transcript."""
    await ws.send(json.dumps({"realtimeInput": {"text": "hello"}}))
    said = ""
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
        sc = msg.get("serverContent", {})
        said += str(sc.get("outputTranscription", {}).get("text", ""))
        if sc.get("turnComplete"):
            return said


FRAMES: tuple[str | bytes, ...] = ('{"serverContent": {"turnComplete": tru', b"\xff\x00binary", "\ud800 lone")


async def test_raw_frames_now_arrive_verbatim_and_the_session_goes_on(emu: EmulatorThread) -> None:
    async with websockets.connect(_url(emu), ssl=_ctx(emu)) as ws:
        await ws.send(SETUP)
        assert json.loads(await ws.recv()) == {"setupComplete": {}}
        await asyncio.to_thread(emu.inject, Fault("raw", frames=FRAMES, target="current", during="now"))
        got = [await asyncio.wait_for(ws.recv(decode=False), 10) for _ in FRAMES]
        assert got == [f.encode("utf-8", "surrogatepass") if isinstance(f, str) else f for f in FRAMES]
        assert await _text_turn(ws) == SCENARIO.turns[0].reply_text
    kinds = [e.kind for e in emu.events]
    assert kinds.count("rawFrame") == len(FRAMES)


async def test_raw_frame_kinds_are_text_and_binary(emu: EmulatorThread) -> None:
    async with websockets.connect(_url(emu), ssl=_ctx(emu)) as ws:
        await ws.send(SETUP)
        await ws.recv()
        await asyncio.to_thread(emu.inject, Fault("raw", frames=("text", b"bytes"), target="current", during="now"))
        assert await asyncio.wait_for(ws.recv(), 10) == "text"  # a text frame decodes to str
        assert await asyncio.wait_for(ws.recv(), 10) == b"bytes"


async def test_raw_frames_before_setup_complete(emu: EmulatorThread) -> None:
    await asyncio.to_thread(emu.inject, Fault("raw", frames=(b"[]",), during="setup"))
    async with websockets.connect(_url(emu), ssl=_ctx(emu)) as ws:
        await ws.send(SETUP)
        assert await ws.recv() == b"[]"
        assert json.loads(await ws.recv()) == {"setupComplete": {}}
        assert await _text_turn(ws) == SCENARIO.turns[0].reply_text


async def test_raw_frames_mid_reply_then_close(emu: EmulatorThread) -> None:
    fault = Fault("raw", frames=(b"{}",), target="next", during="reply", after_chunks=1, then_close=True,
                  code=1011, reason="fuzz")
    await asyncio.to_thread(emu.inject, fault)
    async with websockets.connect(_url(emu), ssl=_ctx(emu)) as ws:
        await ws.send(SETUP)
        await ws.recv()
        await ws.send(json.dumps({"realtimeInput": {"text": "hello"}}))
        seen: list[bytes] = []

        async def read_all() -> None:
            while True:
                seen.append(await asyncio.wait_for(ws.recv(decode=False), 20))

        with pytest.raises(websockets.ConnectionClosedError) as e:
            await read_all()
    assert e.value.rcvd is not None and (e.value.rcvd.code, e.value.rcvd.reason) == (1011, "fuzz")
    assert seen[-1] == b"{}" and any(b"modelTurn" in m for m in seen[:-1])
