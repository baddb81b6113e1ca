"""Camera fixtures: generated images for the ``files`` source, an emulator that answers about frames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from speakerd_workshop.emulator import EmulatorThread, Scenario, ToolCallSpec, Turn

from speakerd.config import CameraSettings

# Distinct flat colours, so a frame's source image is known after JPEG's losses.
COLOURS = [(220, 30, 30), (30, 200, 40), (30, 40, 220), (230, 220, 30), (200, 30, 210), (20, 210, 210)]

SCENARIO = Scenario(
    turns=(
        Turn(user_transcript="what am I holding", tool_calls=(ToolCallSpec("look", {"count": 3}),),
             after_tool_text="I looked at {frames} photos."),
        Turn(user_transcript="and now", reply_text="I have seen {frames} frames."),
    ),
    default_reply="Nothing more to say.",
)


@pytest.fixture
def emu(cert_dir: Path) -> Iterator[EmulatorThread]:
    with EmulatorThread(SCENARIO, cert_dir=cert_dir, pace=8.0) as e:
        yield e


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Six 800x600 images in name order (one of them a JPEG), one flat colour each."""
    d = tmp_path / "frames"
    d.mkdir()
    for i, colour in enumerate(COLOURS):
        Image.new("RGB", (800, 600), colour).save(d / f"{i:02d}.{'jpg' if i == 2 else 'png'}")
    (d / "notes.txt").write_text("not an image")
    return d


def camera_settings(device: Path | str, **kw: Any) -> CameraSettings:
    base: dict[str, Any] = {"enabled": True, "source": "files", "device": str(device), "width": 320,
                            "height": 240, "fps": 5.0, "jpeg_quality": 70, "send": "always"}
    base.update(kw)
    return CameraSettings(**base)


def colour_index(jpeg: bytes) -> int:
    """Which of COLOURS a decoded frame shows (nearest mean colour)."""
    import io

    with Image.open(io.BytesIO(jpeg)) as img:
        mean = img.convert("RGB").resize((1, 1)).getpixel((0, 0))
    assert isinstance(mean, tuple)
    def distance(i: int) -> int:
        return sum((a - b) ** 2 for a, b in zip(COLOURS[i], mean, strict=True))

    return min(range(len(COLOURS)), key=distance)

