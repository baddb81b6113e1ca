"""The button: gesture rules with plain numbers, then the same gestures from driven mock pins.

Driven-pin tests choose hold/double/bounce times with wide margins for what must happen "fast"
(a test's consecutive drive calls) and small ones for what must happen "slow" (waiting for a
hold), and wait for events rather than timing anything.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from speakerd import state
from speakerd.config import STATES, GpioSettings
from speakerd.effects import Effect
from speakerd.events import Action, ButtonEvent, ReplyAudio, SessionState, Started, UserAction
from speakerd.hw import GestureButton, GestureDetector, GpioUnavailable, action_for
from tests.hw.conftest import gpio

PIN = 17

# The pure rules ----------------------------------------------------------------------------------


def det(**kw: Any) -> GestureDetector:
    args = {"hold": 1.0, "double": 0.4, "bounce": 0.03, "push_to_talk": False, **kw}
    return GestureDetector(**args)


def names(out: Sequence[tuple[str, float]]) -> list[str]:
    return [g for g, _ in out]


def test_short_press_reported_at_release() -> None:
    d = det()
    assert d.edge(True, 10.0) == []
    assert d.edge(False, 10.2) == [("short", 10.2)]


def test_double_press_is_short_then_double() -> None:
    d = det()
    d.edge(True, 0.0)
    assert names(d.edge(False, 0.1)) == ["short"]
    d.edge(True, 0.3)  # 0.2 s after the first release: within 0.4
    assert names(d.edge(False, 0.4)) == ["double"]
    d.edge(True, 0.6)  # a third press starts over
    assert names(d.edge(False, 0.7)) == ["short"]


def test_presses_further_apart_than_the_double_window_are_two_shorts() -> None:
    d = det()
    d.edge(True, 0.0)
    d.edge(False, 0.1)
    d.edge(True, 0.6)  # 0.5 s after release
    assert names(d.edge(False, 0.7)) == ["short"]


def test_long_press_at_hold_time_and_nothing_at_release() -> None:
    d = det()
    d.edge(True, 5.0)
    assert d.deadline() == pytest.approx(5.03)  # the bounce lock-out first
    assert d.tick(5.03) == []
    assert d.deadline() == pytest.approx(6.0)
    assert d.tick(6.0) == [("long", 6.0)]
    assert d.deadline() is None
    assert d.edge(False, 7.5) == []


def test_late_hold_timer_still_gives_long_at_release() -> None:
    d = det()
    d.edge(True, 0.0)
    assert names(d.edge(False, 1.2)) == ["long"]


def test_long_press_does_not_start_a_double() -> None:
    d = det()
    d.edge(True, 0.0)
    d.tick(1.0)
    d.edge(False, 1.1)
    d.edge(True, 1.2)
    assert names(d.edge(False, 1.3)) == ["short"]


def test_bounce_is_ignored_and_the_settled_level_wins() -> None:
    d = det(bounce=0.03)
    # contact chatter on the press, then on the release
    out = [*d.edge(True, 0.000), *d.edge(False, 0.002), *d.edge(True, 0.004), *d.edge(False, 0.006)]
    out += d.edge(True, 0.009)
    assert out == [] and d.pressed
    out += d.tick(0.03)  # lock-out over, still pressed: nothing to report
    assert out == [] and d.pressed
    out += [*d.edge(False, 0.2), *d.edge(True, 0.201), *d.edge(False, 0.203)]
    assert names(out) == ["short"]
    assert d.tick(0.23) == []  # the chatter after release does not make a second press


def test_missed_final_edge_is_recovered_after_lock_out() -> None:
    d = det(bounce=0.05)
    d.edge(True, 0.0)
    d.edge(False, 0.01)  # a real, very short press whose release fell in the lock-out
    assert d.pressed
    assert d.tick(0.05) == [("short", 0.05)]


def test_push_to_talk_reports_down_and_up_only() -> None:
    d = det(push_to_talk=True)
    assert d.edge(True, 0.0) == [("ptt_down", 0.0)]
    assert d.tick(0.03) == []
    assert d.deadline() is None  # no hold in push-to-talk: holding is talking
    assert d.edge(False, 3.0) == [("ptt_up", 3.0)]


# Meanings ----------------------------------------------------------------------------------------


def test_default_short_press_depends_on_state() -> None:
    g = GpioSettings()
    assert action_for("short", "speaking", g) == "interrupt"
    assert action_for("short", "idle", g) == "wake"
    assert action_for("short", "listening", g) == "end"
    assert action_for("short", "muted", g) == "none"
    assert action_for("short", "booting", g) == "none"
    assert {action_for("short", s, g) for s in STATES} <= {"interrupt", "wake", "end", "none"}


def test_default_double_and_long() -> None:
    g = GpioSettings()
    for s in STATES:
        assert action_for("double", s, g) == "end"
        assert action_for("long", s, g) == "mute_toggle"


def test_configured_actions_and_push_to_talk() -> None:
    g = gpio(short_press="interrupt", double_press="wake_or_interrupt", long_press="none")
    assert action_for("short", "idle", g) == "interrupt"
    assert action_for("double", "speaking", g) == "interrupt"
    assert action_for("long", "speaking", g) == "none"
    assert action_for("ptt_down", "idle", g) == "ptt_start"
    assert action_for("ptt_up", "listening", g) == "ptt_end"


# Driven pins -------------------------------------------------------------------------------------


class Recorder:
    """Collects ButtonEvents on the loop and checks they arrive on the loop's thread."""

    def __init__(self) -> None:
        self.events: list[ButtonEvent] = []
        self.threads: set[int] = set()
        self.queue: asyncio.Queue[ButtonEvent] = asyncio.Queue()

    def __call__(self, event: ButtonEvent) -> None:
        self.threads.add(threading.get_ident())
        self.events.append(event)
        self.queue.put_nowait(event)

    async def next(self) -> str:
        return (await asyncio.wait_for(self.queue.get(), 10.0)).gesture

    @property
    def gestures(self) -> list[str]:
        return [e.gesture for e in self.events]


