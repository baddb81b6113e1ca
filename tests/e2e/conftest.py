"""End-to-end fixtures: the real daemon process with the emulator, ALSA soft devices and mock pins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pytest
from speakerd_workshop.emulator import Scenario
from speakerd_workshop.rig import Rig

from speakerd.events import FRAME_BYTES
from tests.sounds import SCENARIO


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here runs the real daemon process: all are slow (a conftest's ``pytestmark`` marks nothing)."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.slow)


def contiguous_in(haystack: bytes, needle: bytes) -> int:
    """Offset of ``needle`` in ``haystack`` found through a loud anchor frame, or -1."""
    x = np.frombuffer(needle[: len(needle) - len(needle) % 2], dtype="<i2").astype(np.int64)
    n = len(x) // (FRAME_BYTES // 2)
    if n == 0:
        return -1
    energy = (x[: n * (FRAME_BYTES // 2)].reshape(n, -1) ** 2).mean(axis=1)
    anchor = int(np.argmax(energy)) * FRAME_BYTES
    found = haystack.find(needle[anchor : anchor + FRAME_BYTES])
    if found < 0:
        return -1
    start = found - anchor
    return start if start >= 0 and haystack[start : start + len(needle)] == needle else -1


def loud_seconds(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    block = rate // 50
    n = len(x) // block
    if n == 0:
        return 0.0
    rms = np.sqrt((x[: n * block].reshape(n, block) ** 2).mean(axis=1))
    return float((rms > 300).sum()) / 50


class RigFactory(Protocol):
    """What ``rig_factory`` yields: each call makes a ``Rig`` (default scenario: SCENARIO) in its own workdir.

    The fixture closes every rig it made at teardown, so a test that fails mid-way leaves no daemon behind.
    """

    def __call__(self, *, scenario: Scenario | Path | None = ..., config: str = ...,
                 env: dict[str, str] | None = ...) -> Rig: ...


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[RigFactory]:
    made: list[Rig] = []

    def make(*, scenario: Scenario | Path | None = SCENARIO, config: str = "", env: dict[str, str] | None = None) -> Rig:
        rig = Rig(tmp_path / f"rig{len(made)}", scenario=scenario, config=config, env=env)
        made.append(rig)
        return rig

    yield make
    for r in made:
        r.close()
