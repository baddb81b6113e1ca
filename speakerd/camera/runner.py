"""The camera runner: continuous streaming between ``start`` and ``stop``, snapshots and looks.

Why this shape: a single "latest frame" slot sits between the capture thread and the loop, so a
slow network drops old frames instead of falling behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable

from speakerd.camera.encoding import CameraStats, Grabber
from speakerd.camera.sources import CameraError, Source, make_source, one_line, probe
from speakerd.config import CameraSettings

log = logging.getLogger("speakerd.camera")

OnJpeg = Callable[[bytes], Awaitable[None] | None]
OnActive = Callable[[bool], None]


class Camera:
    """One camera. Public methods are called on the event loop; capture runs on worker threads."""

    def __init__(
        self, settings: CameraSettings, source: Source, *, on_active: OnActive | None = None
    ) -> None:
        self.settings = settings
        self.source = source
        self.on_active = on_active
        self.stats = CameraStats()
        self._grabber = Grabber(settings, source, self.stats)
        self.period = self._grabber.period
        self._closing = threading.Event()  # wakes a capture waiting for its turn
        self._thread: threading.Thread | None = None
        self._pump: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._slot: bytes | None = None
        self._slot_lock = threading.Lock()
        self._continuous = False
        self._stop_event = threading.Event()
        self._active_users = 0  # on the loop: streaming, snapshots and looks in progress

    @property
    def running(self) -> bool:
        """Continuous mode is on (between start and stop)."""
        return self._continuous

    # ---- the privacy indication ---------------------------------------------------------

    def _active(self, delta: int) -> None:
        before = self._active_users
        self._active_users += delta
        if self.on_active is not None and (before == 0) != (self._active_users == 0):
            try:
                self.on_active(self._active_users > 0)
            except Exception:
                log.exception("camera: the on_active callback failed")

    # ---- capture (worker threads) -------------------------------------------------------

    def _run(
        self, stop: threading.Event, loop: asyncio.AbstractEventLoop, on_error: Callable[[str], None] | None
    ) -> None:
        try:
            while not stop.is_set():
                data = self._grabber.capture(stop)
                if data is None:
                    break
                with self._slot_lock:
                    if self._slot is not None:
                        self.stats.dropped += 1  # the consumer has not taken the last one: latest wins
                    self._slot = data
                wake = self._wake
                if wake is not None:
                    loop.call_soon_threadsafe(wake.set)
        except Exception as e:
            self.stats.errors += 1
            msg = str(e) if isinstance(e, CameraError) else f"camera: capture failed: {one_line(e)}"
            log.warning("%s; the camera stops sending", msg)
            if on_error is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                    loop.call_soon_threadsafe(on_error, msg)
        finally:
            self._grabber.use(-1)

    # ---- continuous mode ----------------------------------------------------------------

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_jpeg: OnJpeg,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Stream frames to ``on_jpeg`` (called on ``loop``) at most ``fps`` a second until :meth:`stop`.

        ``on_jpeg`` may return an awaitable (e.g. the send); the next frame waits for it, and frames
        captured meanwhile replace each other. Call on the loop's thread.
        """
        if self._continuous:
            raise RuntimeError("the camera is already streaming")
        self._continuous = True
        self._active(+1)
        self._wake = asyncio.Event()
        self._slot = None
        stop = threading.Event()
        self._stop_event = stop
        self._grabber.use(+1)
        self._thread = threading.Thread(
            target=self._run, args=(stop, loop, on_error), name="camera", daemon=True
        )
        self._pump = loop.create_task(self._deliver(on_jpeg, stop), name="camera-pump")
        self._thread.start()

    async def _deliver(self, on_jpeg: OnJpeg, stop: threading.Event) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            await wake.wait()
            wake.clear()
            if stop.is_set():
                return
            with self._slot_lock:
                data, self._slot = self._slot, None
            if data is None:
                continue
            self.stats.delivered += 1
            try:
                result = on_jpeg(data)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("camera: sending a frame failed: %s", one_line(e))

    async def stop(self) -> None:
        """Stop streaming; once this returns, ``on_jpeg`` is not called again."""
        if not self._continuous:
            return
        stop = self._stop_event
        stop.set()
        if self._wake is not None:
            self._wake.set()
        if self._pump is not None:
            # Let a send in progress finish (cancelling it could cut a WebSocket frame in half).
            done, _ = await asyncio.wait({self._pump}, timeout=5.0)
            if not done:
                self._pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._pump
            self._pump = None
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        with self._slot_lock:
            if self._slot is not None:
                self.stats.dropped += 1
                self._slot = None
        self._continuous = False
        self._wake = None
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
        await self.stop()



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
