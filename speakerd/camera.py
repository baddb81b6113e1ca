"""The optional camera: frames for the Live API as JPEG, captured and encoded off the event loop.

Why this shape: the Live API takes about one JPEG per second next to the audio. Capture and
encoding take tens of milliseconds of CPU on a Pi, so they run on a thread; a single "latest frame"
slot sits between that thread and the loop, so a slow network drops old frames instead of falling
behind. By default nothing is captured until the model calls the ``look`` tool (privacy, tokens);
``send = "always"`` streams during the whole conversation. Whoever drives the camera is told when
it starts and stops capturing (``on_active``), which is what the privacy LED and earcon follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from google.genai import types

from speakerd.config import CameraSettings
from speakerd.live.tools import ToolSpec

if TYPE_CHECKING:
    from PIL import Image

    from speakerd.config import Settings

log = logging.getLogger("speakerd.camera")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
LOOK_MAX_PHOTOS = 5
LOOK_SPEC = ToolSpec(
    "look",
    "Take photos with the speaker's camera and look at them. Use it when the user asks what you "
    "can see, or to look at, read or identify something. The photos arrive as video frames, "
    "about one per second.",
    {
        "type": "object",
        "properties": {
            "count": {
                "type": "integer",
                "minimum": 1,
                "maximum": LOOK_MAX_PHOTOS,
                "default": 1,
                "description": "How many photos to take, one per second (1 to 5; default 1).",
            },
        },
    },
)

OnJpeg = Callable[[bytes], Awaitable[None] | None]
OnActive = Callable[[bool], None]


class CameraError(Exception):
    """A camera that cannot be used; the message is one line, ready to print."""


@dataclass
class CameraStats:
    captured: int = 0  # frames read from the source
    encoded: int = 0  # frames turned into JPEG
    dropped: int = 0  # encoded frames replaced by a newer one before the consumer took them
    delivered: int = 0  # frames handed to on_jpeg or returned by snapshot
    errors: int = 0
    encode_seconds: float = 0.0  # CPU time spent encoding (thread time)


class Source(Protocol):
    """Where frames come from. ``read`` blocks; all calls happen on one thread at a time."""

    warmup: int  # frames to throw away after opening (auto exposure settling)

    def open(self) -> None: ...

    def read(self) -> Image.Image: ...

    def close(self) -> None: ...


# ---- sources -------------------------------------------------------------------------------


class FilesSource:
    """Images from a directory, looped in name order; or the frames of one (animated) image file.

    The position survives close and open, so two looks in a demo see different pictures.
    """

    warmup = 0

    def __init__(self, path: Path, size: tuple[int, int]) -> None:
        self.path = path
        self.size = size
        self._frames: Iterator[Image.Image] | None = None

    def open(self) -> None:
        _files_check(self.path)
        if self._frames is None:
            self._frames = self._loop()

    def _loop(self) -> Iterator[Image.Image]:
        while True:
            files = _image_files(self.path)
            if not files:
                raise CameraError(f"camera: source 'files': {self.path} holds no images any more")
            for f in files:
                yield from self._decode(f)

    def _decode(self, f: Path) -> list[Image.Image]:
        """Every frame of one file, decoded before yielding so no file stays open between reads."""
        from PIL import Image, ImageSequence

        with Image.open(f) as img:
            if getattr(img, "n_frames", 1) > 1:
                return [frame.convert("RGB") for frame in ImageSequence.Iterator(img)]
            img.draft("RGB", self.size)  # JPEG: decode at a reduced scale when it can
            return [img.convert("RGB")]

    def read(self) -> Image.Image:
        if self._frames is None:
            raise CameraError("camera: the files source is not open")
        try:
            return next(self._frames)
        except OSError as e:
            self._frames = None
            raise CameraError(f"camera: cannot read an image in {self.path}: {_one_line(e)}") from e
        except CameraError:
            self._frames = None
            raise

    def close(self) -> None:
        pass


class OpenCVSource:
    """A USB webcam through OpenCV's V4L2 backend (``python3-opencv``)."""

    warmup = 3

    def __init__(self, device: str, size: tuple[int, int]) -> None:
        self.device = device
        self.size = size
        self._cap: Any = None

    def open(self) -> None:
        cv2 = _import_cv2()
        cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            raise CameraError(f"camera: cannot open the webcam {self.device} (busy, or not a capture device)")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap

    def read(self) -> Image.Image:
        from PIL import Image

        if self._cap is None:
            raise CameraError("camera: the webcam is not open")
        self._cap.grab()  # a frame the driver kept from before is not fresh
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraError(f"camera: the webcam {self.device} gave no frame (unplugged?)")
        return Image.fromarray(frame[:, :, ::-1])  # BGR -> RGB

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class Picamera2Source:
    """The Raspberry Pi camera through Debian's ``python3-picamera2``."""

    warmup = 2

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self._cam: Any = None

    def open(self) -> None:
        picamera2 = _import_picamera2()
        try:
            cam = picamera2.Picamera2()
            cam.configure(cam.create_video_configuration(main={"size": self.size, "format": "RGB888"}))
            cam.start()
        except Exception as e:  # libcamera raises plain RuntimeError/IndexError for a busy/absent camera
            raise CameraError(f"camera: cannot start the Raspberry Pi camera: {_one_line(e)}") from e
        self._cam = cam

    def read(self) -> Image.Image:
        if self._cam is None:
            raise CameraError("camera: the Raspberry Pi camera is not open")
        try:
            image: Image.Image = self._cam.capture_image("main")
        except Exception as e:
            raise CameraError(f"camera: the Raspberry Pi camera gave no frame: {_one_line(e)}") from e
        return image

    def close(self) -> None:
        if self._cam is not None:
            with contextlib.suppress(Exception):
                self._cam.stop()
            with contextlib.suppress(Exception):
                self._cam.close()
            self._cam = None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _import_cv2() -> Any:
    try:
        import cv2  # type: ignore[import-not-found,unused-ignore]
    except ImportError as e:
        raise CameraError(
            "camera: source 'v4l2' needs OpenCV (apt install python3-opencv), which is not installed"
        ) from e
    return cv2


