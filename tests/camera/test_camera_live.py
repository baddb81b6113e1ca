"""The camera through the real google-genai SDK to the emulator: continuous frames, the look tool,
forced compression, and the emulator's own video rules (JPEG only, the 2-minute audio+video limit)."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import pytest
from google.genai import types
from PIL import Image
from speakerd_workshop.emulator import EmulatorThread, Scenario, Turn

from speakerd.camera import LOOK_SPEC, camera_connect_overrides, look_handler, open_camera
from speakerd.config import CameraSettings, CompressionSettings, LiveSettings, Settings, ToolsSettings
from speakerd.live.connect_config import build_connect_config
from speakerd.live.tools import ToolRegistry
from tests.camera.conftest import COLOURS, camera_settings, colour_index
from tests.emulator.conftest import MODEL, client, collect_turn, expect_close
from tests.sounds import loud
from tests.support import until

JPEG = "image/jpeg"


def settings_for(camera: CameraSettings, **live: Any) -> Settings:
    # Compression off in [live]: whatever reaches the emulator was forced by the camera.
    return Settings(
        camera=camera,
        live=LiveSettings(model=MODEL, google_search=False, compression=CompressionSettings(enabled=False),
                          **live),
        tools=ToolsSettings(builtin=[]),
    )


def connect_config(settings: Settings, registry: ToolRegistry | None = None) -> types.LiveConnectConfig:
    return build_connect_config(settings.live, registry, **camera_connect_overrides(settings))


def jpeg_frame(colour: tuple[int, int, int] = (200, 10, 10), size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


async def send_video(session: Any, data: bytes, mime: str = JPEG) -> None:
    await session.send_realtime_input(video=types.Blob(data=data, mime_type=mime))


def assert_jpegs(frames: list[tuple[float, bytes]], size: tuple[int, int]) -> None:
    for _t, data in frames:
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == "JPEG"
            img.load()
            assert img.size == size


@pytest.fixture
def frames_emu(cert_dir: Path) -> Any:
    scenario = Scenario(turns=(Turn(reply_text="I have seen {frames} frames."),
                               Turn(reply_text="Then {frames}.")))
    with EmulatorThread(scenario, cert_dir=cert_dir, pace=8.0) as e:
        yield e


async def test_continuous_frames_arrive_as_jpeg_at_most_fps_and_only_while_started(
    frames_emu: EmulatorThread, images: Path
) -> None:
    emu = frames_emu
    fps = 5.0
    settings = settings_for(camera_settings(images, fps=fps, send="always"), media_resolution="low")
    cam = open_camera(settings.camera)
    assert cam is not None
    async with client(emu).aio.live.connect(model=MODEL, config=connect_config(settings)) as s:
        t0 = time.monotonic()
        cam.start(asyncio.get_running_loop(), lambda jpeg: send_video(s, jpeg))
        await until(lambda: len(emu.received_video()) >= 4)
        await cam.stop()
        elapsed = time.monotonic() - t0
        delivered = cam.stats.delivered
        await until(lambda: len(emu.received_video()) == delivered)
        await asyncio.sleep(3 / fps)
        frames = emu.received_video()
        assert len(frames) == delivered  # nothing after stop
        assert delivered <= fps * elapsed + 1
        # The scenario counts the frames of each turn: the model "saw" every one, once.
        await s.send_realtime_input(text="what do you see")
        first = await collect_turn(s)
        await s.send_realtime_input(text="and now")
        second = await collect_turn(s)
    assert first.output_text == f"I have seen {delivered} frames."
    assert second.output_text == "Then 0."
    assert_jpegs(frames, (320, 240))
    assert [colour_index(d) for _t, d in frames] == [i % len(COLOURS) for i in range(len(frames))]
    (conn,) = emu.connections
    assert conn.setup is not None
    assert "contextWindowCompression" in conn.setup
    assert conn.setup["generationConfig"]["mediaResolution"] == "MEDIA_RESOLUTION_LOW"
    usage = first.messages[-1].usage_metadata
    assert usage is not None and usage.prompt_tokens_details is not None
    video = [d.token_count for d in usage.prompt_tokens_details if d.modality == types.MediaModality.VIDEO]
    assert video == [64 * delivered]


async def test_look_tool_sends_exactly_the_requested_frames(emu: EmulatorThread, images: Path) -> None:
    settings = settings_for(camera_settings(images, fps=5.0, send="on_look"))
    lights: list[bool] = []
    cam = open_camera(settings.camera, on_active=lights.append)
    assert cam is not None
    sessions: list[Any] = []
    sent_while: list[bool] = []

    async def send(jpeg: bytes) -> None:
        sent_while.append(bool(lights) and lights[-1])
        await send_video(sessions[0], jpeg)

    registry = ToolRegistry(settings.tools, {}, extra={"look": (LOOK_SPEC, look_handler(cam, send))})
    # The session declares the tool through the daemon's own config builder.
    async with client(emu).aio.live.connect(model=MODEL, config=connect_config(settings, registry)) as s:
        sessions.append(s)
        await s.send_realtime_input(text="what am I holding")
        call = (await collect_turn(s, until="tool_call")).tool_calls[0]
        assert (call.name, call.args) == ("look", {"count": 3})
        assert emu.received_video() == []  # nothing before the model asks
        result = await registry.call(call.name or "", call.args)
        await s.send_tool_response(function_responses=[types.FunctionResponse(
            id=call.id, name=call.name, response=result)])
        turn = await collect_turn(s)
    assert turn.output_text == "I looked at 3 photos."
    frames = emu.received_video()
    assert len(frames) == 3 and cam.stats.delivered == 3
    assert_jpegs(frames, (320, 240))
    assert lights == [True, False] and sent_while == [True, True, True]
    (conn,) = emu.connections
    assert conn.setup is not None and "contextWindowCompression" in conn.setup
    (decl,) = [d for t in conn.setup["tools"] for d in t.get("functionDeclarations", [])]
    assert decl["name"] == "look" and decl["behavior"] == "BLOCKING"


async def test_look_handler_clamps_and_reports_camera_errors(emu: EmulatorThread, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")  # an "image" that cannot be decoded
    cam = open_camera(camera_settings(tmp_path))
    assert cam is not None
    sent: list[bytes] = []

    async def send(jpeg: bytes) -> None:
        sent.append(jpeg)

    result = await look_handler(cam, send)(count=2)
    assert set(result) == {"error"} and result["error"].startswith("camera:") and "\n" not in result["error"]
    assert sent == []


@pytest.mark.parametrize(
    ("data", "mime", "why"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 32, JPEG, "not a complete JPEG"),
        (jpeg_frame()[:-200], JPEG, "not a complete JPEG"),
        (jpeg_frame()[:200] + b"\0" * 64 + b"\xff\xd9", JPEG, "cannot be decoded"),
    ],
)
async def test_emulator_refuses_a_bad_frame(emu: EmulatorThread, data: bytes, mime: str, why: str) -> None:
    async with client(emu).aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as s:
        await send_video(s, data, mime)
        err = await expect_close(collect_turn(s))
    assert err.code == 1007 and why in str(err)


async def test_emulator_takes_media_chunks_and_png(emu: EmulatorThread) -> None:
    png = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(png, "PNG")
    async with client(emu).aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as s:
        await s.send_realtime_input(media=types.Blob(data=jpeg_frame(), mime_type=JPEG))
        await send_video(s, png.getvalue(), "image/png")
        await until(lambda: len(emu.received_video()) == 2)
    frames = emu.received_video()
    assert [d for _t, d in frames] == [jpeg_frame(), png.getvalue()]
    assert [e.detail["width"] for e in emu.events if e.kind == "videoFrame"] == [64, 32]


@pytest.fixture
def short_limit_emu(cert_dir: Path) -> Any:
    with EmulatorThread(Scenario(turns=(Turn(reply_text="ok"),)), cert_dir=cert_dir,
                        audio_video_limit_seconds=0.5) as e:
        yield e


async def test_audio_and_video_without_compression_end_the_session(short_limit_emu: EmulatorThread) -> None:
    emu = short_limit_emu
    async with client(emu).aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as s:
        await s.send_realtime_input(audio=types.Blob(data=loud(0.08), mime_type="audio/pcm;rate=16000"))
        await send_video(s, jpeg_frame())
        err = await expect_close(collect_turn(s))
    assert err.code == 1011
    limits = [e.detail for e in emu.events if e.kind == "sessionLimit"]
    assert limits == [{"media": "audio+video", "seconds": 0.5}]


async def test_compression_lifts_the_audio_video_limit(short_limit_emu: EmulatorThread, images: Path) -> None:
    emu = short_limit_emu
    settings = settings_for(camera_settings(images))
    async with client(emu).aio.live.connect(model=MODEL, config=connect_config(settings)) as s:
        await s.send_realtime_input(audio=types.Blob(data=loud(0.08), mime_type="audio/pcm;rate=16000"))
        await send_video(s, jpeg_frame())
        await asyncio.sleep(1.0)  # twice the limit: still open
        await s.send_realtime_input(text="anything")
        turn = await collect_turn(s)
    assert turn.output_text == "ok"
    assert "sessionLimit" not in [e.kind for e in emu.events]
    assert emu.connections[0].close_code != 1011


async def test_audio_only_session_has_no_video_limit(short_limit_emu: EmulatorThread) -> None:
    emu = short_limit_emu
    cfg = types.LiveConnectConfig(output_audio_transcription=types.AudioTranscriptionConfig())
    async with client(emu).aio.live.connect(model=MODEL, config=cfg) as s:
        await s.send_realtime_input(audio=types.Blob(data=loud(0.08), mime_type="audio/pcm;rate=16000"))
        await asyncio.sleep(1.0)
        await s.send_realtime_input(text="anything")
        turn = await collect_turn(s)
    assert turn.output_text == "ok"
    assert "sessionLimit" not in [e.kind for e in emu.events]
