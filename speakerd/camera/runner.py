"""The camera runner: continuous streaming between ``start`` and ``stop``, snapshots and looks.

Why this shape: a single "latest frame" slot sits between the capture thread and the loop, so a
slow network drops old frames instead of falling behind. Each start..stop is a stream of its own
(thread, slot, pump), and the stops run in the order they were issued: a wake right after a
conversation ends may start the camera while the last stop is still waiting for a send, and the new
stream then begins once that stop is done, instead of raising or being cut off by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from speakerd.camera.encoding import CameraStats, Grabber
from speakerd.camera.sources import CameraError, Source, make_source, one_line, probe
from speakerd.config import CameraSettings

log = logging.getLogger("speakerd.camera")

OnJpeg = Callable[[bytes], Awaitable[None] | None]
OnActive = Callable[[bool], None]
OnError = Callable[[str], None]

SEND_GRACE = 5.0  # seconds a stop lets a send in progress finish (cancelling could cut a frame)
JOIN_TIMEOUT = 3.0  # seconds a stop waits for the capture thread before leaving it behind


@dataclass(eq=False)
class _Stream:
    """One start..stop of continuous mode; an old stream winding down never touches a new one."""

    loop: asyncio.AbstractEventLoop
    on_jpeg: OnJpeg  # replaced by a second start: the newest callback wins
    on_error: OnError | None
    stop: threading.Event = field(default_factory=threading.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    slot: bytes | None = None  # the latest encoded frame the pump has not taken yet
    slot_lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None
    pump: asyncio.Task[None] | None = None


class Camera:
    """One camera. Public methods are called on the event loop; capture runs on worker threads."""

    def __init__(
        self, settings: CameraSettings, source: Source, *, on_active: OnActive | None = None
    ) -> None:
        self.settings = settings
        self.source = source
        self.on_active = on_active
        self.stats = CameraStats()
        self.join_timeout = JOIN_TIMEOUT
        self._grabber = Grabber(settings, source, self.stats)
        self._closing = threading.Event()  # wakes a capture waiting for its turn
        self._stream: _Stream | None = None  # the stream between start and stop
        self._stopping: asyncio.Task[None] | None = None  # the latest stop issued
        self._active_users = 0  # on the loop: streams, snapshots and looks in progress

    @property
    def period(self) -> float:
        return self._grabber.period

    @property
    def running(self) -> bool:
        """Continuous mode is on: started and not stopped (a stop in progress counts as stopped)."""
        return self._stream is not None

    @property
    def active(self) -> bool:
        """Capture in some form is in progress: what ``on_active`` last reported (the privacy light).

        A start right after a stop keeps it on throughout, so ``on_active`` is not called again.
        """
        return self._active_users > 0

    def _active(self, delta: int) -> None:
        """Tell ``on_active`` when capture in any form begins or ends (the privacy LED, the earcon)."""
        before = self._active_users
        self._active_users += delta
        if self.on_active is not None and (before == 0) != (self._active_users == 0):
            try:
                self.on_active(self._active_users > 0)
            except Exception:
                log.exception("camera: the on_active callback failed")

    # ---- continuous mode ----------------------------------------------------------------

    def start(
        self, loop: asyncio.AbstractEventLoop, on_jpeg: OnJpeg, on_error: OnError | None = None
    ) -> None:
        """Stream frames to ``on_jpeg`` (called on ``loop``) at most ``fps`` a second until :meth:`stop`.

        ``on_jpeg`` may return an awaitable (e.g. the send); the next frame waits for it, and frames
        captured meanwhile replace each other. Call on the loop's thread. Starting again while
        streaming only swaps the callbacks; starting while a stop is in progress begins after it.
        """
        if self._stream is not None:
            self._stream.on_jpeg, self._stream.on_error = on_jpeg, on_error
            return
        s = _Stream(loop, on_jpeg, on_error)
        self._stream = s
        self._active(+1)
        after = self._stopping if self._stopping is not None and not self._stopping.done() else None
        s.pump = loop.create_task(self._pump(s, after), name="camera-pump")

    async def _pump(self, s: _Stream, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait({after})  # the previous stream ends first, however its stop ends
        if s.stop.is_set():
            return
        self._grabber.use(+1)
        s.thread = threading.Thread(target=self._run, args=(s,), name="camera", daemon=True)
        s.thread.start()
        while True:
            await s.wake.wait()
            s.wake.clear()
            if s.stop.is_set():
                return
            with s.slot_lock:
                data, s.slot = s.slot, None
            if data is None:
                continue
            self.stats.delivered += 1
            try:
                result = s.on_jpeg(data)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("camera: sending a frame failed: %s", one_line(e))

    def _run(self, s: _Stream) -> None:
        """The capture thread of one stream: frames into its slot until its stop is set."""
        try:
            while not s.stop.is_set():
                data = self._grabber.capture(s.stop)
                if data is None:
                    break
                with s.slot_lock:
                    if s.slot is not None:
                        self.stats.dropped += 1  # the consumer has not taken the last one: latest wins
                    s.slot = data
                s.loop.call_soon_threadsafe(s.wake.set)
        except RuntimeError as e:
            if not s.loop.is_closed():
                self._failed(s, e)  # else the daemon is gone: nobody to deliver to or tell
        except Exception as e:
            self._failed(s, e)
        finally:
            self._grabber.use(-1)

    def _failed(self, s: _Stream, e: Exception) -> None:
        self.stats.errors += 1
        msg = str(e) if isinstance(e, CameraError) else f"camera: capture failed: {one_line(e)}"
        log.warning("%s; the camera stops sending", msg)
        if s.on_error is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                s.loop.call_soon_threadsafe(s.on_error, msg)

    def stop(self) -> asyncio.Task[None]:
        """Stop streaming now; await the task for the end: then ``on_jpeg`` is not called again.

        Call on the loop's thread. Safe to repeat: a second stop waits for the first. A send in
        progress gets ``SEND_GRACE`` seconds; a capture thread stuck in its driver is left behind
        after ``join_timeout`` with one warning, rather than holding up the loop.
        """
        s, self._stream = self._stream, None
        before = self._stopping
        if s is None and before is not None and not before.done():
            return before
        if s is not None:
            s.stop.set()  # nothing new reaches on_jpeg from here on
            s.wake.set()
        task = asyncio.get_running_loop().create_task(self._finish(s, before), name="camera-stop")
        if s is not None:
            # A callback, not a finally: it runs even when the task is cancelled before it starts.
            task.add_done_callback(lambda _: self._ended(s))
        self._stopping = task
        return task

    async def _finish(self, s: _Stream | None, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait({before})  # stops end in the order they were issued
        if s is None:
            return
        if s.pump is not None:
            done, _ = await asyncio.wait({s.pump}, timeout=SEND_GRACE)
            if not done:
                s.pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await s.pump
        if s.thread is not None:
            await asyncio.to_thread(s.thread.join, self.join_timeout)
            if s.thread.is_alive():
                log.warning(
                    "camera: the capture thread did not stop within %g s (a stuck camera driver?); "
                    "leaving it behind", self.join_timeout,
                )

    def _ended(self, s: _Stream) -> None:
        """A stream's stop is over, done or cancelled: its last frame is dropped, its light goes."""
        with s.slot_lock:
            if s.slot is not None:
                self.stats.dropped += 1
                s.slot = None
        self._active(-1)

    # ---- on request ---------------------------------------------------------------------

    async def snapshot(self, count: int = 1) -> list[bytes]:
        """``count`` fresh frames as JPEG, spaced by the frame rate; raises CameraError."""
        if count < 1:
            raise ValueError("count must be at least 1")
        self._active(+1)
        self._grabber.use(+1)
        try:
            frames = await asyncio.to_thread(self._snapshot, count)
        finally:
            await asyncio.to_thread(self._grabber.use, -1)
            self._active(-1)
        self.stats.delivered += len(frames)
        return frames

    def _snapshot(self, count: int) -> list[bytes]:
        frames: list[bytes] = []
        try:
            for _ in range(count):
                data = self._grabber.capture(self._closing)
                if data is None:
                    break
                frames.append(data)
        except CameraError:
            self.stats.errors += 1
            raise
        except Exception as e:
            self.stats.errors += 1
            raise CameraError(f"camera: capture failed: {one_line(e)}") from e
        return frames

    async def look(self, count: int, send: Callable[[bytes], Awaitable[None]]) -> int:
        """Capture ``count`` frames and send each as soon as it is encoded; the indication covers
        both. Returns how many were sent; raises CameraError."""
        if count < 1:
            raise ValueError("count must be at least 1")
        sent = 0
        self._active(+1)
        try:
            for _ in range(count):
                frames = await self.snapshot(1)
                if not frames:  # closing
                    break
                await send(frames[0])
                sent += 1
        finally:
            self._active(-1)
        return sent

    async def close(self) -> None:
        """Stop everything and release the device (daemon shutdown)."""
        self._closing.set()
        task = self.stop()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # close itself was cancelled; else someone cancelled the stop task: it is over


def open_camera(settings: CameraSettings, *, on_active: OnActive | None = None) -> Camera | None:
    """The configured camera, or None when it is off, or missing and optional (a warning is logged).

    A missing source or library raises CameraError (one line) when ``camera.required``.
    """
    if not settings.enabled:
        return None
    try:
        probe(settings)
        source = make_source(settings)
    except CameraError as e:
        if settings.required:
            raise
        log.warning("%s; continuing without the camera (camera.required = false)", e)
        return None
    return Camera(settings, source, on_active=on_active)
