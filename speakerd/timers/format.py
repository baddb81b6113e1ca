"""How timers are shown: one JSON view for the model and ``speakerctl timers --json``, and the
text ``speakerctl timers`` and ``speakerctl cancel`` print.

Why one view: the model, the control socket and the client all describe the same item, so the
daemon builds the view once (``views``) and the client formats what it received (``format_*``)
without needing the zone rules or the scheduler.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from speakerd.timers.model import WEEKDAYS, Item, duration_words

if TYPE_CHECKING:
    from speakerd.timers.scheduler import Scheduler

View = dict[str, Any]


def day_words(when: dt.datetime, today: dt.date) -> str:
    """today, tomorrow, a weekday within the week, or the date."""
    days = (when.date() - today).days
    if days == 0:
        return "today"
    if days == 1:
        return "tomorrow"
    if 1 < days < 7:
        return when.strftime("%A")
    return f"{when:%A} {when.day} {when:%B %Y}"


def repeat_words(weekdays: Sequence[int]) -> str:
    if len(weekdays) == 7:
        return "every day"
    if tuple(weekdays) == (0, 1, 2, 3, 4):
        return "weekdays"
    if tuple(weekdays) == (5, 6):
        return "weekends"
    return ", ".join(WEEKDAYS[d] for d in weekdays)


def view(item: Item, sched: Scheduler) -> View:
    """One item as JSON: what it is, when it rings (local), how long is left."""
    left = sched.left(item)
    now = dt.datetime.fromtimestamp(sched.clock.wall(), sched.tz)
    when = dt.datetime.fromtimestamp(now.timestamp() + left, sched.tz)
    out: View = {"id": item.id, "kind": item.kind,
                 "rings_at": when.isoformat(timespec="seconds"), "time": when.strftime("%H:%M"),
                 "day": day_words(when, now.date()), "left_seconds": max(0, round(left)),
                 "left": duration_words(left)}
    if item.kind == "reminder":
        out["text"] = item.label
    elif item.label:
        out["label"] = item.label
    if item.kind == "timer":
        out["duration_seconds"] = item.seconds
        out["duration"] = duration_words(item.seconds or 0)
    if item.repeating:
        out["repeats"] = [WEEKDAYS[d] for d in item.weekdays]
        out["repeats_words"] = repeat_words(item.weekdays)
    return out


def views(items: Iterable[Item], sched: Scheduler) -> list[View]:
    return [view(i, sched) for i in items]


def _short_left(seconds: int) -> str:
    h, rest = divmod(max(0, seconds), 3600)
    m, s = divmod(rest, 60)
    if h >= 24:
        return f"{h // 24}d {h % 24:02d}h"
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


def format_timers(items: Sequence[Mapping[str, Any]]) -> str:
    """The ``speakerctl timers`` table, from the views the daemon sent."""
    if not items:
        return "no timers, alarms or reminders"
    rows = [("ID", "KIND", "RINGS", "LEFT", "WHAT")]
    for v in items:
        what = str(v.get("text") or v.get("label") or "")
        if v.get("kind") == "timer" and v.get("duration"):
            what = f"{what} ({v['duration']})" if what else str(v["duration"])
        if v.get("repeats_words"):
            what = f"{what} ({v['repeats_words']})" if what else str(v["repeats_words"])
        rows.append((str(v.get("id", "?")), str(v.get("kind", "?")),
                     f"{v.get('day', '')} {v.get('time', '')}".strip(),
                     _short_left(int(v.get("left_seconds", 0))), what))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    return "\n".join("  ".join([*(r[c].ljust(widths[c]) for c in range(4)), r[4]]).rstrip()
                     for r in rows)


def format_cancelled(result: Mapping[str, Any]) -> str:
    """What ``speakerctl cancel ID`` prints for the daemon's answer (the cancel tool's result)."""
    if "error" in result:
        return f"error: {result['error']}"
    gone = result.get("cancelled", [])
    if not gone:
        return "nothing cancelled"
    return "\n".join(f"cancelled {v.get('kind', '?')} {v.get('id', '?')}"
                     + (f" ({v.get('text') or v.get('label')})" if v.get("text") or v.get("label") else "")
                     for v in gone)
