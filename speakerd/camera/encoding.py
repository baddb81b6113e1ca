"""Capture and JPEG encoding, on worker threads: the part of the camera that costs CPU.

Why on threads: reading and encoding a frame takes tens of milliseconds on a Pi, which the event
loop (audio, the Live session) cannot give up. One lock serialises the source, so the streaming
thread and a ``look`` never read it at once and the frame rate holds across both.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from speakerd.camera.sources import Source, one_line
from speakerd.config import CameraSettings

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger("speakerd.camera")


@dataclass
class CameraStats:
    captured: int = 0  # frames read from the source
    encoded: int = 0  # frames turned into JPEG
    dropped: int = 0  # encoded frames replaced by a newer one before the consumer took them
    delivered: int = 0  # frames handed to on_jpeg or returned by snapshot
    errors: int = 0
    encode_seconds: float = 0.0  # CPU time spent encoding (thread time)


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


class Grabber:
    """A source shared by threads: opened on first use, closed when its last user leaves, read no
    faster than ``fps``. Every method blocks; call them off the loop."""

    def __init__(self, settings: CameraSettings, source: Source, stats: CameraStats) -> None:
        self.settings = settings
        self.source = source
        self.stats = stats
        self.period = 1.0 / settings.fps
        self._lock = threading.Lock()  # the source, its open state and the rate limit
        self._open = False
        self._next_capture = 0.0  # monotonic time before which no frame is captured
        self._users = 0  # threads that need the source open
        self._users_lock = threading.Lock()

    def capture(self, stop: threading.Event) -> bytes | None:
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
            s = self.settings
            data = encode_jpeg(image, s.width, s.height, s.jpeg_quality)
            self.stats.encode_seconds += time.thread_time() - t0
            self.stats.encoded += 1
            return data

    def use(self, delta: int) -> None:
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
                    log.warning("camera: closing the source failed: %s", one_line(e))
