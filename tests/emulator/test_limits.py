"""Production's limits, shortened by ``speakerd emulator`` flags (issue 14 §1): the connection
lifetime with its goAway, and the session length without context-window compression."""

from __future__ import annotations

import asyncio
import io
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types
from PIL import Image
from speakerd_workshop.emulator import Emulator

from tests.emulator.conftest import MODEL, CliEmulator, collect_turn, config, expect_close, loud

DEADLINE = "Deadline expired before operation could complete."


def test_defaults_are_production_limits() -> None:
    emu = Emulator()
    assert (emu.connection_lifetime_seconds, emu.go_away_before_seconds) == (600, 60)
    assert (emu.audio_limit_seconds, emu.audio_video_limit_seconds) == (900, 120)


@pytest.fixture
def short(tmp_path: Path) -> Iterator[CliEmulator]:
    cli = CliEmulator(tmp_path / "certs", "--lifetime", "4", "--go-away-before", "1", "--pace", "8",
                      "--audio-limit", "1.5", "--audio-video-limit", "1")
    yield cli
    cli.stop()


def _client(cli: CliEmulator) -> genai.Client:
    ctx = ssl.create_default_context(cafile=cli.ca_file)
    return genai.Client(api_key="test-key", http_options=types.HttpOptions(
        base_url=cli.base_url, api_version="v1beta", async_client_args={"ssl": ctx}))


async def _read_all(session: Any, seen: list[types.LiveServerMessage]) -> None:
    while True:
        async for m in session.receive():
            seen.append(m)


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


@pytest.mark.slow
async def test_lifetime_go_away_then_close_1000(short: CliEmulator) -> None:
    seen: list[types.LiveServerMessage] = []
    cfg = config(context_window_compression=types.ContextWindowCompressionConfig(sliding_window={}))
    async with _client(short).aio.live.connect(model=MODEL, config=cfg) as s:
        e = await expect_close(_read_all(s, seen), limit=30)
    assert e.code == 1000
    assert [m.go_away.time_left for m in seen if m.go_away] == ["1s"]


@pytest.mark.slow
async def test_audio_only_session_ends_at_its_limit_without_compression(short: CliEmulator) -> None:
    seen: list[types.LiveServerMessage] = []
    async with _client(short).aio.live.connect(model=MODEL, config=config()) as s:
        await s.send_realtime_input(audio=types.Blob(data=loud(0.1), mime_type="audio/pcm;rate=16000"))
        e = await expect_close(_read_all(s, seen), limit=30)
    assert e.code == 1011 and DEADLINE in str(e)
    assert not any(m.go_away for m in seen)  # the session limit came first, not the lifetime


@pytest.mark.slow
async def test_audio_video_session_ends_sooner(short: CliEmulator) -> None:
    async with _client(short).aio.live.connect(model=MODEL, config=config()) as s:
        await s.send_realtime_input(audio=types.Blob(data=loud(0.1), mime_type="audio/pcm;rate=16000"))
        await s.send_realtime_input(video=types.Blob(data=_jpeg(), mime_type="image/jpeg"))
        e = await expect_close(_read_all(s, []), limit=30)
    assert e.code == 1011 and DEADLINE in str(e)


@pytest.mark.slow
async def test_compression_lets_the_session_go_on(short: CliEmulator) -> None:
    cfg = config(context_window_compression=types.ContextWindowCompressionConfig(sliding_window={}))
    async with _client(short).aio.live.connect(model=MODEL, config=cfg) as s:
        await s.send_realtime_input(audio=types.Blob(data=loud(0.1), mime_type="audio/pcm;rate=16000"))
        await s.send_realtime_input(video=types.Blob(data=_jpeg(), mime_type="image/jpeg"))
        await asyncio.sleep(1.8)  # past both session limits
        await s.send_realtime_input(text="hello")
        turn = await collect_turn(s)
    assert "turn_complete" in turn.flags and turn.audio
