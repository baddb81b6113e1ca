"""The timer tools the model calls: set, list, cancel and ask how long is left.

Why the handlers check again what the schema allows: the registry refuses malformed arguments
with a terse message, but a zero-second timer, an alarm time like 25:00 or a reminder in the past
are well-formed JSON that only we can judge, and the model should get a sentence it can say back.
"""

from __future__ import annotations

import logging
from typing import Any

from speakerd.live.tools import Handler, ToolSpec
from speakerd.timers.format import view, views
from speakerd.timers.model import KINDS, WEEKDAYS, Kind, parse_hhmm, parse_weekdays, parse_when
from speakerd.timers.scheduler import Scheduler, TimerError

log = logging.getLogger("speakerd.timers")

LABEL = {"type": "string", "maxLength": 60,
         "description": "A short name the user gave it, e.g. 'pasta'. Leave out if none."}
KIND = {"type": "string", "enum": list(KINDS)}


def _specs(max_timer_seconds: int) -> dict[str, ToolSpec]:
    return {
        "set_timer": ToolSpec("set_timer", (
            "Start a countdown timer. The speaker rings when it ends, also after the conversation. "
            f"Give the duration in whole seconds (5 minutes is 300; at most {max_timer_seconds})."),
            {"type": "object", "properties": {"seconds": {"type": "integer"}, "label": LABEL},
             "required": ["seconds"]}),
        "set_alarm": ToolSpec("set_alarm", (
            "Set an alarm at a local time of day, 24-hour HH:MM. It rings at the next such time; "
            "with weekdays it repeats on those days."),
            {"type": "object", "properties": {
                "time": {"type": "string", "maxLength": 5, "description": "24-hour local time, e.g. 07:30"},
                "label": LABEL,
                "weekdays": {"type": "array", "items": {"type": "string", "enum": list(WEEKDAYS)},
                             "description": "Days it repeats on; leave out for a one-time alarm."}},
             "required": ["time"]}),
        "set_reminder": ToolSpec("set_reminder", (
            "Remind the user of something at a local time: the speaker rings, then says the text."),
            {"type": "object", "properties": {
                "at": {"type": "string", "maxLength": 40, "description": (
                    "Local time: HH:MM for the next such time, or YYYY-MM-DDTHH:MM for a date.")},
                "text": {"type": "string", "maxLength": 200,
                         "description": "What to remind of, as it should be said."}},
             "required": ["at", "text"]}),
        "list_timers": ToolSpec("list_timers", "List the active timers, alarms and reminders.",
                                {"type": "object", "properties": {}}),
        "cancel_timer": ToolSpec("cancel_timer", (
            "Cancel timers, alarms or reminders. Say which by id, label, ring time (HH:MM) or kind; "
            "set all to true to cancel every one that matches (all alone: everything)."),
            {"type": "object", "properties": {
                "id": {"type": "string", "maxLength": 10}, "label": LABEL,
                "time": {"type": "string", "maxLength": 5}, "kind": KIND, "all": {"type": "boolean"}}}),
        "time_left": ToolSpec("time_left", (
            "How long until timers (or alarms, reminders) ring; by label or kind, or all of them."),
            {"type": "object", "properties": {"label": LABEL, "kind": KIND}}),
    }


def _what(kind: Kind | None, label: str | None, time: str | None = None) -> str:
    noun = kind or "timer, alarm or reminder"
    if label:
        return f"{noun} called {label}"
    if time:
        return f"{noun} at {time}"
    return noun


def timer_tools(sched: Scheduler) -> dict[str, tuple[ToolSpec, Handler]]:
    """The tools for ``ToolRegistry(extra=...)``, bound to the daemon's scheduler."""

    async def set_timer(seconds: int, label: str = "") -> dict[str, Any]:
        try:
            item = sched.add_timer(int(seconds), label)
        except TimerError as e:
            return {"error": str(e)}
        return {"set": view(item, sched)}

    async def set_alarm(time: str, label: str = "", weekdays: list[str] | None = None) -> dict[str, Any]:
        try:
            hour, minute = parse_hhmm(time)
            days = parse_weekdays(weekdays or [])
            item = sched.add_alarm(hour, minute, label, days)
        except (TimerError, ValueError) as e:
            return {"error": str(e)}
        return {"set": view(item, sched)}

    async def set_reminder(at: str, text: str) -> dict[str, Any]:
        try:
            item = sched.add_reminder(parse_when(at, sched.clock.wall(), sched.tz), text)
        except (TimerError, ValueError) as e:
            return {"error": str(e)}
        return {"set": view(item, sched)}

    async def list_timers() -> dict[str, Any]:
        return {"count": len(sched.items()), "items": views(sched.items(), sched)}

    async def cancel_timer(id: str | None = None, label: str | None = None, time: str | None = None,
                           kind: Kind | None = None, all: bool = False) -> dict[str, Any]:
        if time is not None:
            try:
                hour, minute = parse_hhmm(time)
            except ValueError as e:
                return {"error": str(e)}
            time = f"{hour:02d}:{minute:02d}"
        if id is None and label is None and time is None and kind is None and not all:
            return {"error": "say which to cancel: an id, a label, a time, a kind, or all"}
        found = sched.match(id=id, label=label, time=time, kind=kind)
        if not found:
            what = f"{kind or 'timer, alarm or reminder'} {id}" if id else _what(kind, label, time)
            return {"error": f"there is no {what}"}
        if len(found) > 1 and not all:
            return {"error": f"{len(found)} match; say which one, or cancel all of them",
                    "matches": views(found, sched)}
        gone = sched.cancel(i.id for i in found)
        return {"cancelled": views(gone, sched)}

    async def time_left(label: str | None = None, kind: Kind | None = None) -> dict[str, Any]:
        found = sched.match(label=label, kind=kind)
        if not found:
            return {"error": f"there is no {_what(kind, label)} running"}
        return {"items": views(found, sched)}

    handlers: dict[str, Handler] = {
        "set_timer": set_timer, "set_alarm": set_alarm, "set_reminder": set_reminder,
        "list_timers": list_timers, "cancel_timer": cancel_timer, "time_left": time_left,
    }
    specs = _specs(sched.settings.max_timer_seconds)
    return {name: (specs[name], handlers[name]) for name in specs}
