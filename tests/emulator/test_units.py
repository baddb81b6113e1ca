"""The emulator's parts on their own: wire normalisation, VAD rules, scenarios, certificates, CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from speakerd_workshop.emulator import Scenario, ScenarioError, ToolCallSpec
from speakerd_workshop.emulator.certs import ensure_certs
from speakerd_workshop.emulator.vad import EnergyVad, VadSettings
from speakerd_workshop.emulator.wire import WireError, b64decode, decode, normalise

from tests.conftest import ROOT, base_env
from tests.emulator.conftest import RATE, loud, quiet


def test_normalise_keeps_user_data_untouched() -> None:
    msg = {"tool_response": {"function_responses": [{"id": "a", "will_continue": False,
                                                      "response": {"snake_key": 1}}]}}
    assert normalise(msg) == {"toolResponse": {"functionResponses": [
        {"id": "a", "willContinue": False, "response": {"snake_key": 1}}]}}


def test_both_base64_alphabets() -> None:
    raw = bytes(range(256))
    assert b64decode(base64.urlsafe_b64encode(raw).decode()) == raw
    assert b64decode(base64.b64encode(raw).decode().rstrip("=")) == raw
    with pytest.raises(WireError):
        b64decode("!!!")
    with pytest.raises(WireError):
        decode(b"[1, 2]")


def _events(settings: VadSettings, pcm: bytes) -> list[tuple[str, float]]:
    return [(e.kind, round(e.offset, 2)) for e in EnergyVad(settings).feed(pcm)]


def test_vad_start_sensitivity() -> None:
    mid = loud(0.5, amplitude=0.02)  # about -37 dBFS: speech to HIGH, noise to LOW
    high = VadSettings.from_setup({"startOfSpeechSensitivity": "START_SENSITIVITY_HIGH"})
    low = VadSettings.from_setup({"startOfSpeechSensitivity": "START_SENSITIVITY_LOW"})
    assert [k for k, _ in _events(high, mid)] == ["start"]
    assert _events(low, mid) == []


def test_vad_end_needs_the_configured_silence() -> None:
    s = VadSettings.from_setup({"silenceDurationMs": 500})
    assert _events(s, loud(0.5) + quiet(0.4)) == [("start", 0.04)]
    assert _events(s, loud(0.5) + quiet(0.6)) == [("start", 0.04), ("end", 1.0)]


def test_vad_end_sensitivity_treats_soft_tails_differently() -> None:
    soft = loud(0.5) + loud(0.8, amplitude=0.006)  # about -47 dBFS
    high = VadSettings.from_setup({"silenceDurationMs": 300, "endOfSpeechSensitivity": "END_SENSITIVITY_HIGH"})
    low = VadSettings.from_setup({"silenceDurationMs": 300, "endOfSpeechSensitivity": "END_SENSITIVITY_LOW"})
    assert "end" in [k for k, _ in _events(high, soft)]
    assert "end" not in [k for k, _ in _events(low, soft)]


def test_vad_counts_audio_time_not_chunks() -> None:
    s = VadSettings.from_setup({"silenceDurationMs": 200})
    pcm = loud(0.3) + quiet(0.3)
    vad = EnergyVad(s)
    got = [e.kind for i in range(0, len(pcm), 999) for e in vad.feed(pcm[i : i + 999])]
    assert got == ["start", "end"]
    assert np.frombuffer(pcm, dtype="<i2").size == int(0.6 * RATE)


def test_scenario_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('default_reply = "bye"\n[[turns]]\nuser_transcript = "hi"\nreply_text = "hello"\n'
                    'reply_audio = "a.wav"\ntool_calls = [{ name = "t", args = { x = 1 }, non_blocking = true }]\n')
    sc = Scenario.load(toml)
    assert sc.turns[0].tool_calls == (ToolCallSpec("t", {"x": 1}, True),)
    assert sc.turns[0].reply_audio == tmp_path / "a.wav"
    assert sc.turn(5).reply_text == "bye"
    js = tmp_path / "s.json"
    js.write_text(json.dumps({"turns": [{"user_transcript": "a", "reply_text": "b"}]}))
    assert Scenario.load(js).turns[0].reply_text == "b"


@pytest.mark.parametrize(("text", "needle"), [
    ("[[turns]]\nreply = 'x'\n", "unknown key 'reply'"),
    ("turns = 3\n", "turns: must be a list"),
    ("[[turns]]\ntool_calls = [{ args = {} }]\n", "name: must be a non-empty string"),
    ("not toml [", "not valid TOML"),
])
def test_scenario_errors_are_one_line(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ScenarioError) as e:
        Scenario.load(p)
    assert needle in str(e.value) and "\n" not in str(e.value) and str(p) in str(e.value)


def test_builtin_scenario_loads() -> None:
    sc = Scenario.load(ROOT / "workshop" / "speakerd_workshop" / "emulator" / "scenarios" / "default.toml")
    assert sc.rules and sc.default_reply and not sc.turns


def test_certificates_are_reused_and_verify(tmp_path: Path) -> None:
    a = ensure_certs(tmp_path)
    pem = a.ca.read_bytes()
    b = ensure_certs(tmp_path)
    assert b.ca.read_bytes() == pem  # a daemon that trusts the CA keeps working across restarts
    assert oct(a.key.stat().st_mode & 0o777) == "0o600"
    ctx = ssl.create_default_context(cafile=str(a.ca))
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default: CA and leaf must be well formed

    async def handshake() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=a.server_context())
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        writer.close()
        server.close()

    asyncio.run(handshake())


def test_cli_prints_env_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "speakerd", "emulator", "--port", "0", "--print-env", "--cert-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=base_env(), cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        env: dict[str, str] = {}
        while len(env) < 7:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            k, _, v = line.removeprefix("export ").strip().partition("=")
            env[k] = v
        assert env["SSL_CERT_FILE"] == str(tmp_path / "ca.pem")
        assert env["GOOGLE_GEMINI_BASE_URL"].startswith("https://127.0.0.1:")
        import urllib.request

        ctx = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
        req = urllib.request.Request(env["GOOGLE_GEMINI_BASE_URL"] + "/v1alpha/auth_tokens", data=b"{}",
                                     headers={"x-goog-api-key": env["GEMINI_API_KEY"]}, method="POST")
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            assert json.load(r)["name"].startswith("auth_tokens/")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_cli_bad_scenario_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text("turns = 1\n")
    r = subprocess.run([sys.executable, "-m", "speakerd", "emulator", "--scenario", str(p)],
                       capture_output=True, text=True, env=base_env(), cwd=ROOT, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "must be a list" in r.stderr


def test_docs_scenario_examples_load(tmp_path: Path) -> None:
    """The TOML examples in docs/emulator.md are valid scenarios."""
    import re

    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "docs" / "emulator.md").read_text(), re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        p = tmp_path / f"example{i}.toml"
        p.write_text(block)
        sc = Scenario.load(p)
        assert sc.rules or sc.turns
