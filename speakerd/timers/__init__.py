"""Timers, alarms and reminders that the speaker rings, with or without a conversation open.

The daemon builds a ``Scheduler`` on its loop, passes ``speakerd.timers.tools.timer_tools`` to the
tool registry, and rings (LEDs ``alarm``, the ``alarm`` sound) when ``on_due`` is called. The tools
are not imported here: ``speakerctl`` needs only ``format`` and should not load the Live SDK.
"""

from speakerd.timers.clock import Clock, FakeClock, SystemClock, TimezoneError, resolve_timezone
from speakerd.timers.format import format_cancelled, format_timers, view, views
from speakerd.timers.model import Item, Kind
from speakerd.timers.ringer import Ringer
from speakerd.timers.scheduler import OnDue, Scheduler, TimerError
from speakerd.timers.settings import ClockSettings, TimersSettings
from speakerd.timers.store import TimerStore

__all__ = [
    "Clock",
    "ClockSettings",
    "FakeClock",
    "Item",
    "Kind",
    "OnDue",
    "Ringer",
    "Scheduler",
    "SystemClock",
    "TimerError",
    "TimerStore",
    "TimersSettings",
    "TimezoneError",
    "format_cancelled",
    "format_timers",
    "resolve_timezone",
    "view",
    "views",
]