async def until(pred: Callable[[], bool]) -> None:
    """Wait (bounded) for the loop to have processed what the pins' threads handed over."""
    async with asyncio.timeout(10):
        while not pred():
            await asyncio.sleep(0.002)


async def settle(button: GestureButton) -> None:
    """Wait until no press is in progress and no lock-out or hold timer is pending."""
    await asyncio.sleep(0.002)
    await until(lambda: button.idle)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def open_button(factory: MockFactory, rec: Recorder, **kw: Any) -> GestureButton:
    settings = gpio(**{"button_pin": PIN, "button_bounce_seconds": 0.0, "button_hold_seconds": 5.0, **kw})
    return GestureButton(settings, factory, asyncio.get_running_loop(), rec)


async def test_driven_short_press(factory: MockFactory, rec: Recorder) -> None:
    button = open_button(factory, rec)
    pin = factory.pin(PIN)
    pin.drive_low()
    pin.drive_high()
    assert await rec.next() == "short"
    await settle(button)
    assert rec.gestures == ["short"]
    assert rec.threads == {threading.get_ident()}  # on the loop, not on the pin's thread
    button.close()


async def test_driven_double_press(factory: MockFactory, rec: Recorder) -> None:
    button = open_button(factory, rec, button_double_seconds=2.0)
    pin = factory.pin(PIN)
    for _ in range(2):
        pin.drive_low()
        pin.drive_high()
    assert [await rec.next(), await rec.next()] == ["short", "double"]
    await settle(button)
    assert rec.gestures == ["short", "double"]
    button.close()


async def test_driven_long_press_fires_while_held(factory: MockFactory, rec: Recorder) -> None:
    button = open_button(factory, rec, button_hold_seconds=0.05)
    pin = factory.pin(PIN)
    pin.drive_low()
    assert await rec.next() == "long"  # still held: the gesture does not wait for release
    assert not pin.state
    pin.drive_high()
    await settle(button)
    assert rec.gestures == ["long"]
    button.close()


async def test_driven_bouncy_press_is_one_short(factory: MockFactory, rec: Recorder) -> None:
    button = open_button(factory, rec, button_bounce_seconds=0.5)
    pin = factory.pin(PIN)
    for _ in range(4):  # chatter: every edge within the lock-out
        pin.drive_low()
        pin.drive_high()
    pin.drive_low()  # settles pressed
    # wait for the lock-out to end with the button held
    await until(lambda: button.detector.pressed and button.detector.lock_until is None)
    assert rec.gestures == []
    for _ in range(3):  # chatter on release, settling released
        pin.drive_high()
        pin.drive_low()
    pin.drive_high()
    assert await rec.next() == "short"
    await settle(button)
    assert rec.gestures == ["short"]
    button.close()


