"""LED patterns on gpiozero's mock pins: the pin history of every state, for every profile.

The animator runs on its real thread with time running 200x faster (ScaledClock), so patterns
are checked by the sequence of values the pins went through, never by how long anything took.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from speakerd.config import STATES, PatternSettings
from speakerd.hw import GpioUnavailable, Leds, make_leds
from speakerd.hw import patterns as pat
from speakerd.hw.apa102 import MemorySpi
from speakerd.hw.leds import ScaledClock
from tests.hw.conftest import gpio, wait_until

SPEED = 200.0
LED_PIN = 25
RGB_PINS = (5, 6, 13)


def values(pin: Any) -> list[float]:
    """The pin's history as numbers (MockPin records bools, MockPWMPin floats)."""
    return [float(s.state) for s in pin.states]


def changes(pin: Any, n: int) -> list[float]:
    wait_until(lambda: len(pin.states) > n, what=f"{n} changes on {pin}")
    return values(pin)[1 : n + 1]


def open_leds(factory: MockFactory, profile: str, **kw: Any) -> Leds:
    extra: dict[str, Any] = {}
    if profile in ("led", "pwm"):
        extra["led_pin"] = LED_PIN
    if profile == "rgb":
        extra["rgb_pins"] = list(RGB_PINS)
    extra.update(kw)
    return make_leds(gpio(led_profile=profile, **extra), factory, clock=ScaledClock(SPEED))


def mono(state: str) -> PatternSettings:
    return pat.MONO_PATTERNS[state]


def colour(state: str) -> PatternSettings:
    return pat.DEFAULT_PATTERNS[state]


# Plain LED: on, off, or a blink for everything that moves ------------------------------------------


@pytest.mark.parametrize("state", pat.LED_STATES)
def test_plain_led_history(factory: MockFactory, state: str) -> None:
    leds = open_leds(factory, "led")
    pin = factory.pin(LED_PIN)
    p = mono(state)
    try:
        leds.show(state)
        if p.mode == "off" or p.brightness == 0:
            wait_until(lambda: leds.frames_drawn >= 1)
            assert values(pin) == [0.0]  # never lit
        elif p.mode == "on":
            assert changes(pin, 1) == [1.0]
        else:  # blink, and pulse degraded to blink (a plain LED cannot dim)
            assert changes(pin, 6) == [1.0, 0.0] * 3
    finally:
        leds.close()
    assert values(pin)[-1] == 0.0


# PWM LED: brightness, and real fades for pulse -----------------------------------------------------


@pytest.mark.parametrize("state", pat.LED_STATES)
def test_pwm_led_history(factory: MockFactory, state: str) -> None:
    leds = open_leds(factory, "pwm")
    pin = factory.pin(LED_PIN)
    p = mono(state)
    b = p.brightness
    try:
        leds.show(state)
        if p.mode == "off" or b == 0:
            wait_until(lambda: leds.frames_drawn >= 1)
            assert values(pin) == [0.0]
        elif p.mode == "on":
            assert changes(pin, 1) == pytest.approx([b])
        elif p.mode == "blink":
            assert changes(pin, 4) == pytest.approx([b, 0.0, b, 0.0])
        else:
            assert p.mode == "pulse"
            up, down = round(p.on_seconds * pat.FPS), round(p.off_seconds * pat.FPS)
            hist = changes(pin, 2 * (up + down))
            rise, fall = hist[:up], hist[up : up + down]
            assert all(a < c for a, c in itertools.pairwise(rise)), rise
            assert rise[-1] == pytest.approx(b, abs=1e-3)
            assert all(a > c for a, c in itertools.pairwise(fall)), fall
            assert fall[-1] == 0.0
            assert hist[up + down : 2 * (up + down)] == hist[: up + down]  # and it repeats
    finally:
        leds.close()
    assert values(pin)[-1] == 0.0


# RGB LED: colour times brightness on three PWM pins, inverted for common anode --------------------


