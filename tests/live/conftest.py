"""Fixtures for the Live client tests: one emulator per test (its state is the test's record)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from speakerd_workshop.emulator import EmulatorThread

from tests.live.test_session import KEY, SCENARIO


@pytest.fixture
def emu(cert_dir: Path) -> Iterator[EmulatorThread]:
    with EmulatorThread(SCENARIO, api_key=KEY, cert_dir=cert_dir, pace=6.0) as e:
        yield e
