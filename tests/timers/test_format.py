"""What speakerctl prints for the daemon's views."""

from __future__ import annotations

import json

from speakerd.timers import format_cancelled, format_timers, views
from tests.timers.conftest import Rig


async def test_table(rig: Rig) -> None:
    s = rig.make()
    s.add_timer(250, "pasta")
    s.add_alarm(7, 0, "work", (0, 1, 2, 3, 4))
    s.add_alarm(9, 15)
    s.add_timer(3 * 3600 + 60)
    # The client formats what came over the socket: JSON in, text out.
    sent = json.loads(json.dumps(views(s.items(), s)))
    assert format_timers(sent).splitlines() == [
        "ID  KIND   RINGS           LEFT     WHAT",
        "1   timer  today 08:04     4m 10s   pasta (4 minutes 10 seconds)",
        "3   alarm  today 09:15     1h 15m",
        "4   timer  today 11:01     3h 01m   3 hours 1 minute",
        "2   alarm  tomorrow 07:00  23h 00m  work (weekdays)",
    ]
    assert format_timers([]) == "no timers, alarms or reminders"
    s.close()


async def test_cancelled(rig: Rig) -> None:
    s = rig.make()
    t = s.add_timer(60, "tea")
    assert format_cancelled({"cancelled": views(s.cancel([t.id]), s)}) == "cancelled timer 1 (tea)"
    assert format_cancelled({"error": "there is no timer 9"}) == "error: there is no timer 9"
    assert format_cancelled({"cancelled": []}) == "nothing cancelled"