@pytest.mark.parametrize("anode", [False, True], ids=["cathode", "anode"])
@pytest.mark.parametrize("state", pat.LED_STATES)
def test_rgb_led_history(factory: MockFactory, state: str, anode: bool) -> None:
    leds = open_leds(factory, "rgb", rgb_common_anode=anode)
    pins = [factory.pin(n) for n in RGB_PINS]
    p = colour(state)

    def level(x: float) -> float:
        return 1.0 - x if anode else x

    assert [values(pin)[-1] for pin in pins] == [level(0.0)] * 3  # starts dark
    before = [len(pin.states) for pin in pins]
    try:
        leds.show(state)
        needed = {"on": 1, "off": 1}.get(p.mode, 4)
        if p.mode == "pulse":
            needed = round(p.on_seconds * pat.FPS) + round(p.off_seconds * pat.FPS) + 1
        wait_until(lambda: leds.frames_drawn >= needed)
        shown = [values(pin)[n:] or [level(0.0)] for pin, n in zip(pins, before, strict=True)]
        peak = [max(h, key=lambda v: abs(v - level(0.0))) for h in shown]
        expected = [level(c * p.brightness) for c in p.color]
        assert peak == pytest.approx(expected, abs=1e-3)
        if p.mode in ("blink", "spin", "pulse"):  # moving patterns return to dark and light again
            for h, c in zip(shown, p.color, strict=True):
                if c * p.brightness > 0:
                    assert h[0] != level(0.0)
                    assert level(0.0) in h
    finally:
        leds.close()
    for pin in pins:  # turned dark, then released (an input: no current either way)
        assert pin.function == "input"
        assert values(pin)[-1 if not anode else -2] == level(0.0)


# APA102 ring: the bytes on the SPI bus -------------------------------------------------------------


