"""The button: short, double and long presses (or push-to-talk), debounced, handed to the loop.

Why this shape: gpiozero calls back on its own threads (the pin's, lgpio's), and a polling thread
is the fallback where the kernel's edge detection fails. All of them only timestamp the raw level
and hand it to the asyncio loop with ``call_soon_threadsafe``; the gesture rules live in a pure
``GestureDetector`` run on the loop, so they are tested with plain numbers.

A short press is reported as soon as the button is released, so an interrupt is never delayed by
the wait for a possible second press; a double press is therefore reported as ``short`` then
``double``. The default meanings are built for that: the first press interrupts or wakes, the
second ends the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from speakerd.events import ButtonEvent, Gesture
from speakerd.hw.pins import GpioUnavailable, device_error

if TYPE_CHECKING:
    from speakerd.config import ButtonAction, GpioSettings

log = logging.getLogger(__name__)

# What "wake_or_interrupt" means in each state: the button always does the obvious thing.
CONTEXT_ACTIONS: dict[str, str] = {
    "booting": "none",
    "idle": "wake",
    "wake": "end",  # still connecting: the user changed their mind
    "listening": "end",
    "thinking": "end",  # waiting for the reply: stop it before it starts
    "speaking": "interrupt",
    "muted": "none",  # only the long press (unmute) acts, so a tap never opens the microphone
    "offline": "end",  # stop retrying this conversation
    "error": "wake",  # try again
}


def action_for(gesture: Gesture | str, state: str, settings: GpioSettings) -> str:
    """What a gesture means now: interrupt, wake, end, mute_toggle, ptt_start, ptt_end or none."""
    if gesture == "ptt_down":
        return "ptt_start"
    if gesture == "ptt_up":
        return "ptt_end"
    configured: ButtonAction
    if gesture == "short":
        configured = settings.short_press
    elif gesture == "double":
        configured = settings.double_press
    elif gesture == "long":
        configured = settings.long_press
    else:
        return "none"
    if configured == "wake_or_interrupt":
        return CONTEXT_ACTIONS.get(state, "none")
    return configured


class GestureDetector:
    """Raw levels with timestamps in, gestures with timestamps out. No threads, no clock.

    Debounce is a lock-out: after an accepted change, further edges are ignored for ``bounce``
    seconds, then the last raw level seen is taken as the truth (so a missed edge is recovered).
    """

    def __init__(self, *, hold: float, double: float, bounce: float, push_to_talk: bool = False) -> None:
        self.hold = hold
        self.double = double
        self.bounce = bounce
        self.push_to_talk = push_to_talk
        self.pressed = False  # the debounced level
        self._raw = False
        self.lock_until: float | None = None
        self._pressed_at = 0.0
        self._held = False  # "long" already reported for this press
        self._short_released_at: float | None = None  # a short press that a second may follow

    def edge(self, pressed: bool, t: float) -> list[tuple[Gesture, float]]:
        self._raw = pressed
        if self.lock_until is not None and t < self.lock_until:
            return []
        out = self.tick(t)
        if pressed != self.pressed:
            out += self._change(pressed, t)
        return out

    def tick(self, t: float) -> list[tuple[Gesture, float]]:
        """Time passed: end a lock-out, report a hold. Call at ``deadline()``."""
        out: list[tuple[Gesture, float]] = []
        if self.lock_until is not None and t >= self.lock_until:
            self.lock_until = None
            if self._raw != self.pressed:
                out += self._change(self._raw, t)
        if self._hold_due(t):
            self._held = True
            self._short_released_at = None
            out.append(("long", t))
        return out

    def deadline(self) -> float | None:
        """When ``tick`` next has something to do, or None."""
        times = [self.lock_until] if self.lock_until is not None else []
        if self.pressed and not self._held and not self.push_to_talk:
            times.append(self._pressed_at + self.hold)
        return min(times) if times else None

    def _hold_due(self, t: float) -> bool:
        return self.pressed and not self._held and not self.push_to_talk and t - self._pressed_at >= self.hold

    def _change(self, pressed: bool, t: float) -> list[tuple[Gesture, float]]:
        self.pressed = pressed
        if self.bounce > 0:
            self.lock_until = t + self.bounce
        if self.push_to_talk:
            return [("ptt_down" if pressed else "ptt_up", t)]
        if pressed:
            self._pressed_at = t
            self._held = False
            return []
        if self._held:
            return []
        if t - self._pressed_at >= self.hold:  # the hold timer was late: still a long press
            self._held = True
            self._short_released_at = None
            return [("long", t)]
        if self._short_released_at is not None and self._pressed_at - self._short_released_at <= self.double:
            self._short_released_at = None
            return [("double", t)]
        self._short_released_at = t
        return [("short", t)]


class GestureButton:
    """The configured button, reporting ButtonEvents to ``on_event`` on the asyncio loop."""

    def __init__(self, settings: GpioSettings, factory: Any, loop: asyncio.AbstractEventLoop,
                 on_event: Callable[[ButtonEvent], None]) -> None:
        if settings.button_pin is None:
            raise GpioUnavailable("no button_pin configured")
        self.pin = settings.button_pin
        self.loop = loop
        self.on_event = on_event
        self.detector = GestureDetector(
            hold=settings.button_hold_seconds,
            double=settings.button_double_seconds,
            bounce=settings.button_bounce_seconds,
            push_to_talk=settings.push_to_talk,
        )
        self._timer: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._closed = False
        self.device: Any = None
        self.polling = settings.button_polling
        pull_up = settings.button_pull_up
        if not self.polling:
            from gpiozero import BadPinFactory, DigitalInputDevice, GPIOPinInUse, PinInvalidPin

            # Not gpiozero's Button: its hold thread wakes ten times a second for the life of the
            # process, and holds are timed here (GestureDetector) anyway. Same pin, same edges.
            try:
                self.device = DigitalInputDevice(self.pin, pull_up=pull_up, bounce_time=None, pin_factory=factory)
            except (PinInvalidPin, GPIOPinInUse, BadPinFactory) as e:
                raise device_error(f"button_pin {self.pin}", e) from None
            except Exception as e:
                # Kernels where edge detection fails ("Failed to add edge detection") still read.
                log.warning("button on GPIO%d: edge detection failed (%s); polling every %d ms instead",
                            self.pin, str(e).strip() or type(e).__name__, settings.button_poll_ms)
                self.polling = True
            else:
                self.device.when_activated = self._on_pressed
                self.device.when_deactivated = self._on_released
        if self.polling:
            from gpiozero import InputDevice

            try:
                self.device = InputDevice(self.pin, pull_up=pull_up, pin_factory=factory)
            except Exception as e:
                raise device_error(f"button_pin {self.pin}", e) from None
            interval = settings.button_poll_ms / 1000
            self._poller = threading.Thread(target=self._poll, args=(interval,), name="speakerd-button",
                                            daemon=True)
            self._poller.start()

    @property
    def idle(self) -> bool:
        """No press in progress and nothing pending (tests and the bench wait for this)."""
        return not self.detector.pressed and self.detector.deadline() is None

    # Threads: timestamp, hand over, nothing else -------------------------------------------------

    def _on_pressed(self) -> None:
        self._post(True, time.monotonic())

    def _on_released(self) -> None:
        self._post(False, time.monotonic())

    def _post(self, pressed: bool, t: float) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are shutting down
            self.loop.call_soon_threadsafe(self._edge, pressed, t)

    def _poll(self, interval: float) -> None:
        last = False
        while not self._stop.is_set():
            try:
                now = bool(self.device.is_active)
            except Exception as e:  # the device was closed under us
                if not self._stop.is_set():
                    log.warning("button polling stopped: %s", e)
                return
            if now != last:
                last = now
                self._post(now, time.monotonic())
            self._stop.wait(interval)

    # On the loop ---------------------------------------------------------------------------------

    def _edge(self, pressed: bool, t: float) -> None:
        if not self._closed:
            self._emit(self.detector.edge(pressed, t))
            self._schedule()

    def _tick(self) -> None:
        self._timer = None
        if not self._closed:
            self._emit(self.detector.tick(time.monotonic()))
            self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.detector.deadline()
        if deadline is not None:
            self._timer = self.loop.call_later(max(0.0, deadline - time.monotonic()), self._tick)

    def _emit(self, gestures: list[tuple[Gesture, float]]) -> None:
        for gesture, t in gestures:
            try:
                self.on_event(ButtonEvent(gesture, t))
            except Exception:
                log.exception("button handler failed on %s", gesture)

    def close(self) -> None:
        """Stop listening to the pin and release it. Safe to call twice, from the loop's thread."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=2.0)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.device is not None:
            with contextlib.suppress(Exception):
                self.device.close()
