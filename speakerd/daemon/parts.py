"""The devices and servers the daemon owns, and the order they start and stop in.

Why one place: start-up decides which missing part is fatal (exit 78: the owner must fix it)
and which the speaker can live without (a warning: no GPIO, no control socket), and shutdown
must release every part even when one of them fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from speakerd.camera import Camera, CameraError, open_camera
from speakerd.config import WakewordSettings
from speakerd.control import ControlServer
from speakerd.events import WakeDetected
from speakerd.hw import GestureButton, GpioUnavailable, Leds, make_leds, select_pin_factory
from speakerd.ports import Microphone, Speaker, WakeWordEngine
from speakerd.wakeword import WakeWordError

if TYPE_CHECKING:
    from speakerd.daemon.core import Daemon

log = logging.getLogger("speakerd")


class StartupError(Exception):
    """A part could not start for a reason the owner must fix (one line, exit 78)."""


@dataclass
class Parts:
    """None until started, or when the speaker runs without that part."""

    capture: Microphone | None = None
    player: Speaker | None = None
    detector: WakeWordEngine | None = None
    stop_detector: WakeWordEngine | None = None  # "stop" during a conversation
    leds: Leds | None = None
    button: GestureButton | None = None
    pin_factory: Any = None
    control: ControlServer | None = None
    camera: Camera | None = None


async def start(d: Daemon) -> None:
    """Start every part in dependency order; raises StartupError for what the owner must fix."""
    s = d.cfg.settings
    _check_state_directory(d)
    _start_gpio(d)
    try:
        d.parts.camera = open_camera(s.camera, on_active=d.conversation.camera_active)
    except CameraError as e:
        raise StartupError(str(e)) from None
    d.tools = d.make_tools()
    d.parts.detector = await make_detector(d, s.wakeword, d.on_wake)
    if s.wakeword.stop_model:
        stop_settings = s.wakeword.model_copy(update={"models": [s.wakeword.stop_model]})
        try:
            d.parts.stop_detector = await make_detector(d, stop_settings, d.on_stop_word)
        except StartupError as e:
            raise StartupError(str(e).replace("wakeword.models", "wakeword.stop_model")) from None
        d.parts.stop_detector.pause()
    d.parts.capture, d.parts.player = d.backends.audio(
        s.audio, s.state.directory, d.loop, d.on_frame, d.on_fault)
    d.parts.player.start()
    d.parts.capture.start()
    d.health.expect_frames(True)
    d.wake_listening = True
    await _start_control(d)


async def make_detector(
    d: Daemon, settings: WakewordSettings, on_wake: Callable[[WakeDetected], None]
) -> WakeWordEngine:
    try:
        return await asyncio.to_thread(d.backends.wakeword, settings, d.loop, on_wake)
    except WakeWordError as e:
        raise StartupError(str(e)) from None


def _check_state_directory(d: Daemon) -> None:
    directory = d.cfg.settings.state.directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.warning("state directory %s is not usable (%s); nothing will be remembered", directory, e.strerror)
        return
    if not os.access(directory, os.W_OK):  # a read-only mount stops root too
        log.warning("state directory %s is not writable; what is stored there is used, but "
                    "nothing new will be remembered", directory)


def _start_gpio(d: Daemon) -> None:
    g = d.cfg.settings.gpio
    try:
        d.parts.pin_factory = select_pin_factory(g)
    except GpioUnavailable as e:
        raise StartupError(str(e)) from None
    if d.parts.pin_factory is None:
        if g.enabled != "off" and (g.led_profile != "none" or g.button_pin is not None):
            log.warning("no GPIO pin factory available here; running without LEDs and button")
        return
    try:
        d.parts.leds = make_leds(g, d.parts.pin_factory)
        if g.button_pin is not None:
            d.parts.button = GestureButton(g, d.parts.pin_factory, d.loop, d.on_button)
    except GpioUnavailable as e:
        if g.enabled == "on":
            raise StartupError(str(e)) from None
        log.warning("%s; running without LEDs and button", e)


async def _start_control(d: Daemon) -> None:
    c = d.cfg.settings.control
    control = ControlServer(c.socket, c.group, d.commands.handle)
    try:
        await control.start()
    except OSError as e:
        log.warning("control socket %s unavailable (%s); speakerctl will not work", c.socket, e.strerror)
        return
    d.parts.control = control


async def stop(parts: Parts) -> None:
    """Release every part: first what reaches outside (camera, socket), then the audio, then GPIO."""
    if parts.camera is not None:
        await parts.camera.close()
    if parts.control is not None:
        await parts.control.close()
    if parts.capture is not None:
        await asyncio.to_thread(parts.capture.stop)
    for detector in (parts.detector, parts.stop_detector):
        if detector is not None:
            await asyncio.to_thread(detector.close)
    if parts.player is not None:
        await asyncio.to_thread(parts.player.close)
    if parts.button is not None:
        parts.button.close()
    if parts.leds is not None:
        parts.leds.close()
