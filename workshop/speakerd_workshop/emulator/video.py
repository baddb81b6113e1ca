"""Video frames as the Live API takes them: JPEG (or other still images) through ``realtimeInput``.

Why the emulator checks frames at all: a client that sends a truncated or mislabelled image would
be refused by the service, and the tests must see that, not a model that "saw" nothing.
"""

from __future__ import annotations

import io
from typing import Any

from speakerd_workshop.emulator import wire

# Audio+video sessions without contextWindowCompression end after this (reference live-protocol.md §4).
AUDIO_VIDEO_LIMIT_SECONDS = 120.0
# What the service reports as prompt tokens per frame, by setup mediaResolution (approximate).
TOKENS_PER_FRAME = {"MEDIA_RESOLUTION_LOW": 64, "MEDIA_RESOLUTION_MEDIUM": 256, "MEDIA_RESOLUTION_HIGH": 256}
DEFAULT_TOKENS_PER_FRAME = 258
LIMIT_REASON = "Deadline expired before operation could complete."


class FrameError(ValueError):
    """An image the service would refuse; the message is the close reason's detail."""


def frame_blobs(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The image blobs in one ``realtimeInput``: ``video``, or the first of ``mediaChunks``."""
    out: list[dict[str, Any]] = []
    video = body.get("video")
    if isinstance(video, dict):
        out.append(video)
    chunks = body.get("mediaChunks") or []
    first = chunks[0] if isinstance(chunks, list) and chunks else None
    if isinstance(first, dict) and str(first.get("mimeType") or "").startswith("image/"):
        out.append(first)  # the service uses only the first chunk
    return out


def check_frame(mime: str, data: bytes) -> tuple[int, int]:
    """Decode the image fully and check it is what its MIME type says; returns (width, height)."""
    if not mime.startswith("image/"):
        raise FrameError(f"video must be an image, got mimeType {mime or 'none'!r}")
    if not data:
        raise FrameError("video frame is empty")
    complete = data.startswith(b"\xff\xd8\xff") and data.rstrip(b"\0").endswith(b"\xff\xd9")
    if mime == "image/jpeg" and not complete:
        raise FrameError("video frame is not a complete JPEG (missing SOI/EOI marker)")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            img.load()
            size: tuple[int, int] = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        why = str(e).splitlines()[0] if str(e) else repr(e)
        raise FrameError(f"video frame cannot be decoded as {mime} ({why})") from e
    expected = mime.removeprefix("image/").upper().replace("JPG", "JPEG")
    if fmt != expected:
        raise FrameError(f"video frame is {fmt}, not {mime}")
    return size


def decode_frames(body: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(mime, bytes) of every image in a ``realtimeInput`` body; bad base64 raises WireError."""
    blobs = frame_blobs(body)
    return [(str(b.get("mimeType") or ""), wire.b64decode(str(b.get("data") or ""))) for b in blobs]


def tokens_per_frame(setup: dict[str, Any]) -> int:
    gen = setup.get("generationConfig") or {}
    res = gen.get("mediaResolution") or setup.get("mediaResolution")
    return TOKENS_PER_FRAME.get(str(res), DEFAULT_TOKENS_PER_FRAME)
