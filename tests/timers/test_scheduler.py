"""The scheduler on a fake clock: restarts, late rings, clock jumps, zones, daylight saving.

Firings are driven by calling ``check()`` after moving the clock (what the loop timer does);
``armed_delay`` is what the loop timer was set to, so idle wake-ups are visible without timing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from speakerd.timers import Scheduler, SystemClock, TimersSettings, TimerStore
from tests.timers.conftest import BERLIN, LONDON, Rig, Rings, at, local


async def test_nothing_active_means_no_loop_timer(rig: Rig) -> None:
    s = rig.make()
    delays = [s.armed_delay]
    t = s.add_timer(3600)
    delays.append(s.armed_delay)  # a timer alone: one wake-up, when it ends
    s.cancel([t.id])
    delays.append(s.armed_delay)
    assert s._handle is None
    s.add_alarm(7, 0)
    delays.append(s.armed_delay)  # a wall-clock item: wakes at most every wall_check_seconds
    assert delays == [None, 3600, None, 60]
    s.close()


async def test_timer_rings_once_after_its_duration(rig: Rig) -> None:
    s = rig.make()
    t = s.add_timer(300, "pasta")
    rig.clock.advance(299)
    s.check()
    assert rig.rings.calls == [] and s.armed_delay == pytest.approx(1)
    rig.clock.advance(1)
    s.check()
    assert rig.rings.calls == [(t, False)]
    assert s.items() == [] and s.armed_delay is None
    s.check()
    assert len(rig.rings.calls) == 1
    s.close()


async def test_restart_keeps_everything(rig: Rig) -> None:
    s = rig.make()
    t = s.add_timer(600, "tea")
    a = s.add_alarm(7, 30, "work", (0, 1, 2, 3, 4))
    r = s.add_reminder(dt.datetime(2026, 12, 24, 18, 0), "call grandma")
    rig.clock.advance(100)
    s.close()
    s2 = rig.make()  # same boot: the monotonic end holds
    assert [i.id for i in s2.items()] == [t.id, a.id, r.id]
    assert s2.left(s2.items()[0]) == pytest.approx(500)
    assert local(s2, s2.items()[1]).isoformat() == "2026-12-03T07:30:00+01:00"
    assert s2.items()[2].label == "call grandma"
    s2.close()
    rig.clock.reboot(down_seconds=50)  # a power cut: the wall-clock end holds
    s3 = rig.make()
    assert s3.left(s3.items()[0]) == pytest.approx(450)
    new = s3.add_timer(10)
    assert int(new.id) > int(r.id)  # ids are never reused across restarts
    s3.close()


async def test_timer_due_while_down_rings_late_at_start(rig: Rig) -> None:
    s = rig.make()
    t = s.add_timer(60, "eggs")
    s.close()
    rig.clock.reboot(down_seconds=600)
    s2 = rig.make()
    assert [(i.id, i.label, late) for i, late in rig.rings.calls] == [(t.id, "eggs", True)]
    assert s2.items() == []
    s2.close()
    assert json.loads((rig.state / "timers.json").read_text())["items"] == []  # not again next start


async def test_too_late_is_not_rung_but_said(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    s = rig.make(late_max_minutes=60)
    s.add_timer(60)
    s.add_alarm(9, 0, weekdays=(0, 1, 2, 3, 4, 5, 6))
    s.close()
    rig.clock.reboot(down_seconds=3 * 3600)  # 08:00 -> 11:00: both missed by 2 h or more
    s2 = rig.make(late_max_minutes=60)
    assert rig.rings.calls == []
    assert "too long to ring it now" in caplog.text
    [alarm] = s2.items()  # the repeating alarm moved on to tomorrow
    assert local(s2, alarm).isoformat() == "2026-12-03T09:00:00+01:00"
    s2.close()


async def test_repeating_alarm_missed_while_down_rings_once_late(rig: Rig) -> None:
    s = rig.make()
    a = s.add_alarm(8, 30, "daily", tuple(range(7)))
    s.close()
    rig.clock.reboot(down_seconds=45 * 60)
    s2 = rig.make()
    assert [(i.id, late) for i, late in rig.rings.calls] == [(a.id, True)]
    assert local(s2, s2.items()[0]).isoformat() == "2026-12-03T08:30:00+01:00"
    s2.close()


async def test_wall_clock_set_forwards(rig: Rig) -> None:
    s = rig.make()
    t = s.add_timer(600)
    a = s.add_alarm(9, 0)
    rig.clock.jump(3600 + 1)  # NTP's first sync: 08:00 becomes 09:00:01
    s.check()
    assert rig.rings.calls == [(a, False)]  # the alarm follows the wall clock
    assert s.left(s.items()[0]) == pytest.approx(600)  # the timer keeps its duration
    stored = json.loads((rig.state / "timers.json").read_text())["items"][0]
    assert stored["id"] == t.id and stored["end"] == pytest.approx(rig.clock.wall() + 600)
    s.close()


async def test_timer_from_before_a_reboot_follows_the_clock_corrected_after_start(rig: Rig) -> None:
    s = rig.make()
    s.add_timer(3600, "bread")
    s.close()
    # Off for 10 minutes, but the Pi starts with its clock 2 hours behind (no RTC, no NTP yet).
    rig.clock.reboot(down_seconds=600 - 7200)
    s2 = rig.make()
    assert rig.rings.calls == []
    rig.clock.jump(7200)  # NTP's first sync
    s2.check()
    assert s2.left(s2.items()[0]) == pytest.approx(3000)  # the hour, less the 10 minutes off
    s2.close()


async def test_wall_clock_set_backwards(rig: Rig) -> None:
    s = rig.make()
    s.add_alarm(8, 1)
    assert s.armed_delay == pytest.approx(60)
    rig.clock.jump(-3600)  # now 07:00: the loop timer fires, nothing is due
    rig.clock.advance(60)
    s.check()
    assert rig.rings.calls == []
    assert s.armed_delay == 60
    rig.clock.advance(3600)  # 08:01 on the wall clock again
    s.check()
    assert len(rig.rings.calls) == 1
    s.close()


async def test_spring_forward_day(rig: Rig) -> None:
    rig.clock.jump(at(BERLIN, 2026, 3, 29, 0, 0) - rig.clock.wall())
    s = rig.make()
    gap = s.add_alarm(2, 30, "gap")
    timer = s.add_timer(2 * 3600, "two hours")
    assert local(s, gap).isoformat() == "2026-03-29T03:30:00+02:00"
    assert local(s, timer).isoformat() == "2026-03-29T03:00:00+02:00"  # two hours of real time
    rig.clock.advance(2 * 3600)
    s.check()
    assert rig.rings.ids == [timer.id]
    rig.clock.advance(1800)
    s.check()
    assert rig.rings.ids == [timer.id, gap.id]
    s.close()


async def test_fall_back_day_repeating_alarm_rings_once(rig: Rig) -> None:
    rig.clock.jump(at(BERLIN, 2026, 10, 25, 0, 0) - rig.clock.wall())
    s = rig.make()
    a = s.add_alarm(2, 30, "fold", tuple(range(7)))
    rig.clock.advance(2.5 * 3600)  # 02:30 summer time
    s.check()
    assert rig.rings.ids == [a.id]
    rig.clock.advance(3600)  # 02:30 winter time: the same clock reading again
    s.check()
    assert rig.rings.ids == [a.id]
    assert local(s, s.items()[0]).isoformat() == "2026-10-26T02:30:00+01:00"
    s.close()


async def test_reminder_across_a_restart_over_the_change(rig: Rig) -> None:
    rig.clock.jump(at(BERLIN, 2026, 3, 28, 20, 0) - rig.clock.wall())
    s = rig.make()
    r = s.add_reminder(dt.datetime(2026, 3, 29, 9, 0), "bins")
    s.close()
    rig.clock.reboot(down_seconds=12 * 3600)  # 20:00 CET + 12 h = 09:00 CEST: due right now
    s2 = rig.make()
    assert [(i.label, late) for i, late in rig.rings.calls] == [("bins", True)]
    assert r.local == "2026-03-29T09:00"
    s2.close()


async def test_time_zone_configuration(rig: Rig) -> None:
    s = rig.make(tz=BERLIN)
    a = s.add_alarm(7, 0)
    r = s.add_reminder(dt.datetime(2026, 12, 24, 18, 0), "presents")
    s.close()
    s2 = rig.make(tz=LONDON)  # a new [clock] timezone: local times stay, instants move
    by_id = {i.id: i for i in s2.items()}
    assert local(s2, by_id[a.id]).isoformat() == "2026-12-03T07:00:00+00:00"
    assert local(s2, by_id[r.id]).isoformat() == "2026-12-24T18:00:00+00:00"
    s2.set_timezone(BERLIN)
    assert local(s2, s2.match(id=a.id)[0]).isoformat() == "2026-12-03T07:00:00+01:00"
    s2.close()


async def test_cap_and_refusals(rig: Rig) -> None:
    s = rig.make(max_active=2)
    s.add_timer(10)
    s.add_alarm(7, 0)
    with pytest.raises(ValueError, match="already 2 timers"):
        s.add_timer(10)
    with pytest.raises(ValueError, match="at least one second"):
        s.add_timer(0)
    with pytest.raises(ValueError, match="at most 24 hours"):
        s.add_timer(86401)
    with pytest.raises(ValueError, match="already passed"):
        s.add_reminder(dt.datetime(2026, 12, 2, 7, 59), "breakfast")
    with pytest.raises(ValueError, match="366 days"):
        s.add_reminder(dt.datetime(2028, 1, 1, 9, 0), "far")
    s.close()


async def test_match_by_label_time_and_kind(rig: Rig) -> None:
    s = rig.make()
    t = s.add_timer(300, "Pasta")
    a = s.add_alarm(7, 0)
    assert s.match(label="pasta ") == [t]
    assert s.match(time="7:00") == [a]
    assert s.match(time="08:05") == [t]
    assert s.match(kind="alarm") == [a]
    assert s.match(id=t.id, kind="alarm") == []
    s.close()


async def test_a_failing_ringer_does_not_stop_the_others(rig: Rig) -> None:
    seen: list[str] = []

    def ring(item: object, late: bool) -> None:
        seen.append(getattr(item, "id", "?"))
        raise RuntimeError("speaker gone")

    s = Scheduler(TimerStore(rig.state), TimersSettings(), BERLIN, ring, clock=rig.clock)
    s.start()
    s.add_timer(5)
    s.add_timer(5)
    rig.clock.advance(5)
    s.check()
    assert len(seen) == 2 and s.items() == []
    s.close()


async def test_real_loop_rings_a_timer(tmp_path: object) -> None:
    """The real clocks and the real loop timer (a bound, not a measurement)."""
    from pathlib import Path

    rang = asyncio.Event()
    rings = Rings()

    def on_due(item: object, late: bool) -> None:
        rings(item, late)  # type: ignore[arg-type]
        rang.set()

    s = Scheduler(TimerStore(Path(str(tmp_path))), TimersSettings(), BERLIN, on_due, clock=SystemClock())
    s.start()
    t = s.add_timer(1, "quick")
    await asyncio.wait_for(rang.wait(), timeout=30)
    assert rings.calls == [(t, False)]
    assert s.armed_delay is None
    s.close()
