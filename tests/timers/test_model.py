"""When alarms and reminders ring: zone rules, daylight-saving gaps and folds, weekdays."""

from __future__ import annotations

import datetime as dt

import pytest

from speakerd.timers.model import (
    Item,
    ItemError,
    duration_words,
    local_instant,
    next_alarm,
    parse_hhmm,
    parse_weekdays,
    parse_when,
)
from tests.timers.conftest import BERLIN, LONDON, at


def show(t: float) -> str:
    return dt.datetime.fromtimestamp(t, BERLIN).isoformat()


def test_gap_time_rings_as_long_after_the_change_as_it_was_meant_after_its_start() -> None:
    # 2026-03-29 02:00 CET becomes 03:00 CEST in Berlin: 02:30 does not exist.
    assert show(local_instant(dt.datetime(2026, 3, 29, 2, 30), BERLIN)) == "2026-03-29T03:30:00+02:00"
    assert show(next_alarm(2, 30, (), at(BERLIN, 2026, 3, 29, 0, 0), BERLIN)) == "2026-03-29T03:30:00+02:00"


def test_fold_time_rings_once_at_the_first_occurrence() -> None:
    # 2026-10-25 03:00 CEST becomes 02:00 CET: 02:30 happens twice.
    first = next_alarm(2, 30, (), at(BERLIN, 2026, 10, 25, 0, 0), BERLIN)
    assert show(first) == "2026-10-25T02:30:00+02:00"
    second_0230 = at(BERLIN, 2026, 10, 25, 2, 30, fold=1)
    assert second_0230 - first == 3600
    assert show(next_alarm(2, 30, (), first, BERLIN)) == "2026-10-26T02:30:00+01:00"


def test_daily_alarm_keeps_local_time_across_both_changes() -> None:
    after = at(BERLIN, 2026, 3, 27, 12, 0)
    seen = []
    for _ in range(4):
        after = next_alarm(7, 0, (), after, BERLIN)
        seen.append(show(after))
    assert seen == ["2026-03-28T07:00:00+01:00", "2026-03-29T07:00:00+02:00",
                    "2026-03-30T07:00:00+02:00", "2026-03-31T07:00:00+02:00"]
    autumn = next_alarm(7, 0, (), at(BERLIN, 2026, 10, 24, 0, 0), BERLIN)
    after_change = next_alarm(7, 0, (), autumn, BERLIN)
    assert show(autumn) == "2026-10-24T07:00:00+02:00"
    assert show(after_change) == "2026-10-25T07:00:00+01:00"
    assert after_change - autumn == 25 * 3600  # the day with the extra hour


def test_weekdays_pick_the_next_listed_day() -> None:
    wed = at(BERLIN, 2026, 12, 2, 8, 0)  # a Wednesday
    assert show(next_alarm(7, 0, (0, 4), wed, BERLIN)) == "2026-12-04T07:00:00+01:00"  # Friday
    assert show(next_alarm(9, 0, (2,), wed, BERLIN)) == "2026-12-02T09:00:00+01:00"  # still today
    assert show(next_alarm(7, 0, (2,), wed, BERLIN)) == "2026-12-09T07:00:00+01:00"  # a week on


def test_the_zone_decides_the_instant() -> None:
    after = at(BERLIN, 2026, 12, 2, 0, 0)
    assert next_alarm(7, 0, (), after, LONDON) - next_alarm(7, 0, (), after, BERLIN) == 3600


@pytest.mark.parametrize("text", ["7", "25:00", "07:60", "7:5", "seven", "07:30:00", ""])
def test_bad_times_of_day(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(text)


def test_times_and_weekdays_parse() -> None:
    assert parse_hhmm("7:05") == (7, 5)
    assert parse_weekdays(["fri", "Monday", "mon"]) == (0, 4)
    with pytest.raises(ValueError, match="not a weekday"):
        parse_weekdays(["funday"])


def test_reminder_times() -> None:
    now = at(BERLIN, 2026, 12, 2, 20, 0)
    assert parse_when("18:30", now, BERLIN) == dt.datetime(2026, 12, 3, 18, 30)
    assert parse_when("21:00", now, BERLIN) == dt.datetime(2026, 12, 2, 21, 0)
    assert parse_when("2026-12-24T18:30", now, BERLIN) == dt.datetime(2026, 12, 24, 18, 30)
    assert parse_when("2026-12-24 18:30:45+00:00", now, BERLIN) == dt.datetime(2026, 12, 24, 19, 30)
    assert parse_when("18:30:00", now, BERLIN) == dt.datetime(2026, 12, 3, 18, 30)
    with pytest.raises(ValueError, match="not a time"):
        parse_when("christmas", now, BERLIN)
    with pytest.raises(ValueError, match="no time of day"):
        parse_when("2026-12-24", now, BERLIN)
    with pytest.raises(ValueError, match="not a time like 07:30"):
        parse_when("18:30:15", now, BERLIN)


def test_duration_words() -> None:
    assert duration_words(0) == "0 seconds"
    assert duration_words(1) == "1 second"
    assert duration_words(250) == "4 minutes 10 seconds"
    assert duration_words(3 * 3600 + 61) == "3 hours 1 minute"


def test_items_round_trip_and_reject_junk() -> None:
    alarm = Item("3", "alarm", 0.0, 100.0, "work", hour=7, minute=0, weekdays=(0, 4),
                 after=at(BERLIN, 2026, 12, 2, 8, 0))
    back = Item.from_json(alarm.to_json(), BERLIN)
    assert back.weekdays == (0, 4) and back.label == "work"
    assert show(back.due) == "2026-12-04T07:00:00+01:00"  # recomputed, not trusted
    for junk in [[], {"id": "1"}, {"id": "1", "kind": "cron", "created": 1},
                 {"id": "1", "kind": "timer", "created": 1, "seconds": 5, "end": "soon"},
                 {"id": "1", "kind": "alarm", "created": 1, "time": "31:00", "after": 1},
                 {"id": "1", "kind": "reminder", "created": 1, "at": "2026-12-24T18:30+01:00"},
                 {"id": "1", "kind": "timer", "created": float("nan"), "seconds": 5, "end": 1}]:
        with pytest.raises(ItemError):
            Item.from_json(junk, BERLIN)
