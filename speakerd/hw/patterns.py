"""LED patterns as data, and the frames they turn into. Pure: no pins, no threads, no clock.

Why separate: what each state looks like is product design that users override in ``[gpio]``;
how a pattern becomes a sequence of frames is the part tests pin down exactly. The animator in
``leds.py`` only plays the frames.

A frame is one intensity (0..1) per pixel and how long to hold it (None: until the state changes).
Colour and brightness are applied when a frame is drawn, by the profile that knows its hardware.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from speakerd.config import STATES, PatternSettings

FPS = 25  # fade steps per second for pulse, as gpiozero's own pulse uses
SPIN_TAIL = 0.3  # intensity of the pixel behind the spinning head

Frame = tuple[tuple[float, ...], float | None]


def _p(color: tuple[float, float, float], brightness: float, mode: str, on: float = 0.5,
       off: float = 0.5) -> PatternSettings:
    return PatternSettings.model_validate(
        {"color": color, "brightness": brightness, "mode": mode, "on_seconds": on, "off_seconds": off}
    )


WHITE = (1.0, 1.0, 1.0)
BLUE = (0.0, 0.35, 1.0)
CYAN = (0.0, 0.9, 1.0)
RED = (1.0, 0.0, 0.0)
AMBER = (1.0, 0.45, 0.0)
GOLD = (1.0, 0.75, 0.0)

# Colour profiles (rgb, apa102). Blue family while in a conversation, red for muted and error,
# amber for offline, as the common smart speakers do; a quick gold pulse for a ringing alarm or
# timer, the one state meant to be seen from across the room.
DEFAULT_PATTERNS: dict[str, PatternSettings] = {
    "booting": _p(WHITE, 0.4, "pulse", 1.0, 1.0),
    "idle": _p(WHITE, 0.0, "off"),
    "wake": _p(CYAN, 1.0, "on"),
    "listening": _p(BLUE, 0.8, "on"),
    "thinking": _p(BLUE, 0.8, "spin", 0.15, 0.15),
    "speaking": _p(CYAN, 0.8, "pulse", 0.6, 0.6),
    "muted": _p(RED, 0.6, "on"),
    "offline": _p(AMBER, 0.6, "blink", 1.0, 1.0),
    "error": _p(RED, 1.0, "blink", 0.2, 0.2),
    "alarm": _p(GOLD, 1.0, "pulse", 0.4, 0.4),
}

# Single-colour profiles (led, pwm) cannot use colour, so states differ by rhythm instead: steady
# means listening, fast blink thinking, a short blip every two seconds muted, long-on short-off
# offline, a flicker an error, mostly on with quick dark gaps a ringing alarm. Wake and listening
# look the same (wake lasts a moment).
MONO_PATTERNS: dict[str, PatternSettings] = {
    "booting": _p(WHITE, 0.5, "pulse", 1.0, 1.0),
    "idle": _p(WHITE, 0.0, "off"),
    "wake": _p(WHITE, 1.0, "on"),
    "listening": _p(WHITE, 1.0, "on"),
    "thinking": _p(WHITE, 1.0, "blink", 0.25, 0.25),
    "speaking": _p(WHITE, 1.0, "pulse", 0.6, 0.6),
    "muted": _p(WHITE, 0.5, "blink", 0.1, 1.9),
    "offline": _p(WHITE, 1.0, "blink", 1.5, 0.5),
    "error": _p(WHITE, 1.0, "blink", 0.08, 0.08),
    "alarm": _p(WHITE, 1.0, "blink", 0.5, 0.15),
}

# Indications drawn on top of the state's pattern (the last pixel of a ring, or blended into a
# single LED). The camera one is a privacy light, so it is steady and never off while in use.
OVERLAY_PATTERNS: dict[str, PatternSettings] = {
    "camera": _p((1.0, 0.55, 0.0), 0.35, "on"),
}
DEFAULT_OVERLAY = _p(WHITE, 0.3, "on")

# Every state the daemon can be in has a pattern on every profile. The LEDs know "alarm" (a timer
# ringing) before config.STATES lists it; once it does, the two sets are equal.
LED_STATES: tuple[str, ...] = (*STATES, *(s for s in DEFAULT_PATTERNS if s not in STATES))
assert set(DEFAULT_PATTERNS) == set(LED_STATES) == set(MONO_PATTERNS) >= set(STATES)


def patterns_for(mono: bool, overrides: Mapping[str, PatternSettings]) -> dict[str, PatternSettings]:
    """The pattern of every state: the profile's defaults, then the user's ``[gpio.patterns]``."""
    table = dict(MONO_PATTERNS if mono else DEFAULT_PATTERNS)
    table.update(overrides)
    return table


def effective_mode(pattern: PatternSettings, pixels: int, levels: bool) -> str:
    """What a mode becomes on hardware that cannot do it: spin needs a ring, pulse needs PWM."""
    mode = pattern.mode
    if mode != "off" and pattern.brightness == 0:
        return "off"
    if mode == "spin" and pixels < 2:
        mode = "blink"
    if mode == "pulse" and not levels:
        mode = "blink"
    return mode


def _q(x: float) -> float:
    return round(x, 4)


def frames(pattern: PatternSettings, pixels: int, levels: bool = True) -> Iterator[Frame]:
    """The frames of one pattern, forever (a static pattern yields one frame held until changed)."""
    mode = effective_mode(pattern, pixels, levels)
    on, off = pattern.on_seconds, pattern.off_seconds
    all_on = (1.0,) * pixels
    all_off = (0.0,) * pixels
    if mode == "off":
        yield all_off, None
        return
    if mode == "on":
        yield all_on, None
        return
    if mode == "blink":
        while True:
            yield all_on, on
            yield all_off, off
    if mode == "pulse":
        up = max(1, round(on * FPS))
        down = max(1, round(off * FPS))
        while True:
            for i in range(1, up + 1):
                yield (_q(i / up),) * pixels, on / up
            for i in range(1, down + 1):
                yield (_q((down - i) / down),) * pixels, off / down
    # spin: a bright head with a dimmer tail, one pixel further every on_seconds
    while True:
        for head in range(pixels):
            yield tuple(
                1.0 if i == head else SPIN_TAIL if i == (head - 1) % pixels else 0.0 for i in range(pixels)
            ), on
