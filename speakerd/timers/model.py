"""Timers, alarms and reminders as data, and when each one rings.

What is stored is the *intent*, so that a restart, a daylight-saving change or a new time zone
gives the right answer:

- a timer keeps its duration, its end on the wall clock (UTC) and, within one boot, its end on the
  monotonic clock (which NTP cannot move);
- an alarm keeps its local hour and minute, its weekdays and the instant after which it next rings
  (its creation, then each ringing); when is recomputed from the zone rules every time;
- a reminder keeps the local date and time it was asked for.

Local times that a daylight-saving change makes odd have one defined outcome each:

- a time in the spring-forward gap (02:30 on 2026-03-29 in Europe/Berlin does not exist) rings as
  long after the change as it was meant after its start: 03:30 new time (Python's ``fold=0``);
- a time in the autumn fold (02:30 on 2026-10-25 in Europe/Berlin happens twice) rings once, at
  the first one (summer time); a repeating alarm does not ring again an hour later.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["timer", "alarm", "reminder"]
KINDS: tuple[Kind, ...] = ("timer", "alarm", "reminder")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ItemError(ValueError):
    """A stored item that does not make sense."""


@dataclass(frozen=True)
class Item:
    """One timer, alarm or reminder. ``due`` is the next ringing as a UTC epoch second."""

    id: str
    kind: Kind
    due: float
    created: float  # wall clock, UTC epoch seconds
    label: str = ""  # the timer's or alarm's name; a reminder's text
    seconds: int | None = None  # timer: the duration asked for
    mono_due: float | None = None  # timer: the end on the monotonic clock of ``boot``
    boot: str | None = None
    hour: int | None = None  # alarm
    minute: int | None = None
    weekdays: tuple[int, ...] = ()  # alarm: 0 = Monday; empty: rings once
    after: float | None = None  # alarm: rings at the first occurrence after this instant
    local: str | None = None  # reminder: local date and time, ISO "2026-03-29T02:30"

    @property
    def repeating(self) -> bool:
        return self.kind == "alarm" and bool(self.weekdays)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "created": self.created,
                               "label": self.label}
        if self.kind == "timer":
            out.update(seconds=self.seconds, end=self.due, mono_end=self.mono_due, boot=self.boot)
        elif self.kind == "alarm":
            out.update(time=f"{self.hour:02d}:{self.minute:02d}",
                       weekdays=[WEEKDAYS[d] for d in self.weekdays], after=self.after)
        else:
            out.update(at=self.local)
        return out

    @staticmethod
    def from_json(data: Any, tz: dt.tzinfo) -> Item:
        """Rebuild an item, recomputing when it rings from its intent; ItemError if malformed."""
        try:
            if not isinstance(data, dict):
                raise ItemError("not an object")
            ident, kind, created = str(data["id"]), data["kind"], _num(data["created"])
            label = data.get("label", "")
            if not isinstance(label, str) or not ident:
                raise ItemError("bad label or id")
            if kind == "timer":
                seconds = int(data["seconds"])
                end = _num(data["end"])
                mono = data.get("mono_end")
                boot = data.get("boot")
                return Item(ident, "timer", end, created, label, seconds=seconds,
                            mono_due=None if mono is None else _num(mono),
                            boot=boot if isinstance(boot, str) else None)
            if kind == "alarm":
                hour, minute = parse_hhmm(str(data["time"]))
                days = parse_weekdays(data.get("weekdays") or [])
                after = _num(data["after"])
                due = next_alarm(hour, minute, days, after, tz)
                return Item(ident, "alarm", due, created, label, hour=hour, minute=minute,
                            weekdays=days, after=after)
            if kind == "reminder":
                local = dt.datetime.fromisoformat(str(data["at"]))
                if local.tzinfo is not None:
                    raise ItemError("a reminder's time is local, without an offset")
                return Item(ident, "reminder", local_instant(local, tz), created, label,
                            local=local.isoformat(timespec="minutes"))
            raise ItemError(f"unknown kind {kind!r}")
        except (KeyError, TypeError, ValueError) as e:
            raise ItemError(str(e) or type(e).__name__) from None


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v or v in (float("inf"), float("-inf")):
        raise ItemError(f"not a number: {v!r}")
    return float(v)


def parse_hhmm(text: str) -> tuple[int, int]:
    """"07:30" (or "7:30") -> (7, 30); ValueError in words otherwise."""
    parts = text.strip().split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or len(parts[1]) != 2:
        raise ValueError(f"{text!r} is not a time like 07:30")
    h, m = int(parts[0]), int(parts[1])
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValueError(f"{text!r} is not a time of day")
    return h, m


def parse_weekdays(names: Any) -> tuple[int, ...]:
    """["mon", "fri"] -> (0, 4), sorted and unique; ValueError naming the odd one out."""
    if not isinstance(names, list):
        raise ValueError("weekdays must be a list")
    days = set()
    for n in names:
        key = str(n).strip().lower()[:3]
        if key not in WEEKDAYS:
            raise ValueError(f"{n!r} is not a weekday; use mon, tue, wed, thu, fri, sat or sun")
        days.add(WEEKDAYS.index(key))
    return tuple(sorted(days))


def local_instant(local: dt.datetime, tz: dt.tzinfo) -> float:
    """The UTC instant of a naive local time: a gap time shifts forward, a fold time is the first."""
    return local.replace(tzinfo=tz, fold=0).timestamp()


def next_alarm(hour: int, minute: int, weekdays: tuple[int, ...], after: float, tz: dt.tzinfo) -> float:
    """The first instant strictly after ``after`` when the local clock shows hour:minute (on one of
    ``weekdays``, any day if empty)."""
    start = dt.datetime.fromtimestamp(after, tz).date() - dt.timedelta(days=1)
    for i in range(9):
        day = start + dt.timedelta(days=i)
        if weekdays and day.weekday() not in weekdays:
            continue
        at = local_instant(dt.datetime.combine(day, dt.time(hour, minute)), tz)
        if at > after:
            return at
    raise AssertionError("a week always has the weekday")  # pragma: no cover


def duration_words(seconds: float) -> str:
    """4 minutes 10 seconds: how the model (and speakerctl) says a duration."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    parts = []
    for n, unit in ((h, "hour"), (m, "minute"), (sec, "second")):
        if n:
            parts.append(f"{n} {unit}{'s' if n != 1 else ''}")
    if h:  # nobody wants the seconds of a two-hour timer
        parts = parts[:2]
    return " ".join(parts) or "0 seconds"


def parse_when(text: str, now: float, tz: dt.tzinfo) -> dt.datetime:
    """A reminder's time as the model gives it, as a naive local datetime.

    "18:30" is the next 18:30 (today or tomorrow); "2026-12-24T18:30" (or with a space, seconds, or
    an offset, which is converted to local time) is that moment. ValueError in words otherwise.
    """
    text = text.strip()
    if "-" not in text and ":" in text:  # a time of day alone; seconds, if any, must be :00
        if text.count(":") == 2 and text.endswith(":00"):
            text = text[:-3]
        h, m = parse_hhmm(text)
        return dt.datetime.fromtimestamp(next_alarm(h, m, (), now, tz), tz).replace(tzinfo=None, fold=0)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time like 18:30 or 2026-12-24T18:30") from None
    if len(text) <= 10:  # "2026-12-24": a date is not a time to ring
        raise ValueError(f"{text!r} has no time of day; give one, like 2026-12-24T18:30")
    if when.tzinfo is not None:
        when = when.astimezone(tz).replace(tzinfo=None)
    return when.replace(second=0, microsecond=0, fold=0)
