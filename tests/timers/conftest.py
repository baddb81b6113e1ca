"""Timers on a fake clock: time moves only when a test says so, so nothing here is timed."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from speakerd.timers import FakeClock, Item, Scheduler, TimersSettings, TimerStore

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
LONDON = zoneinfo.ZoneInfo("Europe/London")


def at(tz: dt.tzinfo, year: int, month: int, day: int, hour: int, minute: int, *, fold: int = 0) -> float:
    """The epoch second of a local wall time."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=tz, fold=fold).timestamp()


def local(sched: Scheduler, item: Item) -> dt.datetime:
    return dt.datetime.fromtimestamp(sched.clock.wall() + sched.left(item), sched.tz)


@dataclass
class Rings:
    """What on_due was called with, in order."""

    calls: list[tuple[Item, bool]] = field(default_factory=list)

    def __call__(self, item: Item, late: bool) -> None:
        self.calls.append((item, late))

    @property
    def ids(self) -> list[str]:
        return [i.id for i, _ in self.calls]


@dataclass
class Rig:
    state: Path
    clock: FakeClock
    rings: Rings
    make: Callable[..., Scheduler]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    clock = FakeClock(at(BERLIN, 2026, 12, 2, 8, 0))
    rings = Rings()

    def make(tz: dt.tzinfo = BERLIN, start: bool = True, **settings: Any) -> Scheduler:
        s = Scheduler(TimerStore(tmp_path), TimersSettings(**settings), tz, rings, clock=clock)
        if start:
            s.start()
        return s

    return Rig(tmp_path, clock, rings, make)
