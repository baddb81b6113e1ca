"""A raw Live API client written from Google's WebSocket documentation, nothing more: the key in
``?key=``, camelCase keys, standard base64, JSON in text frames, the ``//ws/`` path Google's own
JavaScript SDK dials, and a close frame without a status code. It plays the same five cases as
tests/clients/js/play.mjs and reports the same fields."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import ssl
import urllib.request
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

MODEL = "models/gemini-3.8-live"
WAIT = 30.0
PATH = "//ws/google.ai.generativelanguage.{version}.GenerativeService.{method}?{query}"
VOLUME_TOOL = {"functionDeclarations": [{
    "name": "set_volume", "description": "Set the speaker volume", "behavior": "BLOCKING",
    "parameters": {"type": "OBJECT", "properties": {"level": {"type": "INTEGER"}}, "required": ["level"]},
}]}


class Raw:
    def __init__(self, base_url: str, api_key: str, ca_file: str) -> None:
        self.ws_base = base_url.replace("https://", "wss://", 1)
        self.base_url = base_url
        self.api_key = api_key
        self.ssl = ssl.create_default_context(cafile=ca_file)

    async def open(self, setup_extra: dict[str, Any] | None = None, *, token: str | None = None) -> ClientConnection:
        if token is None:
            url = self.ws_base + PATH.format(version="v1beta", method="BidiGenerateContent", query=f"key={self.api_key}")
        else:
            url = self.ws_base + PATH.format(version="v1alpha", method="BidiGenerateContentConstrained",
                                             query=f"access_token={token}")
        ws = await websockets.connect(url, ssl=self.ssl)
        setup = {"model": MODEL, "generationConfig": {"responseModalities": ["AUDIO"]},
                 "inputAudioTranscription": {}, "outputAudioTranscription": {}, **(setup_extra or {})}
        await send(ws, {"setup": setup})
        first = await recv(ws)
        if "setupComplete" not in first:
            raise AssertionError(f"expected setupComplete, got {first}")
        return ws

    def create_token(self) -> str:
        now = dt.datetime.now(dt.UTC)
        body = json.dumps({"uses": 1, "expireTime": (now + dt.timedelta(minutes=30)).isoformat(),
                           "newSessionExpireTime": (now + dt.timedelta(minutes=1)).isoformat()}).encode()
        req = urllib.request.Request(f"{self.base_url}//v1alpha/auth_tokens?key={self.api_key}", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, context=self.ssl, timeout=WAIT) as r:
            return str(json.load(r)["name"])


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))  # a str: a text frame


async def recv(ws: ClientConnection) -> dict[str, Any]:
    data = await asyncio.wait_for(ws.recv(), WAIT)
    message: dict[str, Any] = json.loads(data)
    return message


async def close_without_status(ws: ClientConnection) -> None:
    """A close frame with an empty payload, as browsers send for ``ws.close()`` (the server sees 1005)."""
    await ws.close(None)  # type: ignore[arg-type]  # websockets sends no status code for None


async def collect(ws: ClientConnection, until: str = "turnComplete") -> dict[str, Any]:
    out: dict[str, Any] = {"input": "", "output": "", "audioBytes": 0, "toolCalls": [], "flags": [],
                           "handle": None, "goAway": None}
    while True:
        m = await recv(ws)
        if (m.get("sessionResumptionUpdate") or {}).get("newHandle"):
            out["handle"] = m["sessionResumptionUpdate"]["newHandle"]
        if "goAway" in m:
            out["goAway"] = m["goAway"].get("timeLeft")
        out["toolCalls"] += (m.get("toolCall") or {}).get("functionCalls") or []
        sc = m.get("serverContent") or {}
        for part in (sc.get("modelTurn") or {}).get("parts") or []:
            out["audioBytes"] += len(base64.b64decode((part.get("inlineData") or {}).get("data", ""), validate=True))
        out["input"] += (sc.get("inputTranscription") or {}).get("text", "")
        out["output"] += (sc.get("outputTranscription") or {}).get("text", "")
        out["flags"] += [f for f in ("generationComplete", "interrupted", "turnComplete") if sc.get(f)]
        if (until == "toolCall" and out["toolCalls"]) or (until == "turnComplete" and "turnComplete" in out["flags"]):
            return out


async def voice(raw: Raw, pcm: bytes) -> dict[str, Any]:
    ws = await raw.open()
    for i in range(0, len(pcm), 3200):
        await send(ws, {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000",
                                                    "data": base64.b64encode(pcm[i:i + 3200]).decode()}}})
    turn = await collect(ws)
    await close_without_status(ws)
    return turn


async def text(raw: Raw, token: str | None = None) -> dict[str, Any]:
    ws = await raw.open(token=token)
    await send(ws, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "hello there"}]}],
                                      "turnComplete": True}})
    turn = await collect(ws)
    await close_without_status(ws)
    return turn


async def tool(raw: Raw) -> dict[str, Any]:
    ws = await raw.open({"tools": [VOLUME_TOOL]})
    await send(ws, {"realtimeInput": {"text": "set the volume to 5"}})
    call = (await collect(ws, "toolCall"))["toolCalls"][0]
    await send(ws, {"toolResponse": {"functionResponses": [
        {"id": call["id"], "name": call["name"], "response": {"result": "5"}}]}})
    after = await collect(ws)
    await close_without_status(ws)
    return {"call": {"name": call["name"], "args": call["args"]}, **after}


async def token(raw: Raw) -> dict[str, Any]:
    name = await asyncio.to_thread(raw.create_token)
    return {"tokenPrefix": name.split("/")[0], **(await text(raw, token=name))}


async def go_away(raw: Raw) -> dict[str, Any]:
    first = await raw.open({"sessionResumption": {}})
    await send(first, {"realtimeInput": {"text": "hello there"}})
    one = await collect(first)
    handle = one["handle"]
    while True:  # keep the newest handle until the goAway comes
        m = await recv(first)
        handle = (m.get("sessionResumptionUpdate") or {}).get("newHandle") or handle
        if "goAway" in m:
            left = m["goAway"]["timeLeft"]
            break
    second = await raw.open({"sessionResumption": {"handle": handle}})
    await close_without_status(first)
    await send(second, {"realtimeInput": {"text": "set the volume to 5"}})
    two = await collect(second)
    await close_without_status(second)
    return {"goAway": left, "first": one["output"], "resumedWith": handle, "second": two["output"],
            "flags": two["flags"], "audioBytes": two["audioBytes"]}


async def play_all(base_url: str, go_away_base_url: str, api_key: str, ca_file: str,
                   pcm: bytes) -> dict[str, dict[str, Any]]:
    """Every case, each reported as {"ok": True, ...} or {"ok": False, "error": ...}."""
    raw, short = Raw(base_url, api_key, ca_file), Raw(go_away_base_url, api_key, ca_file)
    cases = {"voice": voice(raw, pcm), "text": text(raw), "tool": tool(raw), "token": token(raw),
             "goaway": go_away(short)}
    results: dict[str, dict[str, Any]] = {}
    for name, run in cases.items():
        try:
            results[name] = {"ok": True, **(await run)}
        except Exception as e:  # report every case, as the JavaScript player does
            results[name] = {"ok": False, "error": repr(e)}
    return results
