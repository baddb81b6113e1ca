"""The camera on its own: the files source, encoding, rate, dropping, errors, required vs optional."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import logging
import time
from pathlib import Path

import pytest
from google.genai import types
from PIL import Image

from speakerd.camera import (
    LOOK_SPEC,
    Camera,
    CameraError,
    camera_connect_overrides,
    encode_jpeg,
    look_tool_declaration,
    open_camera,
)
from speakerd.config import CameraSettings, LiveSettings, Settings
from speakerd.live.tools import ToolArgumentError, validate
from tests.camera.conftest import COLOURS, camera_settings, colour_index
from tests.support import until


def _jpeg_size(data: bytes) -> tuple[int, int]:
    assert data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9"
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG"
        img.load()
        return img.size


def test_disabled_camera_is_none(images: Path) -> None:
    assert open_camera(camera_settings(images, enabled=False)) is None
    assert open_camera(CameraSettings()) is None  # off by default


def test_encode_keeps_aspect_within_the_configured_size() -> None:
    wide = Image.new("RGB", (1000, 500), (10, 20, 30))
    assert _jpeg_size(encode_jpeg(wide, 320, 240, 80)) == (320, 160)
    assert _jpeg_size(encode_jpeg(Image.new("RGB", (800, 600)), 320, 240, 80)) == (320, 240)
    assert _jpeg_size(encode_jpeg(Image.new("L", (64, 48)), 64, 48, 80)) == (64, 48)
    noisy = Image.effect_noise((320, 240), 60).convert("RGB")
    assert len(encode_jpeg(noisy, 320, 240, 95)) > len(encode_jpeg(noisy, 320, 240, 20))


@pytest.mark.parametrize(
    ("source", "needs"),
    [("v4l2", "OpenCV"), ("picamera2", "python3-picamera2")],
)
def test_missing_library_is_one_line_error_or_warning(
    source: str, needs: str, caplog: pytest.LogCaptureFixture
) -> None:
    module = "cv2" if source == "v4l2" else "picamera2"
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    with pytest.raises(CameraError) as e:
        open_camera(CameraSettings(enabled=True, source=source, required=True))
    assert needs in str(e.value) and "\n" not in str(e.value)
    with caplog.at_level(logging.WARNING, logger="speakerd.camera"):
        optional = CameraSettings(enabled=True, source=source, required=False)
        assert open_camera(optional) is None
    (record,) = [r for r in caplog.records if r.name == "speakerd.camera"]
    assert needs in record.getMessage() and "without the camera" in record.getMessage()


def test_missing_or_empty_files_source(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    for where, words in ((empty, "holds no images"), (tmp_path / "absent", "cannot read")):
        with pytest.raises(CameraError, match=words) as e:
            open_camera(camera_settings(where, required=True))
        assert "\n" not in str(e.value) and str(where) in str(e.value)
        with caplog.at_level(logging.WARNING, logger="speakerd.camera"):
            assert open_camera(camera_settings(where, required=False)) is None
    assert len([r for r in caplog.records if r.name == "speakerd.camera"]) == 2


async def test_snapshot_gives_fresh_frames_in_name_order(images: Path) -> None:
    cam = open_camera(camera_settings(images, fps=5.0))
    assert isinstance(cam, Camera)
    frames = await cam.snapshot(3) + await cam.snapshot(4)
    assert [colour_index(f) for f in frames] == [0, 1, 2, 3, 4, 5, 0]  # looped, never repeated early
    assert all(_jpeg_size(f) == (320, 240) for f in frames)
    assert (cam.stats.captured, cam.stats.encoded, cam.stats.delivered, cam.stats.dropped) == (7, 7, 7, 0)
    assert cam.stats.encode_seconds > 0
    with pytest.raises(ValueError, match="at least 1"):
        await cam.snapshot(0)


async def test_an_animated_file_is_a_frame_source(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (160, 120), c) for c in COLOURS[:3]]
    gif = tmp_path / "clip.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    cam = open_camera(camera_settings(gif, width=160, height=120))
    assert cam is not None
    assert [colour_index(f) for f in await cam.snapshot(4)] == [0, 1, 2, 0]


async def test_continuous_rate_is_bounded_and_stops_on_stop(images: Path) -> None:
    fps = 5.0
    cam = open_camera(camera_settings(images, fps=fps))
    assert cam is not None
    got: list[bytes] = []
    t0 = time.monotonic()
    cam.start(asyncio.get_running_loop(), got.append)
    await until(lambda: len(got) >= 4)
    await cam.stop()
    elapsed = time.monotonic() - t0
    n = len(got)
    assert n <= fps * elapsed + 1
    assert cam.stats.captured <= fps * elapsed + 1
    assert cam.stats.encoded == cam.stats.delivered + cam.stats.dropped
    await asyncio.sleep(3 / fps)
    assert len(got) == n  # nothing after stop
    # A fast consumer misses nothing: the frames are the images in order.
    assert [colour_index(f) for f in got] == [i % len(COLOURS) for i in range(n)]


def _grey_index(jpeg: bytes) -> int:
    with Image.open(io.BytesIO(jpeg)) as img:
        level = img.convert("L").resize((1, 1)).getpixel((0, 0))
    assert isinstance(level, int | float)
    return round(level / 4)


async def test_slow_consumer_drops_old_frames_instead_of_queueing(tmp_path: Path) -> None:
    # 60 grey levels 4 apart: a frame's position in the sequence survives JPEG.
    for i in range(60):
        Image.new("L", (160, 120), i * 4).save(tmp_path / f"{i:03d}.png")
    cam = open_camera(camera_settings(tmp_path, width=160, height=120, fps=5.0))
    assert cam is not None
    gate = asyncio.Event()
    got: list[bytes] = []

    async def slow_send(jpeg: bytes) -> None:
        got.append(jpeg)
        await gate.wait()

    cam.start(asyncio.get_running_loop(), slow_send)
    await until(lambda: cam.stats.encoded >= 5)
    newest = cam.stats.encoded  # frames 0 .. newest-1 exist now
    assert len(got) == 1 and _grey_index(got[0]) == 0  # the consumer is still busy with the first
    assert cam.stats.dropped >= newest - 2  # all but the first and the newest were dropped
    gate.set()
    await until(lambda: len(got) >= 2)
    await cam.stop()
    assert _grey_index(got[1]) >= newest - 1  # the newest frame, not the oldest waiting
    assert cam.stats.encoded == cam.stats.delivered + cam.stats.dropped
    assert cam.stats.delivered == len(got)


async def test_active_indication_covers_capture_and_sending(images: Path) -> None:
    timeline: list[str] = []
    active = False

    def light(on: bool) -> None:
        nonlocal active
        active = on
        timeline.append("on" if on else "off")

    def sent() -> None:
        timeline.append(f"sent-while-{'on' if active else 'off'}")

    cam = open_camera(camera_settings(images), on_active=light)
    assert cam is not None

    async def send(jpeg: bytes) -> None:
        sent()

    assert await cam.look(3, send) == 3
    assert timeline == ["on", "sent-while-on", "sent-while-on", "sent-while-on", "off"]
    timeline.clear()
    cam.start(asyncio.get_running_loop(), lambda jpeg: sent())
    await until(lambda: len(timeline) >= 3)
    await cam.stop()
    assert timeline[0] == "on" and timeline[-1] == "off"
    assert set(timeline[1:-1]) == {"sent-while-on"}


async def test_a_source_that_breaks_mid_stream_reports_one_line(images: Path) -> None:
    cam = open_camera(camera_settings(images, fps=5.0))
    assert cam is not None
    errors: list[str] = []
    cam.start(asyncio.get_running_loop(), lambda jpeg: None, on_error=errors.append)
    await until(lambda: cam.stats.encoded >= 1)
    for f in images.iterdir():
        f.unlink()
    await until(lambda: errors)
    await cam.stop()
    assert len(errors) == 1 and "\n" not in errors[0] and errors[0].startswith("camera:")
    assert cam.stats.errors == 1
    with pytest.raises(CameraError):
        await cam.snapshot(1)


def test_look_tool_declaration_and_schema() -> None:
    decl = look_tool_declaration()
    assert decl.name == "look" and decl.behavior == types.Behavior.BLOCKING
    assert decl.parameters_json_schema == LOOK_SPEC.parameters
    assert look_tool_declaration(non_blocking_allowed=False).behavior is None
    validate(LOOK_SPEC.parameters, {"count": 5})
    validate(LOOK_SPEC.parameters, {})
    for bad in ({"count": 0}, {"count": 6}, {"count": "two"}):
        with pytest.raises(ToolArgumentError):
            validate(LOOK_SPEC.parameters, bad)


def test_connect_overrides_follow_the_camera() -> None:
    off = Settings(camera=CameraSettings(enabled=False))
    assert camera_connect_overrides(off) == {}
    on = Settings(camera=CameraSettings(enabled=True, source="files"),
                  live=LiveSettings(media_resolution="low"))
    assert camera_connect_overrides(on) == {"force_compression": True, "media_resolution": "low"}
