"""Choosing a gpiozero pin factory, and turning GPIO failures into one clear line.

Why here and not left to gpiozero: off a Pi, gpiozero only fails when the first device is made,
with an exception per library it tried. The daemon wants to know at start-up whether it has GPIO,
say why not in one line, and either run without it (``enabled = "auto"``) or refuse (``"on"``).
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from speakerd.config import GpioSettings

log = logging.getLogger(__name__)

# gpiozero's own preference order on a Pi (pigpio needs a daemon, so it is only used when named
# through GPIOZERO_PIN_FACTORY).
AUTO_ORDER = ("lgpio", "rpigpio", "native")

_HINTS = {
    "lgpio": "on Raspberry Pi OS: apt install python3-lgpio and make the venv with --system-site-packages",
    "rpigpio": "apt install python3-rpi.gpio (or pip install RPi.GPIO)",
    "native": "needs a Raspberry Pi (reads /proc/device-tree and /dev/gpiomem)",
}


class GpioUnavailable(Exception):
    """GPIO cannot be used here. The message is one line, ready for the log or the terminal."""


def needs_pwm(settings: GpioSettings) -> bool:
    return settings.led_profile in ("pwm", "rgb")


def mock_factory(pwm: bool = True) -> Any:
    """gpiozero's MockFactory; with PWM-capable pins when ``pwm`` (PWMLED and RGBLED need them)."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    if pwm:
        return MockFactory(pin_class=MockPWMPin)
    return MockFactory()


MOCK_STATES_KEPT = 1000  # pin changes a mock pin remembers for tests' assert_states()


def _short_memory(pin_class: type[Any]) -> type[Any]:
    """``pin_class`` whose ``states`` history keeps only the latest changes.

    gpiozero's mock pins record every change; a daemon animating LEDs on them for hours (the demo,
    the soak) would grow by thousands of entries per conversation.
    """

    class ShortMemory(pin_class):  # type: ignore[misc]
        def _change_state(self, value: Any) -> Any:
            changed = super()._change_state(value)
            if len(self.states) > 2 * MOCK_STATES_KEPT:
                del self.states[:-MOCK_STATES_KEPT]
            return changed

    ShortMemory.__name__ = ShortMemory.__qualname__ = f"ShortMemory{pin_class.__name__}"
    return ShortMemory


def is_mock(factory: Any) -> bool:
    from gpiozero.pins.mock import MockFactory

    return isinstance(factory, MockFactory)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _load(name: str) -> Any:
    """Make the named factory and prove it can see a board (native only fails on first use)."""
    try:
        cls = entry_points(group="gpiozero_pin_factories")[name].load()
    except KeyError:
        raise GpioUnavailable(f"unknown gpiozero pin factory {name!r}") from None
    factory = cls()
    try:
        factory.board_info  # noqa: B018 - reading it is the probe
    except Exception:
        factory.close()
        raise
    return factory


def select_pin_factory(settings: GpioSettings) -> Any | None:
    """The pin factory to use, or None when GPIO is off or (with ``enabled = "auto"``) absent.

    Raises GpioUnavailable when ``enabled = "on"`` and no factory works.
    """
    if settings.enabled == "off":
        return None
    name: str = settings.pin_factory
    env = os.environ.get("GPIOZERO_PIN_FACTORY", "").strip().lower()
    if name == "auto" and env:
        name = env  # an operator's (or a test's) explicit gpiozero choice wins over our probing
    if name == "mock":
        if os.environ.get("GPIOZERO_MOCK_PIN_CLASS"):
            from gpiozero.pins.mock import MockFactory

            factory = MockFactory()
        else:
            factory = mock_factory(pwm=needs_pwm(settings))
        factory.pin_class = _short_memory(factory.pin_class)
        return factory
    candidates = AUTO_ORDER if name == "auto" else (name,)
    failures: list[str] = []
    for candidate in candidates:
        try:
            factory = _load(candidate)
        except GpioUnavailable as e:
            failures.append(str(e))
        except ImportError as e:
            failures.append(f"{candidate}: {_short(e)} ({_HINTS.get(candidate, 'not installed')})")
        except Exception as e:  # gpiozero raises many kinds (PinUnknownPi, OSError, RuntimeError)
            failures.append(f"{candidate}: {_short(e)}")
        else:
            log.info("GPIO pin factory: %s", candidate)
            return factory
    message = "no GPIO pin factory works here: " + "; ".join(failures)
    if settings.enabled == "on":
        raise GpioUnavailable(message + ' (set gpio.enabled = "auto" or "off" to run without GPIO)')
    log.info("%s", message)
    return None


def device_error(what: str, exc: BaseException) -> GpioUnavailable:
    """A gpiozero device failed to open: one line naming the setting at fault."""
    from gpiozero.exc import PinPWMUnsupported

    if isinstance(exc, PinPWMUnsupported):
        return GpioUnavailable(f"{what}: this pin factory has no PWM on that pin; use led_profile = \"led\" "
                               f"or the lgpio factory")
    return GpioUnavailable(f"{what}: {_short(exc)}")
