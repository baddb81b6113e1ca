"""The scheduler: one loop timer armed for the next thing due, and the operations on the list.

Why one timer and no tick: an idle speaker should not wake up. With only timers active, the loop
sleeps exactly until the next one (on the monotonic clock, which NTP cannot move). With an alarm
or reminder, which follow the wall clock, it sleeps at most ``wall_check_seconds`` so that a wall
clock set forwards (a Pi without RTC syncing at boot) rings it within that bound; a clock set
backwards is caught on the next firing, which finds nothing due and re-arms. With nothing active
the loop has no timer at all.

Everything runs on the daemon's loop thread; ``on_due`` is called there and must not block.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace

from speakerd.timers.clock import Clock, SystemClock
from speakerd.timers.model import Item, Kind, duration_words, local_instant, next_alarm
from speakerd.timers.settings import TimersSettings
from speakerd.timers.store import TimerStore

log = logging.getLogger("speakerd.timers")

OnDue = Callable[[Item, bool], None]
EARLY = 0.01  # the loop may wake this much before the deadline; count it as due
JUMP = 2.0  # a change of wall minus monotonic bigger than this is the clock being set
LATE = 60.0  # ringing more than this after its time is "late"


class TimerError(ValueError):
    """A request that cannot be done, in words the model can say back."""


class Scheduler:
    def __init__(self, store: TimerStore, settings: TimersSettings, tz: dt.tzinfo, on_due: OnDue, *,
                 clock: Clock | None = None, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.store = store
        self.settings = settings
        self.tz = tz
        self.on_due = on_due
        self.clock: Clock = clock or SystemClock()
        self._loop = loop
        self._items: dict[str, Item] = {}
        self._next_id = 1
        self._handle: asyncio.TimerHandle | None = None
        self.armed_delay: float | None = None  # seconds the loop timer was last armed for (tests)
        self._offset = 0.0  # wall minus monotonic at the last check
        self._wall_based: set[str] = set()  # timers from an earlier boot: their wall end is the intent
        self._started = False

    # Life cycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the store, ring (late) what came due while the daemon was down, and arm."""
        loaded = self.store.load(self.tz)
        self._next_id = loaded.next_id
        wall, mono, boot = self.clock.wall(), self.clock.monotonic(), self.clock.boot_id()
        self._offset = wall - mono
        for item in loaded.items:
            if item.kind == "timer":
                if not (boot is not None and item.boot == boot and item.mono_due is not None):
                    item = replace(item, mono_due=mono + (item.due - wall), boot=boot)
                    self._wall_based.add(item.id)
                else:  # same boot: the monotonic end is the truth, even if the wall clock moved
                    item = replace(item, due=wall + (item.mono_due - mono))
            self._items[item.id] = item
        self._started = True
        if self._items:
            log.info("timers: %d active", len(self._items))
        self._fire_due(start=True)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.armed_delay = None

    def set_timezone(self, tz: dt.tzinfo) -> None:
        """A new ``[clock] timezone``: alarms and reminders keep their local time in the new zone."""
        self.tz = tz
        for item in list(self._items.values()):
            if item.kind == "alarm":
                assert item.hour is not None and item.minute is not None and item.after is not None
                self._items[item.id] = replace(item, due=next_alarm(item.hour, item.minute,
                                                                    item.weekdays, item.after, tz))
            elif item.kind == "reminder" and item.local is not None:
                self._items[item.id] = replace(
                    item, due=local_instant(dt.datetime.fromisoformat(item.local), tz))
        self._fire_due(start=False)

    # Reading ----------------------------------------------------------------------------------------

    def items(self, kind: Kind | None = None) -> list[Item]:
        """Active items, the next to ring first."""
        out = sorted(self._items.values(), key=lambda i: (i.due, int(i.id) if i.id.isdigit() else 0))
        return [i for i in out if kind is None or i.kind == kind]

    def left(self, item: Item) -> float:
        """Seconds until the item rings (timers on the monotonic clock)."""
        if item.kind == "timer" and item.mono_due is not None:
            return item.mono_due - self.clock.monotonic()
        return item.due - self.clock.wall()

    def match(self, *, id: str | None = None, label: str | None = None, time: str | None = None,
              kind: Kind | None = None) -> list[Item]:
        """Items matching every given filter: id, label (any case), local ring time "HH:MM", kind."""
        out = []
        for item in self.items(kind):
            if id is not None and item.id != id.strip():
                continue
            if label is not None and item.label.strip().casefold() != label.strip().casefold():
                continue
            if time is not None and self.local_time(item) != time.strip().zfill(5):
                continue
            out.append(item)
        return out

    def local_time(self, item: Item) -> str:
        """When the item rings, "HH:MM" on the local clock."""
        when = dt.datetime.fromtimestamp(self.clock.wall() + self.left(item), self.tz)
        return when.strftime("%H:%M")

    # Changing ---------------------------------------------------------------------------------------

    def add_timer(self, seconds: int, label: str = "") -> Item:
        if seconds < 1:
            raise TimerError("a timer needs a duration of at least one second")
        limit = self.settings.max_timer_seconds
        if seconds > limit:
            raise TimerError(f"a timer can be at most {duration_words(limit)}; set an alarm for a later time")
        self._room()
        wall, mono = self.clock.wall(), self.clock.monotonic()
        return self._add(Item(self._new_id(), "timer", wall + seconds, wall, label.strip(),
                              seconds=seconds, mono_due=mono + seconds, boot=self.clock.boot_id()))

    def add_alarm(self, hour: int, minute: int, label: str = "", weekdays: tuple[int, ...] = ()) -> Item:
        self._room()
        wall = self.clock.wall()
        due = next_alarm(hour, minute, weekdays, wall, self.tz)
        return self._add(Item(self._new_id(), "alarm", due, wall, label.strip(), hour=hour,
                              minute=minute, weekdays=weekdays, after=wall))

    def add_reminder(self, local: dt.datetime, text: str) -> Item:
        """``local`` is a naive local date and time."""
        if not text.strip():
            raise TimerError("a reminder needs something to remind of")
        wall = self.clock.wall()
        due = local_instant(local, self.tz)
        if due <= wall:
            raise TimerError(f"{local:%A %d %B at %H:%M} has already passed")
        if due - wall > self.settings.max_reminder_days * 86400:
            raise TimerError(f"a reminder can be at most {self.settings.max_reminder_days} days ahead")
        self._room()
        return self._add(Item(self._new_id(), "reminder", due, wall, text.strip(),
                              local=local.replace(second=0, microsecond=0).isoformat(timespec="minutes")))

    def cancel(self, ids: Iterable[str]) -> list[Item]:
        gone = [self._items.pop(i) for i in list(ids) if i in self._items]
        self._wall_based.difference_update(i.id for i in gone)
        if gone:
            self._save()
            self._arm()
        return gone

    # Firing -----------------------------------------------------------------------------------------

    def check(self) -> None:
        """Ring whatever is due now and re-arm: what the loop timer calls (and tests, by hand)."""
        self._handle = None
        self._fire_due(start=False)

    def _fire_due(self, *, start: bool) -> None:
        wall, mono = self.clock.wall(), self.clock.monotonic()
        self._notice_jump(wall, mono)
        fired: list[tuple[Item, bool]] = []
        changed = start
        for item in self.items():
            overdue = -self.left(item)
            if overdue < -EARLY:
                continue
            changed = True
            late = start or overdue > LATE
            if item.repeating:
                assert item.hour is not None and item.minute is not None
                after = max(item.due, wall)
                self._items[item.id] = replace(item, after=after, due=next_alarm(
                    item.hour, item.minute, item.weekdays, after, self.tz))
            else:
                del self._items[item.id]
                self._wall_based.discard(item.id)
            if overdue > self.settings.late_max_minutes * 60:
                log.warning("timers: %s %s was due %s ago; too long to ring it now", item.kind,
                            item.id, duration_words(overdue))
                continue
            fired.append((item, late))
        if changed:
            self._save()
        self._arm()
        for item, late in fired:
            log.info("timers: %s %s%s is due%s", item.kind, item.id,
                     f" ({item.label})" if item.label and item.kind != "reminder" else "",
                     " (late)" if late else "")
            try:
                self.on_due(item, late)
            except Exception as e:  # a failing ringer must not stop the other items
                log.error("timers: ringing %s failed: %s: %s", item.id, type(e).__name__, e)

    def _notice_jump(self, wall: float, mono: float) -> None:
        offset = wall - mono
        moved = offset - self._offset
        self._offset = offset
        if abs(moved) <= JUMP:
            return
        log.info("timers: the wall clock was set %s by %.0f s; timers keep their duration, alarms "
                 "follow the clock", "forwards" if moved > 0 else "backwards", abs(moved))
        for item in list(self._items.values()):
            if item.kind != "timer" or item.mono_due is None:
                continue
            if item.id in self._wall_based:
                # Set before this boot and measured from a clock that was wrong at start (a Pi
                # without RTC before its first sync): the corrected clock and the end decide.
                self._items[item.id] = replace(item, mono_due=mono + (item.due - wall))
            else:
                self._items[item.id] = replace(item, due=wall + (item.mono_due - mono))
        self._save()

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.armed_delay = None
        if not self._items or not self._started:
            return
        delays = []
        for item in self._items.values():
            d = self.left(item)
            if item.kind != "timer":
                d = min(d, self.settings.wall_check_seconds)
            delays.append(d)
        self.armed_delay = max(0.0, min(delays))
        loop = self._loop or asyncio.get_running_loop()
        self._handle = loop.call_later(self.armed_delay, self.check)

    # Internals --------------------------------------------------------------------------------------

    def _room(self) -> None:
        if len(self._items) >= self.settings.max_active:
            raise TimerError(f"there are already {len(self._items)} timers, alarms and reminders, the "
                             "most I can keep; cancel one first")

    def _new_id(self) -> str:
        ident = str(self._next_id)
        self._next_id += 1
        return ident

    def _add(self, item: Item) -> Item:
        self._items[item.id] = item
        self._save()
        self._arm()
        log.info("timers: set %s %s, rings in %s", item.kind, item.id, duration_words(self.left(item)))
        return item

    def _save(self) -> None:
        self.store.save(self.items(), self._next_id)
