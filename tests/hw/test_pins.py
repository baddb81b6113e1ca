"""Choosing a pin factory: mock on request, none off a Pi, and one clear line when GPIO is required."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from gpiozero import PWMLED
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from speakerd.hw import GpioUnavailable, select_pin_factory
from speakerd.hw.pins import MOCK_STATES_KEPT
from tests.hw.conftest import gpio

ON_A_PI = any(importlib.util.find_spec(m) for m in ("lgpio", "RPi")) or Path("/proc/device-tree/model").exists()
off_a_pi = pytest.mark.skipif(ON_A_PI, reason="this machine may have working GPIO")


@pytest.fixture(autouse=True)
def _no_gpiozero_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.delenv("GPIOZERO_MOCK_PIN_CLASS", raising=False)


def test_off_means_none_even_with_mock() -> None:
    assert select_pin_factory(gpio(enabled="off", pin_factory="mock")) is None


@pytest.mark.parametrize(("profile", "pin_class"), [("led", MockPin), ("pwm", MockPWMPin), ("rgb", MockPWMPin)])
def test_mock_factory_with_pwm_pins_when_needed(profile: str, pin_class: type) -> None:
    extra = {"rgb_pins": [5, 6, 13]} if profile == "rgb" else {"led_pin": 25}
    f = select_pin_factory(gpio(pin_factory="mock", led_profile=profile, **extra))
    assert isinstance(f, MockFactory) and issubclass(f.pin_class, pin_class)
    assert issubclass(f.pin_class, MockPWMPin) == (pin_class is MockPWMPin)


def test_mock_pins_remember_a_bounded_history() -> None:
    """The demo and the soak animate mock LEDs for hours: the pin history must not grow forever."""
    f = select_pin_factory(gpio(pin_factory="mock", led_profile="pwm", led_pin=25))
    assert f is not None
    led = PWMLED(25, pin_factory=f)
    try:
        for i in range(5 * MOCK_STATES_KEPT):
            led.value = (i % 100) / 100
        states = f.pin(25).states
        assert MOCK_STATES_KEPT <= len(states) <= 2 * MOCK_STATES_KEPT
        assert states[-1].state == led.value  # the newest changes are the ones kept
    finally:
        led.close()


def test_gpiozero_env_choice_wins_in_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setenv("GPIOZERO_MOCK_PIN_CLASS", "mockpwmpin")
    f = select_pin_factory(gpio(pin_factory="auto"))
    assert isinstance(f, MockFactory) and issubclass(f.pin_class, MockPWMPin)


@off_a_pi
def test_auto_off_a_pi_is_none() -> None:
    assert select_pin_factory(gpio(pin_factory="auto", enabled="auto")) is None


@off_a_pi
def test_required_but_absent_is_one_clear_line() -> None:
    with pytest.raises(GpioUnavailable) as e:
        select_pin_factory(gpio(pin_factory="auto", enabled="on"))
    msg = str(e.value)
    assert msg.startswith("no GPIO pin factory works here: ")
    for name in ("lgpio", "rpigpio", "native"):
        assert f"{name}: " in msg
    assert "gpio.enabled" in msg and "\n" not in msg


@off_a_pi
def test_named_factory_missing_says_how_to_install() -> None:
    with pytest.raises(GpioUnavailable, match=r"lgpio: .*python3-lgpio"):
        select_pin_factory(gpio(pin_factory="lgpio", enabled="on"))
    assert select_pin_factory(gpio(pin_factory="lgpio", enabled="auto")) is None