def _import_picamera2() -> Any:
    try:
        import picamera2
    except ImportError as e:
        raise CameraError(
            "camera: source 'picamera2' needs python3-picamera2 (Raspberry Pi OS), which is not installed"
        ) from e
    return picamera2


def _image_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _files_check(path: Path) -> None:
    try:
        files = _image_files(path)
    except OSError as e:
        raise CameraError(f"camera: source 'files': cannot read {path}: {e.strerror or e}") from e
    if not files:
        raise CameraError(
            f"camera: source 'files': {path} holds no images ({', '.join(IMAGE_SUFFIXES[:3])}, ...)"
        )


def probe(settings: CameraSettings) -> None:
    """Check that the source and its library are there, without opening the camera (its light stays off)."""
    if settings.source == "files":
        _files_check(Path(settings.device))
    elif settings.source == "v4l2":
        _import_cv2()
        if not Path(settings.device).exists():
            raise CameraError(f"camera: {settings.device} does not exist (is the USB webcam plugged in?)")
    else:
        picamera2 = _import_picamera2()
        try:
            found = picamera2.Picamera2.global_camera_info()
        except Exception as e:
            raise CameraError(f"camera: cannot list Raspberry Pi cameras: {_one_line(e)}") from e
        if not found:
            raise CameraError("camera: no Raspberry Pi camera detected (check the ribbon cable)")


def make_source(settings: CameraSettings) -> Source:
    size = (settings.width, settings.height)
    if settings.source == "files":
        return FilesSource(Path(settings.device), size)
    if settings.source == "v4l2":
        return OpenCVSource(settings.device, size)
    return Picamera2Source(size)


# ---- encoding ------------------------------------------------------------------------------


def encode_jpeg(image: Image.Image, width: int, height: int, quality: int) -> bytes:
    """JPEG at most ``width`` x ``height``, keeping the aspect ratio (nothing cropped or stretched)."""
    from PIL import Image

    img = image if image.mode == "RGB" else image.convert("RGB")
    if img.size != (width, height):
        scale = min(width / img.width, height / img.height)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        if size != img.size:
            img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, optimize=False)
    return out.getvalue()


# ---- the camera ----------------------------------------------------------------------------


