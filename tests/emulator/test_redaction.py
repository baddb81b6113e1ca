"""``speakerd emulator -v`` never logs an API key or an ephemeral token (issue 14 §1)."""

from __future__ import annotations

import json
import logging
import ssl
from pathlib import Path

import pytest
import websockets
from google import genai
from google.genai import types
from speakerd_workshop.emulator import EmulatorThread
from speakerd_workshop.emulator.redact import redact

from tests.emulator.conftest import MODEL, CliEmulator

KEY = "emulator-secret-key-4711"
pytestmark = pytest.mark.filterwarnings("ignore:.*is experimental")


def test_redact_covers_query_headers_and_token_names() -> None:
    text = ("GET /ws/x?key=abc&alt=1 x-goog-api-key: abc\nAuthorization: Token auth_tokens/t0k "
            "{'x-goog-api-key': 'abc'} ?access_token=auth_tokens/t0k plain abc")
    out = redact(text, ("abc",))
    assert "abc" not in out and "t0k" not in out
    assert "?key=<redacted>&alt=1" in out and "x-goog-api-key: <redacted>" in out


async def test_verbose_log_shows_connections_but_no_secrets(tmp_path: Path) -> None:
    cli = CliEmulator(tmp_path / "certs", "-v", "--api-key", KEY, stderr=tmp_path / "stderr.log")
    try:
        ctx = ssl.create_default_context(cafile=cli.ca_file)
        opts = types.HttpOptions(base_url=cli.base_url, api_version="v1alpha",
                                 async_client_args={"ssl": ctx, "verify": ctx})
        admin = genai.Client(api_key=KEY, http_options=opts)
        token = await admin.aio.auth_tokens.create(config=types.CreateAuthTokenConfig(uses=0))
        assert token.name
        device = genai.Client(api_key=token.name, http_options=opts)
        async with device.aio.live.connect(model=MODEL, config=types.LiveConnectConfig()):
            pass
        ws_base = cli.base_url.replace("https://", "wss://")
        for method, query in (("BidiGenerateContent", f"key={KEY}"),
                              ("BidiGenerateContentConstrained", f"access_token={token.name}")):
            url = f"{ws_base}//ws/google.ai.generativelanguage.v1alpha.GenerativeService.{method}?{query}"
            async with websockets.connect(url, ssl=ctx) as ws:
                await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
                assert json.loads(await ws.recv()) == {"setupComplete": {}}
    finally:
        assert cli.stop() == 0
    log = (tmp_path / "stderr.log").read_text()
    assert "connection 3: GET" in log and "x-goog-api-key: <redacted>" in log  # it did log, verbosely
    secret = token.name.removeprefix("auth_tokens/")
    assert KEY not in log and secret not in log


async def test_emulator_thread_logs_carry_no_key(emu: EmulatorThread, caplog: pytest.LogCaptureFixture) -> None:
    """In-process use (tests, bench, the rig): the records are clean at the source, whatever handler."""
    caplog.set_level(logging.DEBUG)
    url = (f"wss://127.0.0.1:{emu.port}//ws/google.ai.generativelanguage.v1beta.GenerativeService."
           f"BidiGenerateContent?key={emu.api_key}")
    async with websockets.connect(url, ssl=ssl.create_default_context(cafile=str(emu.ca_file)),
                                  additional_headers={"x-goog-api-key": emu.api_key}) as ws:
        await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
        assert json.loads(await ws.recv()) == {"setupComplete": {}}
    server = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client"))
    assert "?key=<redacted>" in server and "x-goog-api-key: <redacted>" in server
    assert emu.api_key not in server
