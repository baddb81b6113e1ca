"""LEDs that show the daemon's state: one pattern per state, on whichever LEDs are fitted.

Why this shape: ``show()`` is called from the asyncio loop and must never block it, so it only
records the wanted state and wakes one animator thread; that thread is the only writer to the
pins or the SPI bus. Patterns are data (``patterns.py``); profiles differ only in how they draw a
frame: a plain LED (on/off), a PWM LED (dimmable), an RGB LED (common anode or cathode) and an
APA102 ring over SPI. The clock is injectable so tests can run patterns fast and check timings
exactly, without timed assertions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from speakerd.config import STATES, PatternSettings
from speakerd.hw import patterns as pat
from speakerd.hw.apa102 import APA102, MemorySpi, open_spi, to_pixel
from speakerd.hw.pins import GpioUnavailable, device_error, is_mock
from speakerd.supervise import Supervised

if TYPE_CHECKING:
    from speakerd.config import GpioSettings

log = logging.getLogger(__name__)

RGB = tuple[float, float, float]
Pixel = tuple[RGB, float, float]  # colour, the pattern's brightness, the frame's intensity (0..1)


class LedClock(Protocol):
    """Time for the animator: real by default, scaled or recorded in tests and demos."""

    def now(self) -> float: ...

    def wait(self, wake: threading.Event, timeout: float | None) -> bool: ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    def wait(self, wake: threading.Event, timeout: float | None) -> bool:
        return wake.wait(timeout)


class ScaledClock:
    """Time running ``speed`` times faster than real time: fast tests and LED previews."""

    def __init__(self, speed: float) -> None:
        self.speed = speed

    def now(self) -> float:
        return time.monotonic() * self.speed

    def wait(self, wake: threading.Event, timeout: float | None) -> bool:
        return wake.wait(None if timeout is None else timeout / self.speed)


# Profiles ----------------------------------------------------------------------------------------


class Driver:
    """Draws one frame. ``pixels`` is how many separately lit points there are."""

    pixels = 0
    levels = True  # can it show intermediate brightness
    mono = False  # no colour: patterns differ by rhythm only

    def draw(self, pixels: list[Pixel]) -> None:
        """Light each pixel; a plain LED's light is brightness times intensity."""

    def off(self) -> None:
        pass

    def close(self) -> None:
        pass


class LedDriver(Driver):
    """One plain LED: on or off."""

    pixels = 1
    levels = False
    mono = True

    def __init__(self, device: Any) -> None:
        self.device = device

    def draw(self, pixels: list[Pixel]) -> None:
        _, b, x = pixels[0]
        if b * x > 0:
            self.device.on()
        else:
            self.device.off()

    def off(self) -> None:
        self.device.off()

    def close(self) -> None:
        self.device.close()


class PwmDriver(LedDriver):
    """One dimmable LED on a PWM pin."""

    levels = True

    def draw(self, pixels: list[Pixel]) -> None:
        _, b, x = pixels[0]
        self.device.value = round(b * x, 4)


class RgbDriver(Driver):
    """One RGB LED (gpiozero's RGBLED handles common anode through ``active_high``)."""

    pixels = 1

    def __init__(self, device: Any) -> None:
        self.device = device

    def draw(self, pixels: list[Pixel]) -> None:
        color, b, x = pixels[0]
        self.device.value = tuple(round(c * b * x, 4) for c in color)

    def off(self) -> None:
        self.device.off()

    def close(self) -> None:
        self.device.close()


class Apa102Driver(Driver):
    """An APA102 ring: brightness goes to the 5-bit global field, intensity scales the colour."""

    def __init__(self, ring: APA102, power: Any | None = None) -> None:
        self.ring = ring
        self.power = power
        self.pixels = ring.count

    def draw(self, pixels: list[Pixel]) -> None:
        self.ring.write([to_pixel(color, b, x) for color, b, x in pixels])

    def off(self) -> None:
        self.ring.off()

    def close(self) -> None:
        self.ring.close()
        if self.power is not None:
            self.power.off()
            self.power.close()


# The animated LEDs ---------------------------------------------------------------------------------


