"""Start and stop in any order, as the daemon issues them: a stop spawned as a task, then a start.

Why: with ``send = "always"`` a wake right after a conversation ends starts the camera while the
previous stop is still pending or running; that start must neither raise nor be undone by the stop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from PIL import Image

from speakerd.camera import Camera, open_camera
from tests.camera.conftest import camera_settings, until


def _camera(images: Path, **kw: object) -> Camera:
    cam = open_camera(camera_settings(images, fps=5.0, **kw))
    assert cam is not None
    return cam


async def test_start_right_after_a_spawned_stop_streams_to_the_new_callback(images: Path) -> None:
    lights: list[bool] = []
    cam = open_camera(camera_settings(images, fps=5.0), on_active=lights.append)
    assert cam is not None
    loop = asyncio.get_running_loop()
    old: list[bytes] = []
    new: list[bytes] = []
    cam.start(loop, old.append)
    await until(lambda: len(old) >= 2)
    # The daemon's close_session then open_session, in one go: the stop has not begun running.
    stopping = asyncio.ensure_future(cam.stop())
    cam.start(loop, new.append)
    await stopping
    n_old = len(old)
    assert cam.running
    await until(lambda: len(new) >= 3)
    assert len(old) == n_old  # the old callback is done once its stop is
    assert cam.active and lights == [True]  # the privacy light stayed on across the two streams
    await cam.stop()
    assert (cam.running, cam.active, lights) == (False, False, [True, False])


async def test_start_during_a_stop_waiting_for_a_send_streams_after_it(images: Path) -> None:
    cam = _camera(images)
    loop = asyncio.get_running_loop()
    gate = asyncio.Event()
    old: list[bytes] = []
    new: list[bytes] = []
    events: list[str] = []

    async def slow_send(jpeg: bytes) -> None:
        old.append(jpeg)
        await gate.wait()  # a send to the old session that has not finished

    def fast_send(jpeg: bytes) -> None:
        events.append("new-frame")
        new.append(jpeg)

    cam.start(loop, slow_send)
    await until(lambda: old)
    stopping = asyncio.ensure_future(cam.stop())
    stopping.add_done_callback(lambda _: events.append("stopped"))
    await asyncio.sleep(0.05)  # let the stop run up to waiting for the send in progress
    assert not stopping.done()
    cam.start(loop, fast_send)  # the wake: must not raise
    await asyncio.sleep(0.3)  # room for a wrong order to show
    gate.set()
    await stopping
    await until(lambda: len(new) >= 3)
    assert len(old) == 1
    assert events.index("stopped") < events.index("new-frame")  # ordered: the start after the stop
    await cam.stop()


async def test_stop_twice_and_start_twice(images: Path) -> None:
    lights: list[bool] = []
    cam = open_camera(camera_settings(images, fps=5.0), on_active=lights.append)
    assert cam is not None
    loop = asyncio.get_running_loop()
    await cam.stop()  # never started: nothing happens
    first: list[bytes] = []
    second: list[bytes] = []
    cam.start(loop, first.append)
    cam.start(loop, second.append)  # the newest callback wins, no second stream
    await until(lambda: len(second) >= 3)
    assert first == []
    a, b = cam.stop(), cam.stop()
    await asyncio.gather(a, b)
    await cam.stop()
    assert not cam.running
    assert lights == [True, False]  # one light on, one off: counted once despite the repeats
    assert cam.stats.encoded == cam.stats.delivered + cam.stats.dropped


async def test_stop_then_start_then_stop_before_any_runs(images: Path) -> None:
    cam = _camera(images)
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    cam.start(loop, got.append)
    first = asyncio.ensure_future(cam.stop())
    cam.start(loop, got.append)
    second = asyncio.ensure_future(cam.stop())
    await asyncio.gather(first, second)
    assert not cam.running
    n = len(got)
    await asyncio.sleep(0.3)
    assert len(got) == n  # nothing after the last stop


async def test_a_cancelled_stop_still_ends_its_stream_and_lets_the_next_start_run(images: Path) -> None:
    lights: list[bool] = []
    cam = open_camera(camera_settings(images, fps=5.0), on_active=lights.append)
    assert cam is not None
    loop = asyncio.get_running_loop()
    old: list[bytes] = []
    new: list[bytes] = []
    cam.start(loop, old.append)
    await until(lambda: old)
    stopping = cam.stop()
    cam.start(loop, new.append)
    stopping.cancel()  # e.g. a shutdown cancelling the daemon's tasks
    await until(lambda: len(new) >= 2)
    await cam.close()
    assert lights == [True, False]


class _StuckSource:
    """A source whose read never returns until released: a wedged driver."""

    warmup = 0

    def __init__(self) -> None:
        self.release = threading.Event()
        self.reading = threading.Event()

    def open(self) -> None:
        pass

    def read(self) -> Image.Image:
        self.reading.set()
        self.release.wait(60.0)
        return Image.new("RGB", (32, 24))

    def close(self) -> None:
        pass


async def test_stop_leaves_a_stuck_capture_thread_with_one_warning(
    images: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = _StuckSource()
    cam = Camera(camera_settings(images), source)
    cam.join_timeout = 0.2
    try:
        cam.start(asyncio.get_running_loop(), lambda jpeg: None)
        await asyncio.to_thread(source.reading.wait, 10.0)
        with caplog.at_level(logging.WARNING, logger="speakerd.camera"):
            await cam.stop()
        assert not cam.running
        (record,) = [r for r in caplog.records if r.name == "speakerd.camera"]
        assert "did not stop" in record.getMessage() and "\n" not in record.getMessage()
    finally:
        source.release.set()