class Camera:
    """One camera. Public methods are called on the event loop; capture runs on worker threads."""

    def __init__(
        self, settings: CameraSettings, source: Source, *, on_active: OnActive | None = None
    ) -> None:
        self.settings = settings
        self.source = source
        self.on_active = on_active
        self.stats = CameraStats()
        self.period = 1.0 / settings.fps
        self._lock = threading.Lock()  # the source, its open state and the rate limit
        self._open = False
        self._next_capture = 0.0  # monotonic time before which no frame is captured
        self._closing = threading.Event()  # wakes a capture waiting for its turn
        self._thread: threading.Thread | None = None
        self._pump: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._slot: bytes | None = None
        self._slot_lock = threading.Lock()
        self._continuous = False
        self._stop_event = threading.Event()
        self._active_users = 0  # on the loop: streaming, snapshots and looks in progress
        self._users = 0  # threads that need the source open
        self._users_lock = threading.Lock()

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

    def _capture(self, stop: threading.Event) -> bytes | None:
        """One fresh frame as JPEG, no sooner than the rate allows; None when ``stop`` is set."""
        with self._lock:
            while True:
                wait = self._next_capture - time.monotonic()
                if wait <= 0:
                    break
                if stop.wait(wait):
                    return None
            if stop.is_set():
                return None
            # Spacing counts from this capture's start, so the rate is never above fps.
            self._next_capture = time.monotonic() + self.period
            if not self._open:
                self.source.open()
                self._open = True
                for _ in range(self.source.warmup):
                    self.source.read()
            image = self.source.read()
            self.stats.captured += 1
            t0 = time.thread_time()
            data = encode_jpeg(image, self.settings.width, self.settings.height, self.settings.jpeg_quality)
            self.stats.encode_seconds += time.thread_time() - t0
            self.stats.encoded += 1
            return data

    def _use(self, delta: int) -> None:
        """Count the source's users; the last one out closes it (the camera's own light goes off)."""
        with self._users_lock:
            self._users += delta
            if self._users == 0:
                self._close_source()

    def _close_source(self) -> None:
        with self._lock:
            if self._open:
                self._open = False
                try:
                    self.source.close()
                except Exception as e:
                    log.warning("camera: closing the source failed: %s", _one_line(e))

    def _run(
        self, stop: threading.Event, loop: asyncio.AbstractEventLoop, on_error: Callable[[str], None] | None
    ) -> None:
        try:
            while not stop.is_set():
                data = self._capture(stop)
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
            msg = str(e) if isinstance(e, CameraError) else f"camera: capture failed: {_one_line(e)}"
            log.warning("%s; the camera stops sending", msg)
            if on_error is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                    loop.call_soon_threadsafe(on_error, msg)
        finally:
            self._use(-1)

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
        self._use(+1)
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
                log.warning("camera: sending a frame failed: %s", _one_line(e))

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
        self._use(+1)
        try:
            frames = await asyncio.to_thread(self._snapshot, count)
        finally:
            await asyncio.to_thread(self._use, -1)
            self._active(-1)
        self.stats.delivered += len(frames)
        return frames

    def _snapshot(self, count: int) -> list[bytes]:
        frames: list[bytes] = []
        try:
            for _ in range(count):
                data = self._capture(self._closing)
                if data is None:
                    break
                frames.append(data)
        except CameraError:
            self.stats.errors += 1
            raise
        except Exception as e:
            self.stats.errors += 1
            raise CameraError(f"camera: capture failed: {_one_line(e)}") from e
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


# ---- what the daemon wires ---------------------------------------------------------------


def look_tool_declaration(*, non_blocking_allowed: bool = True) -> types.FunctionDeclaration:
    """The ``look`` tool. Always BLOCKING: the model must wait for the photos before answering."""
    return types.FunctionDeclaration(
        name=LOOK_SPEC.name,
        description=LOOK_SPEC.description,
        parameters_json_schema=LOOK_SPEC.parameters,
        behavior=types.Behavior.BLOCKING if non_blocking_allowed else None,
    )


def look_handler(
    camera: Camera, send: Callable[[bytes], Awaitable[None]]
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """A ToolRegistry handler for ``look``: frames go out with ``send`` before the tool's response."""

    async def look(count: int | float = 1) -> dict[str, Any]:
        n = max(1, min(LOOK_MAX_PHOTOS, int(count)))
        try:
            sent = await camera.look(n, send)
        except CameraError as e:
            return {"error": str(e)}
        return {"result": f"took {sent} photo{'s' if sent != 1 else ''}; they were sent as video frames"}

    return look


def camera_connect_overrides(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``build_connect_config`` while the camera is in use.

    Why: the service ends audio+video sessions after 2 minutes unless context-window compression
    is on, so it is forced on; the media resolution (tokens per frame) comes from ``live``.
    Empty when the camera is off.
    """
    if not settings.camera.enabled:
        return {}
    return {"force_compression": True, "media_resolution": settings.live.media_resolution}
