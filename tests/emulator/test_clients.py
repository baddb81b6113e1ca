"""Clients the project did not write, against ``speakerd emulator`` (issue 14 §1): Google's
JavaScript SDK (installed by ``npm ci`` from tests/clients/js) and a documentation-literal raw
WebSocket client each play a voice turn, a text turn, a tool call with its response, an
ephemeral-token session and a goAway with resumption."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients import raw_client
from tests.conftest import ROOT
from tests.emulator.conftest import CliEmulator, quiet, speech

JS = ROOT / "tests" / "clients" / "js"
GREETING = "Hello! I'm the speakerd emulator. How can I help?"  # the built-in scenario's
CANNOT = "I can't change the volume from here."
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:.*is experimental")]


@pytest.fixture(scope="module")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CliEmulator, CliEmulator]]:
    """Two ``speakerd emulator`` processes on the built-in scenario: production's limits, and one
    whose connections get a goAway 1.5 s in (the resumption case)."""
    certs = tmp_path_factory.mktemp("client-certs")
    logs = tmp_path_factory.mktemp("client-logs")
    main = CliEmulator(certs, "--pace", "4", "-v", stderr=logs / "main.log")
    short = CliEmulator(certs, "--pace", "4", "--lifetime", "4", "--go-away-before", "2.5", "-v",
                        stderr=logs / "short.log")
    yield main, short
    main.stop()
    short.stop()


def _check(results: dict[str, dict[str, Any]]) -> None:
    """The same outcomes whichever client played."""
    assert all(r["ok"] for r in results.values()), results
    voice = results["voice"]
    assert voice["input"] == "hello" and voice["output"] == GREETING and voice["audioBytes"] > 0
    assert voice["flags"] == ["generationComplete", "turnComplete"]
    text = results["text"]
    assert text["output"] == GREETING and text["audioBytes"] > 0
    tool = results["tool"]
    assert tool["call"] == {"name": "set_volume", "args": {"level": 5}}
    assert tool["output"] == "Volume is now 5." and tool["audioBytes"] > 0
    token = results["token"]
    assert token["tokenPrefix"] == "auth_tokens" and token["output"] == GREETING
    goaway = results["goaway"]
    assert goaway["goAway"] == "2.5s" and goaway["first"] == GREETING and goaway["resumedWith"]
    assert goaway["second"] == CANNOT and goaway["audioBytes"] > 0  # undeclared tool: said, not silent



@pytest.fixture(scope="module")
def node_modules() -> Path:
    """``npm ci`` once, only when node_modules is missing (scripts/dev-setup.sh normally did it)."""
    modules = JS / "node_modules"
    if not (modules / "@google" / "genai").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: Google's JavaScript SDK cannot be installed")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=600,
                       stdout=subprocess.DEVNULL)
    return modules


def test_google_javascript_sdk(emulators: tuple[CliEmulator, CliEmulator], node_modules: Path,
                               tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    main, short = emulators
    pcm = tmp_path / "hello.pcm"
    pcm.write_bytes(speech("hello") + quiet(0.8))
    env = {**os.environ, "EMU_BASE_URL": main.base_url, "EMU_GOAWAY_BASE_URL": short.base_url,
           "EMU_API_KEY": main.env["GEMINI_API_KEY"], "EMU_SPEECH_PCM": str(pcm),
           "NODE_EXTRA_CA_CERTS": main.ca_file}
    r = subprocess.run([node, "play.mjs"], cwd=JS, env=env, capture_output=True, text=True, timeout=180)
    results = {d["case"]: d for d in (json.loads(line) for line in r.stdout.splitlines() if line.startswith("{"))}
    assert set(results) == {"voice", "text", "tool", "token", "goaway"}, r.stdout + r.stderr
    _check(results)
    assert r.returncode == 0, r.stderr


async def test_raw_documentation_literal_client(emulators: tuple[CliEmulator, CliEmulator]) -> None:
    main, short = emulators
    assert main.stderr_path is not None
    before = len(main.stderr_path.read_text().splitlines())
    pcm = speech("hello") + quiet(0.8)
    results = await raw_client.play_all(main.base_url, short.base_url, main.env["GEMINI_API_KEY"],
                                        main.ca_file, pcm)
    _check(results)
    # Four sessions on the main emulator, each ended by a close frame without a status code.
    closes = [line for line in main.stderr_path.read_text().splitlines()[before:] if ": closed " in line]
    assert len(closes) == 4 and all("closed 1005 '' by client" in line for line in closes), closes
