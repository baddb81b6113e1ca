"""Fixtures for the GPIO tests: gpiozero's MockFactory pins, reset between tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from speakerd.config import GpioSettings
from tests import support


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()
    f.close()


def gpio(**kw: Any) -> GpioSettings:
    """Settings as the config file would give them (validated)."""
    return GpioSettings.model_validate({"pin_factory": "mock", **kw})


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait for something a background thread does; polled finely, as an LED level passes quickly."""
    support.wait_until(pred, what, timeout=timeout, interval=0.0005)
