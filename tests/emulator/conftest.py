"""Helpers for driving the emulator with the real google-genai SDK and with raw WebSocket JSON."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google import genai
from google.genai import errors, types
from speakerd_workshop.emulator import EmulatorThread, Scenario, ToolCallSpec, Turn, tts

RATE = 16000
CHUNK = 2560  # 80 ms of 16 kHz s16le, as the daemon sends
MODEL = "gemini-3.8-live"

SCENARIO = Scenario(
    turns=(
        Turn(user_transcript="hello there", reply_text="Hi! How can I help you today?"),
        Turn(user_transcript="what about tomorrow", reply_text="Tomorrow looks sunny."),
        Turn(user_transcript="and after that", reply_text="Rain, I am afraid."),
    ),
    default_reply="That is all I know.",
)


def loud(seconds: float, amplitude: float = 0.3, freq: float = 220.0) -> bytes:
    """A voiced-level tone (about -13 dBFS RMS) the energy VAD takes for speech."""
    t = np.arange(int(seconds * RATE)) / RATE
    return bytes((amplitude * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes())


def quiet(seconds: float) -> bytes:
    return b"\0\0" * int(seconds * RATE)


def speech(text: str) -> bytes:
    return tts.synthesize(text, rate=RATE)


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator-certs")


@pytest.fixture
def emu(cert_dir: Path) -> Iterator[EmulatorThread]:
    with EmulatorThread(SCENARIO, cert_dir=cert_dir, pace=8.0) as e:
        yield e


def client(emu: EmulatorThread, api_key: str = "test-key", api_version: str = "v1beta") -> genai.Client:
    return genai.Client(api_key=api_key, http_options=emu.http_options(api_version))


def config(**kw: Any) -> types.LiveConnectConfig:
    base: dict[str, Any] = {
        "response_modalities": ["AUDIO"],
        "input_audio_transcription": {},
        "output_audio_transcription": {},
        "session_resumption": types.SessionResumptionConfig(),
        "realtime_input_config": {"automatic_activity_detection": {"silence_duration_ms": 300}},
    }
    base.update(kw)
    return types.LiveConnectConfig(**base)


async def send_pcm(session: Any, pcm: bytes) -> None:
    for i in range(0, len(pcm), CHUNK):
        await session.send_realtime_input(audio=types.Blob(data=pcm[i : i + CHUNK], mime_type="audio/pcm;rate=16000"))


@dataclass
class TurnResult:
    audio: bytes = b""
    input_text: str = ""
    output_text: str = ""
    flags: list[str] = field(default_factory=list)  # generation_complete, interrupted, turn_complete
    tool_calls: list[types.FunctionCall] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    messages: list[types.LiveServerMessage] = field(default_factory=list)


async def collect_turn(session: Any, until: str = "turn_complete") -> TurnResult:
    """Read messages (across receive() generators) until ``until`` is seen."""
    r = TurnResult()
    while True:
        async for m in session.receive():
            r.messages.append(m)
            sc = m.server_content
            if m.tool_call:
                r.tool_calls.extend(m.tool_call.function_calls or [])
            if m.tool_call_cancellation:
                r.cancelled.extend(m.tool_call_cancellation.ids or [])
            if sc is not None:
                if sc.model_turn and m.data:
                    r.audio += m.data
                if sc.input_transcription and sc.input_transcription.text:
                    r.input_text += sc.input_transcription.text
                if sc.output_transcription and sc.output_transcription.text:
                    r.output_text += sc.output_transcription.text
                for flag in ("generation_complete", "interrupted", "turn_complete"):
                    if getattr(sc, flag):
                        r.flags.append(flag)
            if until == "tool_call" and r.tool_calls:
                return r
            if until in r.flags:
                return r


async def expect_close(coro: Any, limit: float = 20.0) -> errors.APIError:
    try:
        await asyncio.wait_for(coro, limit)
    except errors.APIError as e:
        return e
    raise AssertionError("the connection was not closed")


__all__ = ["SCENARIO", "ToolCallSpec"]


class CliEmulator:
    """``speakerd emulator`` as a child process on a free port; ``env`` is what it printed."""

    def __init__(self, cert_dir: Path, *args: str, stderr: Path | None = None) -> None:
        import subprocess
        import sys

        from tests.conftest import ROOT, base_env

        self.stderr_path = stderr
        self._err = stderr.open("w") if stderr else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "speakerd", "emulator", "--port", "0", "--print-env",
             "--cert-dir", str(cert_dir), *args],
            stdout=subprocess.PIPE, stderr=self._err, text=True, env=base_env(), cwd=ROOT,
        )
        self.env: dict[str, str] = {}
        assert self.proc.stdout is not None
        while len(self.env) < 7:
            line = self.proc.stdout.readline()
            if not line:
                self.stop()
                raise RuntimeError("speakerd emulator exited before printing its environment")
            k, _, v = line.removeprefix("export ").strip().partition("=")
            self.env[k] = v.strip("'")

    @property
    def base_url(self) -> str:
        return self.env["GOOGLE_GEMINI_BASE_URL"]

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def ca_file(self) -> str:
        return self.env["SSL_CERT_FILE"]

    def stop(self) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        if self._err is not None and hasattr(self._err, "close"):
            self._err.close()
        return self.proc.returncode
