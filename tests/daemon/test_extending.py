"""The worked examples of docs/extending.md, each plugged into the real daemon or LEDs.

If one of these breaks, the document is wrong: fix both together.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from speakerd import config
from speakerd.daemon import Daemon
from speakerd.events import FRAME_BYTES, AudioFrame, DeviceFault, WakeDetected
from speakerd.hw import patterns
from speakerd.hw.leds import Driver, Leds, Pixel
from speakerd.live.tools import Handler, ToolSpec
from speakerd.ports import Backends
from tests.daemon.fakes import FakeLive, FakeMic, FakeSpeaker
from tests.daemon.test_daemon import make_config, until

# 1. A tool -----------------------------------------------------------------------------------------


class DiceTools:
    """A ToolProvider: ``tools()`` is asked again for every session, so it may change over time."""

    def __init__(self, sides: int = 6) -> None:
        self.sides = sides

    def tools(self) -> Mapping[str, tuple[ToolSpec, Handler]]:
        spec = ToolSpec(
            "roll_dice", "Roll dice and say the total.",
            {"type": "object", "properties": {"count": {"type": "integer", "minimum": 1, "maximum": 10}},
             "required": ["count"]},
        )

        async def roll(count: int) -> dict[str, Any]:
            return {"total": sum(random.randint(1, self.sides) for _ in range(count))}

        return {"roll_dice": (spec, roll)}


async def test_a_tool_provider_plugs_in(tmp_path: Path) -> None:
    live = FakeLive()
    daemon = Daemon(make_config(tmp_path), backends=Backends(audio=_audio, wakeword=ClapDetector, sessions=live))
    daemon.tool_providers.append(DiceTools(sides=1))
    assert await daemon.start()
    try:
        await daemon.commands.handle("say", "roll two dice")
        tools = live.sessions[-1].tools
        assert "roll_dice" in tools.specs
        assert await tools.call("roll_dice", {"count": 2}) == {"total": 2}
        assert "error" in await tools.call("roll_dice", {"count": 11})  # the schema is enforced
    finally:
        await daemon.shutdown()


# 2. An LED profile ---------------------------------------------------------------------------------


class MatrixDriver(Driver):
    """Eight pixels in a row (say, a strip on a shift register): only ``draw`` is required."""

    pixels = 8

    def __init__(self) -> None:
        self.frames: list[list[Pixel]] = []

    def draw(self, pixels: list[Pixel]) -> None:
        self.frames.append(list(pixels))


def newest_frame(driver: MatrixDriver, seen: int, within: float = 2.0) -> list[Pixel]:
    deadline = time.monotonic() + within
    while len(driver.frames) <= seen:
        assert time.monotonic() < deadline, "the animator drew nothing"
        time.sleep(0.005)
    return driver.frames[-1]


def test_an_led_driver_plugs_in() -> None:
    driver = MatrixDriver()
    leds = Leds(driver, patterns.patterns_for(driver.mono, {}))
    try:
        colours = {}
        for state in ("listening", "error"):
            leds.show(state)
            frame = newest_frame(driver, len(driver.frames))
            assert len(frame) == 8 and leds.state == state
            colours[state] = frame[0][0]
        assert colours["listening"] != colours["error"]  # every state looks different on it
    finally:
        leds.close()


# 3. A wake-word engine -----------------------------------------------------------------------------


class ClapDetector:
    """Wakes on a loud frame. A real engine scores on its own thread; the protocol allows either."""

    def __init__(self, settings: config.WakewordSettings, loop: asyncio.AbstractEventLoop,
                 on_wake: Callable[[WakeDetected], None]) -> None:
        self.on_wake = on_wake
        self.frames = self.dropped = 0
        self.paused = False

    def feed(self, frame: AudioFrame) -> None:
        if self.paused:
            return
        self.frames += 1
        if max(frame.pcm[1::2]) >= 0x40:  # high bytes of s16le samples: loud
            self.on_wake(WakeDetected("clap", 1.0, frame.index))

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def close(self) -> None:
        pass


# 4. An audio backend -------------------------------------------------------------------------------

mics: list[FakeMic] = []


def _audio(settings: config.AudioSettings, state_dir: Path, loop: asyncio.AbstractEventLoop,
           on_frame: Callable[[AudioFrame], None], on_fault: Callable[[DeviceFault], None]) -> tuple[FakeMic, FakeSpeaker]:
    """An AudioBackend is a function: open the microphone and the speaker, return both."""
    mic = FakeMic(on_frame)
    mics.append(mic)
    return mic, FakeSpeaker()


async def test_a_wake_word_engine_and_an_audio_backend_plug_in(tmp_path: Path) -> None:
    live = FakeLive()
    daemon = Daemon(make_config(tmp_path, wakeword={"stop_model": None}),
                    backends=Backends(audio=_audio, wakeword=ClapDetector, sessions=live))
    assert await daemon.start()
    try:
        mic = mics[-1]
        mic.frame()
        assert live.sessions == []
        mic.frame(loud=True)  # the clap
        await until(lambda: live.sessions != [], "the clap to open a session")
        assert daemon.machine.state == "wake"
        assert len(live.sessions[0].sent[0][1]) == FRAME_BYTES  # the clap's frame went out first
    finally:
        await daemon.shutdown()
