"""Ephemeral tokens through the SDK's auth_tokens.create, and a raw WebSocket client as in Google's docs."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import ssl
from typing import Any

import pytest
import websockets
from google import genai
from google.genai import errors, types
from speakerd_workshop.emulator import EmulatorThread

from tests.emulator.conftest import MODEL, SCENARIO, client, collect_turn, config, expect_close
from tests.sounds import silence, speech

pytestmark = pytest.mark.filterwarnings("ignore:.*is experimental")  # the SDK's ExperimentalWarning


def _token_config(**kw: Any) -> types.CreateAuthTokenConfig:
    now = dt.datetime.now(dt.UTC)
    base: dict[str, Any] = {
        "uses": 1,
        "expire_time": now + dt.timedelta(minutes=30),
        "new_session_expire_time": now + dt.timedelta(minutes=1),
        "live_connect_constraints": types.LiveConnectConstraints(
            model=MODEL, config=types.LiveConnectConfig(temperature=0.5)),
    }
    base.update(kw)
    return types.CreateAuthTokenConfig(**base)


async def test_token_create_connect_and_uses_enforced(emu: EmulatorThread) -> None:
    admin = client(emu, api_version="v1alpha")
    token = await admin.aio.auth_tokens.create(config=_token_config())
    assert token.name and token.name.startswith("auth_tokens/")
    (issued,) = emu.tokens
    assert issued.uses_left == 1 and issued.setup is not None and issued.setup["model"] == f"models/{MODEL}"
    device = genai.Client(api_key=token.name, http_options=emu.http_options("v1alpha"))
    async with device.aio.live.connect(model=MODEL, config=config()) as s:
        await s.send_realtime_input(text="hi")
        turn = await collect_turn(s)
    assert turn.output_text == SCENARIO.turns[0].reply_text
    conn = emu.connections[0]
    assert (conn.method, conn.api_version, conn.auth) == ("BidiGenerateContentConstrained", "v1alpha", "token-header")
    assert conn.setup is not None and conn.setup["generationConfig"]["temperature"] == 0.5  # constraint applied
    e = await expect_close(device.aio.live.connect(model=MODEL, config=config()).__aenter__())
    assert e.code == 1008 and "no uses left" in str(e)


def test_sync_token_create_and_wrong_key(emu: EmulatorThread) -> None:
    admin = client(emu, api_version="v1alpha")  # keep a reference: a collected Client closes its httpx client
    token = admin.auth_tokens.create(config=_token_config(uses=0))
    assert token.name in [t.name for t in emu.tokens]
    assert emu.tokens[0].uses_left is None  # unlimited
    wrong = client(emu, api_key="wrong", api_version="v1alpha")
    with pytest.raises(errors.ClientError) as e:
        wrong.auth_tokens.create(config=_token_config())
    assert e.value.code == 400


async def test_expired_token_and_api_key_on_constrained_path(emu: EmulatorThread) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    admin = client(emu, api_version="v1alpha")
    token = await admin.aio.auth_tokens.create(config=_token_config(expire_time=past, new_session_expire_time=past))
    device = genai.Client(api_key=token.name, http_options=emu.http_options("v1alpha"))
    e = await expect_close(device.aio.live.connect(model=MODEL, config=config()).__aenter__())
    assert e.code == 1008 and "expired" in str(e)


def _ctx(emu: EmulatorThread) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(emu.ca_file))


def _url(emu: EmulatorThread, query: str, method: str = "BidiGenerateContent", version: str = "v1beta") -> str:
    return (f"wss://127.0.0.1:{emu.port}/ws/google.ai.generativelanguage.{version}.GenerativeService."
            f"{method}?{query}")


async def _raw_turn(ws: Any, pcm: bytes) -> dict[str, Any]:
    await ws.send(json.dumps({"setup": {
        "model": f"models/{MODEL}",
        "generationConfig": {"responseModalities": ["AUDIO"]},
        "inputAudioTranscription": {}, "outputAudioTranscription": {},
        "realtimeInputConfig": {"automaticActivityDetection": {"silenceDurationMs": 300}},
    }}))
    first = await ws.recv()
    assert isinstance(first, bytes)  # JSON in binary frames, like production
    assert json.loads(first) == {"setupComplete": {}}
    for i in range(0, len(pcm), 3200):
        await ws.send(json.dumps({"realtimeInput": {"audio": {
            "mimeType": "audio/pcm;rate=16000", "data": base64.b64encode(pcm[i:i + 3200]).decode()}}}))
    out: dict[str, Any] = {"audio": b"", "input": "", "output": "", "keys": set()}
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
        out["keys"] |= set(msg)
        sc = msg.get("serverContent", {})
        for part in sc.get("modelTurn", {}).get("parts", []):
            out["audio"] += base64.b64decode(part["inlineData"]["data"])
        out["input"] += sc.get("inputTranscription", {}).get("text", "")
        out["output"] += sc.get("outputTranscription", {}).get("text", "")
        if sc.get("turnComplete"):
            return out


async def test_raw_websocket_client_with_key_in_query(emu: EmulatorThread) -> None:
    pcm = speech("hello there") + silence(0.6)
    async with websockets.connect(_url(emu, "key=test-key"), ssl=_ctx(emu)) as ws:
        out = await _raw_turn(ws, pcm)
    assert out["input"] == SCENARIO.turns[0].user_transcript
    assert out["output"] == SCENARIO.turns[0].reply_text and out["audio"]
    assert emu.received_audio() == pcm
    assert emu.connections[0].auth == "query-key"


async def test_raw_websocket_with_access_token(emu: EmulatorThread) -> None:
    admin = client(emu, api_version="v1alpha")
    token = await admin.aio.auth_tokens.create(config=_token_config())
    url = _url(emu, f"access_token={token.name}", "BidiGenerateContentConstrained", "v1alpha")
    async with websockets.connect(url, ssl=_ctx(emu)) as ws:
        out = await _raw_turn(ws, speech("hello there") + silence(0.6))
    assert out["output"] == SCENARIO.turns[0].reply_text
    assert emu.connections[0].auth == "query-token"


async def test_raw_websocket_errors_are_close_frames_only(emu: EmulatorThread) -> None:
    async with websockets.connect(_url(emu, ""), ssl=_ctx(emu)) as ws:
        await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
        with pytest.raises(websockets.ConnectionClosedError) as e:
            await ws.recv()
    assert e.value.rcvd is not None and e.value.rcvd.code == 1008
    async with websockets.connect(_url(emu, "key=test-key"), ssl=_ctx(emu)) as ws:
        await ws.send("not json")
        with pytest.raises(websockets.ConnectionClosedError) as e:
            await ws.recv()
    assert e.value.rcvd is not None and e.value.rcvd.code == 1007


async def test_unknown_path_is_refused(emu: EmulatorThread) -> None:
    url = f"wss://127.0.0.1:{emu.port}/ws/something.else?key=test-key"
    with pytest.raises(websockets.InvalidStatus) as e:
        async with websockets.connect(url, ssl=_ctx(emu)):
            pass
    assert e.value.response.status_code == 404