async def test_driven_push_to_talk(factory: MockFactory, rec: Recorder) -> None:
    button = open_button(factory, rec, push_to_talk=True, button_hold_seconds=0.01)
    pin = factory.pin(PIN)
    pin.drive_low()
    assert await rec.next() == "ptt_down"
    pin.drive_high()
    assert await rec.next() == "ptt_up"
    await settle(button)
    assert rec.gestures == ["ptt_down", "ptt_up"]  # holding is talking, never a long press
    button.close()


async def test_pull_down_button(factory: MockFactory, rec: Recorder) -> None:
    button = open_button(factory, rec, button_pull_up=False)
    pin = factory.pin(PIN)
    pin.drive_high()
    pin.drive_low()
    assert await rec.next() == "short"
    button.close()


async def test_polling_mode_sees_presses(factory: MockFactory, rec: Recorder) -> None:
    button = open_button(factory, rec, button_polling=True, button_poll_ms=1, button_hold_seconds=0.05)
    assert button.polling
    assert factory.pin(PIN).when_changed is None  # no edge detection asked of the kernel
    pin = factory.pin(PIN)
    pin.drive_low()
    assert await rec.next() == "long"
    pin.drive_high()
    await settle(button)
    pin.drive_low()
    await until(lambda: button.detector.pressed)
    pin.drive_high()
    assert await rec.next() == "short"
    button.close()


class NoEdgePin(MockPin):  # type: ignore[misc]
    """A pin on a kernel where edge detection fails, as on some 6.6 kernels."""

    def _enable_event_detect(self) -> None:
        raise RuntimeError("Failed to add edge detection")


async def test_edge_detection_failure_falls_back_to_polling(rec: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    factory = MockFactory(pin_class=NoEdgePin)
    try:
        button = open_button(factory, rec, button_poll_ms=1)
        assert button.polling
        assert "polling every 1 ms" in caplog.text
        pin = factory.pin(PIN)
        pin.drive_low()
        await until(lambda: button.detector.pressed)
        pin.drive_high()
        assert await rec.next() == "short"
        button.close()
    finally:
        factory.reset()


async def test_close_releases_the_pin(factory: MockFactory, rec: Recorder) -> None:
    button = open_button(factory, rec)
    button.close()
    button.close()
    factory.pin(PIN).drive_low()
    factory.pin(PIN).drive_high()
    await asyncio.sleep(0.01)
    assert rec.gestures == []
    again = open_button(factory, rec)  # the pin is free again
    again.close()


@pytest.mark.parametrize("polling", [False, True])
async def test_bad_pin_is_one_clear_line(factory: MockFactory, rec: Recorder, polling: bool) -> None:
    with pytest.raises(GpioUnavailable, match=r"^button_pin 45: ") as e:
        open_button(factory, rec, button_pin=45, button_polling=polling)
    assert "\n" not in str(e.value)


async def test_pin_in_use_is_one_clear_line(factory: MockFactory, rec: Recorder) -> None:
    first = open_button(factory, rec)
    try:
        with pytest.raises(GpioUnavailable, match=r"^button_pin 17: "):
            open_button(factory, rec)
    finally:
        first.close()


# From the pin to the state machine's effects -------------------------------------------------------


def speaking_machine() -> state.Machine:
    m = state.Machine()
    m.handle(Started())
    m.handle(UserAction("wake"))
    m.handle(SessionState("ready"))
    m.handle(ReplyAudio(b"\0\0" * 240))
    assert m.state == "speaking"
    return m


async def test_press_while_speaking_flushes_playback(factory: MockFactory, rec: Recorder) -> None:
    """Driven pin -> ButtonEvent -> action_for -> the real state machine: the speaker is flushed."""
    machine = speaking_machine()
    settings = gpio(button_pin=PIN, button_bounce_seconds=0.0, button_hold_seconds=5.0)
    effects: list[Effect] = []

    def on_event(event: ButtonEvent) -> None:
        action = action_for(event.gesture, machine.state, settings)
        effects.extend(machine.handle(UserAction(cast(Action, action))))
        rec(event)

    button = GestureButton(settings, factory, asyncio.get_running_loop(), on_event)
    pin = factory.pin(PIN)
    pin.drive_low()
    pin.drive_high()
    assert await rec.next() == "short"
    kinds = [e.kind for e in effects]
    assert kinds[0] == "flush_playback"
    assert str(machine.state) == "listening"
    # a long press now mutes
    button.close()
    button = GestureButton(settings.model_copy(update={"button_hold_seconds": 0.05}), factory,
                           asyncio.get_running_loop(), on_event)
    pin.drive_low()
    assert await rec.next() == "long"
    pin.drive_high()
    assert str(machine.state) == "muted"
    button.close()
