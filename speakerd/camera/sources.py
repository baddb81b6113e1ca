"""Where camera frames come from: a directory of images, a USB webcam (V4L2) or the Pi camera.

Why apart: each source's library is optional and imported only when that source is used, so a
speaker without a camera never loads OpenCV or picamera2. A missing library or device is a
:class:`CameraError` whose message is one line, ready for the log or the terminal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from speakerd.config import CameraSettings

if TYPE_CHECKING:
    from PIL import Image


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")


class CameraError(Exception):
    """A camera that cannot be used; the message is one line, ready to print."""


class Source(Protocol):
    """Where frames come from. ``read`` blocks; all calls happen on one thread at a time."""

    warmup: int  # frames to throw away after opening (auto exposure settling)

    def open(self) -> None: ...

    def read(self) -> Image.Image: ...

    def close(self) -> None: ...


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
            raise CameraError(f"camera: cannot read an image in {self.path}: {one_line(e)}") from e
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
            raise CameraError(f"camera: cannot start the Raspberry Pi camera: {one_line(e)}") from e
        self._cam = cam

    def read(self) -> Image.Image:
        if self._cam is None:
            raise CameraError("camera: the Raspberry Pi camera is not open")
        try:
            image: Image.Image = self._cam.capture_image("main")
        except Exception as e:
            raise CameraError(f"camera: the Raspberry Pi camera gave no frame: {one_line(e)}") from e
        return image

    def close(self) -> None:
        if self._cam is not None:
            with contextlib.suppress(Exception):
                self._cam.stop()
            with contextlib.suppress(Exception):
                self._cam.close()
            self._cam = None


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (or its type): log lines stay one line."""
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
            raise CameraError(f"camera: cannot list Raspberry Pi cameras: {one_line(e)}") from e
        if not found:
            raise CameraError("camera: no Raspberry Pi camera detected (check the ribbon cable)")


def make_source(settings: CameraSettings) -> Source:
    size = (settings.width, settings.height)
    if settings.source == "files":
        return FilesSource(Path(settings.device), size)
    if settings.source == "v4l2":
        return OpenCVSource(settings.device, size)
    return Picamera2Source(size)
