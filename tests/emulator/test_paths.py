"""Request targets are paths: any number of leading slashes, the query string kept (issue 14 §1).

Google's JavaScript SDK always dials ``//ws/google.ai...``; the Python SDK does the same when its
base URL ends in a slash, which is the form of production's default base URL.
"""

from __future__ import annotations

import json
import ssl
import urllib.request

import pytest
import websockets
from google import genai
from google.genai import types
from speakerd_workshop.emulator import EmulatorThread

from tests.emulator.conftest import MODEL, collect_turn, config

pytestmark = pytest.mark.filterwarnings("ignore:.*is experimental")


async def test_python_sdk_with_trailing_slash_base_url(emu: EmulatorThread) -> None:
    ctx = ssl.create_default_context(cafile=str(emu.ca_file))
    opts = types.HttpOptions(base_url=emu.base_url + "/", api_version="v1beta", async_client_args={"ssl": ctx})
    c = genai.Client(api_key="test-key", http_options=opts)
    async with c.aio.live.connect(model=MODEL, config=config()) as s:
        await s.send_realtime_input(text="hello there")
        turn = await collect_turn(s)
    assert turn.output_text and "generation_complete" in turn.flags
    assert emu.connections[0].path.startswith("//ws/google.ai.generativelanguage.v1beta.")


@pytest.mark.parametrize("slashes", ["/", "//", "///"])
async def test_raw_websocket_any_leading_slashes_keeps_query(emu: EmulatorThread, slashes: str) -> None:
    url = (f"wss://127.0.0.1:{emu.port}{slashes}ws/google.ai.generativelanguage.v1beta.GenerativeService."
           "BidiGenerateContent?key=test-key")
    async with websockets.connect(url, ssl=ssl.create_default_context(cafile=str(emu.ca_file))) as ws:
        await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
        assert json.loads(await ws.recv()) == {"setupComplete": {}}
    (conn,) = emu.connections
    assert conn.auth == "query-key" and conn.credential == "test-key"  # the query string was read


@pytest.mark.parametrize("slashes", ["/", "//"])
def test_token_endpoint_any_leading_slashes_and_query_key(emu: EmulatorThread, slashes: str) -> None:
    ctx = ssl.create_default_context(cafile=str(emu.ca_file))
    req = urllib.request.Request(f"{emu.base_url}{slashes}v1alpha/auth_tokens?key=test-key", data=b"{}",
                                 method="POST")
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        assert json.load(r)["name"].startswith("auth_tokens/")
    assert len(emu.tokens) == 1