def decode(frame: bytes, n: int) -> list[tuple[int, int, int, int]]:
    """Check the framing and return (global, red, green, blue) per LED."""
    assert frame[:4] == b"\x00\x00\x00\x00", "start frame"
    end = frame[4 + 4 * n :]
    assert end == bytes(len(end)) and len(end) >= max(4, -(-n // 16)), "end frame"
    assert len(frame) == 4 + 4 * n + len(end)
    out = []
    for i in range(n):
        head, blue, green, red = frame[4 + 4 * i : 8 + 4 * i]
        assert head & 0xE0 == 0xE0, "LED frame marker"
        out.append((head & 0x1F, red, green, blue))
    return out


def expected_pixel(p: PatternSettings, intensity: float) -> tuple[int, int, int, int]:
    if intensity == 0:
        return (0, 0, 0, 0)
    r, g, b = (round(255 * c * intensity) for c in p.color)
    return (round(31 * p.brightness), r, g, b)


@pytest.mark.parametrize("count", [3, 12])
@pytest.mark.parametrize("state", pat.LED_STATES)
def test_apa102_byte_stream(factory: MockFactory, state: str, count: int) -> None:
    spi = MemorySpi()
    leds = make_leds(gpio(led_profile="apa102", apa102_leds=count), factory, spi=spi,
                     clock=ScaledClock(SPEED))
    p = colour(state)
    try:
        leds.show(state)
        needed = {"on": 1, "off": 1, "pulse": round(p.on_seconds * pat.FPS) + 1}.get(p.mode, 2 * count + 2)
        wait_until(lambda: len(spi.writes) >= needed)
        frames = [decode(w, count) for w in list(spi.writes)]
    finally:
        leds.close()
    first = frames[0]
    if p.mode == "off":
        assert first == [(0, 0, 0, 0)] * count
    elif p.mode == "on":
        assert first == [expected_pixel(p, 1.0)] * count
    elif p.mode == "blink":
        assert frames[:4] == [[expected_pixel(p, 1.0)] * count, [(0, 0, 0, 0)] * count] * 2
    elif p.mode == "spin":
        for step, f in enumerate(frames[: 2 * count]):
            head = step % count
            assert f[head] == expected_pixel(p, 1.0)
            assert f[(head - 1) % count] == expected_pixel(p, pat.SPIN_TAIL)
            assert all(px == (0, 0, 0, 0) for i, px in enumerate(f) if i not in (head, (head - 1) % count))
    else:
        assert p.mode == "pulse"
        up = round(p.on_seconds * pat.FPS)
        assert frames[up - 1] == [expected_pixel(p, 1.0)] * count  # the crest is the full colour
        greens = [f[0][2] for f in frames[:up]]
        assert greens == sorted(greens) and len(set(greens)) == up  # a rising fade, every step new
    assert decode(spi.writes[-1], count) == [(0, 0, 0, 0)] * count  # close() turned it off


def test_apa102_with_writebytes_only_device(factory: MockFactory) -> None:
    class WriteOnly:
        def __init__(self) -> None:
            self.data: list[list[int]] = []

        def writebytes(self, data: list[int]) -> None:
            self.data.append(list(data))

    spi = WriteOnly()
    leds = make_leds(gpio(led_profile="apa102", apa102_leds=3), factory, spi=spi)
    leds.show("muted")
    wait_until(lambda: len(spi.data) >= 1)
    leds.close()
    p = colour("muted")
    assert decode(bytes(spi.data[0]), 3) == [expected_pixel(p, 1.0)] * 3


def test_apa102_power_pin_on_while_open(factory: MockFactory) -> None:
    leds = make_leds(gpio(led_profile="apa102", apa102_leds=12, apa102_power_pin=5), factory, spi=MemorySpi())
    assert factory.pin(5).state == 1
    leds.close()
    assert factory.pin(5).state == 0


def test_mock_factory_gives_apa102_a_memory_bus(factory: MockFactory) -> None:
    leds = make_leds(gpio(led_profile="apa102"), factory)
    leds.show("listening")
    wait_until(lambda: leds.frames_drawn >= 1)
    spi = leds.driver.ring.spi  # type: ignore[attr-defined]
    leds.close()
    assert isinstance(spi, MemorySpi) and spi.closed
    assert decode(spi.writes[0], 3) == [expected_pixel(colour("listening"), 1.0)] * 3


# Behaviour shared by every profile -----------------------------------------------------------------


def test_every_state_looks_different() -> None:
    def look(p: PatternSettings, pixels: int, levels: bool, colour_shown: bool) -> tuple[Any, ...]:
        mode = pat.effective_mode(p, pixels, levels)
        if mode == "off":
            return ("off",)
        timing = () if mode == "on" else (p.on_seconds, p.off_seconds)
        return (mode, *((p.color, p.brightness) if colour_shown else ()), *timing)

    assert "alarm" in pat.LED_STATES
    ring = {s: look(colour(s), 3, True, True) for s in pat.LED_STATES}
    assert len(set(ring.values())) == len(pat.LED_STATES), ring
    rgb = {s: look(colour(s), 1, True, True) for s in pat.LED_STATES}
    assert len(set(rgb.values())) == len(pat.LED_STATES), rgb
    # A plain on/off LED has only rhythm; wake and listening share "on" (wake lasts a moment).
    plain = {s: look(mono(s), 1, False, False) for s in pat.LED_STATES if s != "wake"}
    assert len(set(plain.values())) == len(plain), plain
    pwm = {s: look(mono(s), 1, True, False) for s in pat.LED_STATES if s != "wake"}
    assert len(set(pwm.values())) == len(pwm), pwm


def test_user_pattern_overrides_default(factory: MockFactory) -> None:
    leds = make_leds(
        gpio(led_profile="pwm", led_pin=LED_PIN,
             patterns={"listening": {"mode": "blink", "brightness": 0.25, "on_seconds": 0.1, "off_seconds": 0.3}}),
        factory, clock=ScaledClock(SPEED),
    )
    try:
        leds.show("listening")
        assert changes(factory.pin(LED_PIN), 4) == [0.25, 0.0, 0.25, 0.0]
    finally:
        leds.close()


def test_state_change_restarts_pattern(factory: MockFactory) -> None:
    leds = open_leds(factory, "pwm")
    pin = factory.pin(LED_PIN)
    try:
        leds.show("thinking")
        changes(pin, 3)
        leds.show("listening")
        wait_until(lambda: values(pin)[-1] == 1.0 and leds.frames_drawn >= 4)
        leds.show("idle")
        wait_until(lambda: values(pin)[-1] == 0.0)
    finally:
        leds.close()


def test_show_never_waits_for_the_hardware(factory: MockFactory) -> None:
    """With the SPI bus stuck mid-transfer, show() and overlay() still return at once."""
    gate = threading.Event()
    entered = threading.Event()

    class StuckSpi(MemorySpi):
        def xfer2(self, data: list[int]) -> list[int]:
            entered.set()
            gate.wait(30)
            return super().xfer2(data)

    leds = make_leds(gpio(led_profile="apa102"), factory, spi=StuckSpi())
    leds.show("booting")
    assert entered.wait(10)
    done = threading.Event()

    def caller() -> None:
        for state in STATES:
            leds.show(state)
        leds.overlay("camera", True)
        done.set()

    t = threading.Thread(target=caller)
    t.start()
    try:
        assert done.wait(10), "show() blocked on the LED hardware"
    finally:
        gate.set()
        t.join()
        leds.close()


def test_camera_overlay_on_ring_takes_last_pixel(factory: MockFactory) -> None:
    spi = MemorySpi()
    leds = make_leds(gpio(led_profile="apa102", apa102_leds=3), factory, spi=spi)
    try:
        leds.show("listening")
        wait_until(lambda: len(spi.writes) >= 1)
        leds.overlay("camera", True)
        wait_until(lambda: len(spi.writes) >= 2)
        cam = pat.OVERLAY_PATTERNS["camera"]
        px = decode(spi.writes[1], 3)
        assert px[:2] == [expected_pixel(colour("listening"), 1.0)] * 2
        assert px[2] == expected_pixel(cam, 1.0)
        leds.overlay("camera", False)
        wait_until(lambda: len(spi.writes) >= 3)
        assert decode(spi.writes[2], 3) == [expected_pixel(colour("listening"), 1.0)] * 3
    finally:
        leds.close()


def test_camera_overlay_lights_a_single_led_when_idle(factory: MockFactory) -> None:
    leds = open_leds(factory, "pwm")
    pin = factory.pin(LED_PIN)
    try:
        leds.show("idle")
        wait_until(lambda: leds.frames_drawn >= 1)
        leds.overlay("camera", True)
        wait_until(lambda: values(pin)[-1] > 0)
        assert values(pin)[-1] == pytest.approx(pat.OVERLAY_PATTERNS["camera"].brightness)
        leds.show("listening")  # brighter than the overlay: the state wins
        wait_until(lambda: values(pin)[-1] == 1.0)
        leds.overlay("camera", False)
        leds.show("idle")
        wait_until(lambda: values(pin)[-1] == 0.0)
    finally:
        leds.close()


def test_close_stops_thread_and_turns_off(factory: MockFactory) -> None:
    leds = open_leds(factory, "rgb")
    leds.show("error")
    wait_until(lambda: leds.frames_drawn >= 3)
    alive = leds.running
    leds.close()
    assert alive and not leds.running
    assert [factory.pin(n).state for n in RGB_PINS] == [0, 0, 0]
    leds.close()  # twice is fine
    leds.show("listening")  # after close: ignored, no error


def test_unknown_state_is_refused(factory: MockFactory) -> None:
    leds = open_leds(factory, "led")
    with pytest.raises(ValueError, match="unknown state 'sleeping'"):
        leds.show("sleeping")
    leds.close()


def test_profile_none_has_no_thread(factory: MockFactory) -> None:
    leds = make_leds(gpio(led_profile="none"), factory)
    assert not leds.running
    leds.show("speaking")
    leds.overlay("camera", True)
    leds.close()


# Frames: exact timings, no clock at all ------------------------------------------------------------


def take(it: Any, n: int) -> list[Any]:
    return [next(it) for _ in range(n)]


def test_frame_timings_are_the_pattern_timings() -> None:
    blink = PatternSettings(mode="blink", on_seconds=0.3, off_seconds=0.7)
    assert take(pat.frames(blink, 1), 4) == [((1.0,), 0.3), ((0.0,), 0.7)] * 2
    pulse = PatternSettings(mode="pulse", on_seconds=0.4, off_seconds=0.8)
    cycle = take(pat.frames(pulse, 1), 10 + 20)
    assert sum(hold for _, hold in cycle[:10]) == pytest.approx(0.4)
    assert sum(hold for _, hold in cycle[10:]) == pytest.approx(0.8)
    spin = PatternSettings(mode="spin", on_seconds=0.1)
    steps = take(pat.frames(spin, 4), 5)
    assert [f.index(1.0) for f, _ in steps] == [0, 1, 2, 3, 0]
    assert {hold for _, hold in steps} == {0.1}
    assert list(pat.frames(PatternSettings(mode="on"), 2)) == [((1.0, 1.0), None)]


# Errors: one line, never a gpiozero traceback -------------------------------------------------------


def test_pwm_on_a_pin_without_pwm_is_one_clear_line() -> None:
    f = MockFactory(pin_class=MockPin)
    try:
        with pytest.raises(GpioUnavailable) as e:
            make_leds(gpio(led_profile="pwm", led_pin=LED_PIN), f)
        assert "led_pin 25" in str(e.value) and "PWM" in str(e.value) and "\n" not in str(e.value)
    finally:
        f.reset()


def test_pin_the_board_does_not_have_is_one_clear_line(factory: MockFactory) -> None:
    with pytest.raises(GpioUnavailable, match=r"^led_pin 40: .*40") as e:
        make_leds(gpio(led_profile="led", led_pin=40), factory)
    assert "\n" not in str(e.value)


def test_pin_in_use_is_one_clear_line(factory: MockFactory) -> None:
    first = make_leds(gpio(led_profile="led", led_pin=LED_PIN), factory)
    try:
        with pytest.raises(GpioUnavailable, match=r"^led_pin 25: "):
            make_leds(gpio(led_profile="led", led_pin=LED_PIN), factory)
    finally:
        first.close()


def test_apa102_without_spi_off_a_pi_is_one_clear_line() -> None:
    from speakerd.hw.apa102 import open_spi

    with pytest.raises(GpioUnavailable) as e:
        open_spi(0, 1)
    msg = str(e.value)
    assert ("spidev" in msg) and "\n" not in msg