class Leds:
    """The state's pattern plus any overlays, played by one background thread."""

    def __init__(self, driver: Driver, patterns: Mapping[str, PatternSettings],
                 clock: LedClock | None = None) -> None:
        self.driver = driver
        self.patterns = dict(patterns)
        self.clock: LedClock = clock or RealClock()
        self.state: str | None = None
        self.overlays: dict[str, PatternSettings] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._restart = False
        self._redraw = False
        self._closed = False
        self._failed = False
        self.frames_drawn = 0  # for tests and diagnostics: frames the animator has drawn
        self._worker: Supervised | None = None
        if driver.pixels:
            self._worker = Supervised("speakerd-leds", self._run)
            self._worker.start()

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.alive

    @property
    def crashes(self) -> int:
        return self._worker.crashes if self._worker is not None else 0

    def show(self, state: str) -> None:
        """Show a state's pattern. Returns at once; the animator thread does the drawing."""
        if state not in self.patterns:
            raise ValueError(f"unknown state {state!r}; states are {', '.join(STATES)}")
        with self._lock:
            if self._closed or state == self.state:
                return
            self.state = state
            self._restart = True
        self._wake.set()

    def overlay(self, name: str, on: bool) -> None:
        """Turn an indication (e.g. ``"camera"``) on or off on top of the state's pattern."""
        with self._lock:
            if self._closed:
                return
            if on:
                self.overlays[name] = pat.OVERLAY_PATTERNS.get(name, pat.DEFAULT_OVERLAY)
            elif self.overlays.pop(name, None) is None:
                return
            self._redraw = True
        self._wake.set()

    def close(self) -> None:
        """Stop the animation and turn every LED off. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        if self._worker is not None:
            self._worker.stop()
            self._worker.join(timeout=2.0)
        try:
            self.driver.off()
        except Exception as e:  # a dead SPI bus must not stop shutdown
            log.warning("LEDs: could not turn off: %s", e)
        try:
            self.driver.close()
        except Exception as e:
            log.warning("LEDs: could not close: %s", e)

    # The animator thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        with self._lock:
            self._restart = self.state is not None  # after a crash: draw the current state afresh
        it: Iterator[pat.Frame] | None = None
        frame: tuple[float, ...] | None = None
        pattern: PatternSettings | None = None
        deadline: float | None = None
        while True:
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return
                restart, self._restart = self._restart, False
                redraw, self._redraw = self._redraw, False
                state = self.state
                overlays = list(self.overlays.values())
            now = self.clock.now()
            if restart and state is not None:
                pattern = self.patterns[state]
                it = pat.frames(pattern, self.driver.pixels, self.driver.levels)
                deadline = now
            if it is not None and pattern is not None and deadline is not None and now >= deadline:
                frame, hold = next(it)
                self._draw(pattern, frame, overlays)
                deadline = None if hold is None else now + hold
            elif redraw and pattern is not None and frame is not None:
                self._draw(pattern, frame, overlays)
            timeout = None if deadline is None else max(0.0, deadline - self.clock.now())
            self.clock.wait(self._wake, timeout)

    def _draw(self, pattern: PatternSettings, frame: tuple[float, ...],
              overlays: list[PatternSettings]) -> None:
        n = self.driver.pixels
        pixels: list[Pixel] = [(pattern.color, pattern.brightness, x) for x in frame]
        if overlays:
            if n >= 2:  # a ring: overlays take the last pixels, the first stays the state's
                for k, o in enumerate(overlays[: n - 1]):
                    pixels[n - 1 - k] = (o.color, o.brightness, 1.0)
            else:  # one LED: the overlay shows wherever the state's pattern is dimmer
                o = max(overlays, key=lambda p: p.brightness)
                if o.brightness > pattern.brightness * frame[0]:
                    pixels[0] = (o.color, o.brightness, 1.0)
        try:
            self.driver.draw(pixels)
            self.frames_drawn += 1
        except Exception as e:
            if not self._failed:  # say it once; a flapping bus must not flood the journal
                self._failed = True
                log.warning("LEDs: drawing failed: %s", e)
        else:
            self._failed = False


# Construction --------------------------------------------------------------------------------------


def _output(what: str, make: Any) -> Any:
    try:
        return make()
    except GpioUnavailable:
        raise
    except Exception as e:
        raise device_error(what, e) from None


def make_driver(settings: GpioSettings, factory: Any, spi: Any | None = None) -> Driver:
    profile = settings.led_profile
    if profile == "none" or factory is None:
        return Driver()
    from gpiozero import LED, PWMLED, RGBLED, DigitalOutputDevice

    if profile == "led":
        pin = settings.led_pin
        return LedDriver(_output(f"led_pin {pin}", lambda: LED(pin, pin_factory=factory)))
    if profile == "pwm":
        pin = settings.led_pin
        return PwmDriver(_output(f"led_pin {pin}", lambda: PWMLED(pin, pin_factory=factory)))
    if profile == "rgb":
        assert settings.rgb_pins is not None  # the config validator guarantees it
        r, g, b = settings.rgb_pins
        return RgbDriver(_output(
            f"rgb_pins {list(settings.rgb_pins)}",
            lambda: RGBLED(r, g, b, active_high=not settings.rgb_common_anode, pwm=True, pin_factory=factory),
        ))
    # apa102
    power = None
    if settings.apa102_power_pin is not None:
        pp = settings.apa102_power_pin
        power = _output(f"apa102_power_pin {pp}",
                        lambda: DigitalOutputDevice(pp, initial_value=True, pin_factory=factory))
    own = spi is None
    try:
        if spi is None:
            spi = MemorySpi() if is_mock(factory) else open_spi(settings.apa102_spi_bus,
                                                                settings.apa102_spi_device)
        ring = APA102(spi, settings.apa102_leds, own_spi=own)
    except BaseException:
        if power is not None:
            power.close()
        raise
    return Apa102Driver(ring, power)


def make_leds(settings: GpioSettings, factory: Any, spi: Any | None = None, *,
              clock: LedClock | None = None) -> Leds:
    """The LEDs for ``settings.led_profile``; raises GpioUnavailable (one line) if they cannot open."""
    driver = make_driver(settings, factory, spi)
    return Leds(driver, pat.patterns_for(driver.mono, settings.patterns), clock)
