"""The timer tools through the real ToolRegistry: schema checks first, then our own, in words."""

from __future__ import annotations

from typing import Any

import pytest

from speakerd.config import ToolsSettings
from speakerd.live.tools import ToolRegistry
from speakerd.timers import Scheduler
from speakerd.timers.tools import timer_tools
from tests.timers.conftest import Rig


def registry(s: Scheduler) -> ToolRegistry:
    return ToolRegistry(ToolsSettings(builtin=[]), {}, extra=timer_tools(s))


async def call(reg: ToolRegistry, name: str, **args: Any) -> dict[str, Any]:
    return await reg.call(name, args)


async def test_declarations_are_valid_for_the_sdk(rig: Rig) -> None:
    reg = registry(rig.make())
    names = [d.name for d in reg.declarations()]
    assert names == ["set_timer", "set_alarm", "set_reminder", "list_timers", "cancel_timer", "time_left"]


async def test_set_list_time_left_cancel(rig: Rig) -> None:
    s = rig.make()
    reg = registry(s)
    out = await call(reg, "set_timer", seconds=300, label="pasta")
    assert out["set"]["left"] == "5 minutes" and out["set"]["time"] == "08:05"
    out = await call(reg, "set_alarm", time="7:30", weekdays=["mon", "fri"], label="work")
    assert out["set"]["day"] == "Friday" and out["set"]["repeats_words"] == "mon, fri"
    out = await call(reg, "set_reminder", at="2026-12-24T18:00", text="call grandma")
    assert out["set"]["text"] == "call grandma" and out["set"]["day"] == "Thursday 24 December 2026"
    listed = await call(reg, "list_timers")
    assert listed["count"] == 3 and [v["kind"] for v in listed["items"]] == ["timer", "alarm", "reminder"]
    rig.clock.advance(50)
    left = await call(reg, "time_left", label="Pasta")
    assert left["items"][0]["left"] == "4 minutes 10 seconds"
    assert "no timer called soup" in (await call(reg, "time_left", label="soup", kind="timer"))["error"]
    gone = await call(reg, "cancel_timer", time="07:30")
    assert [v["label"] for v in gone["cancelled"]] == ["work"]
    assert len(s.items()) == 2


async def test_cancel_needs_a_choice_when_several_match(rig: Rig) -> None:
    s = rig.make()
    reg = registry(s)
    await call(reg, "set_timer", seconds=60)
    await call(reg, "set_timer", seconds=120)
    await call(reg, "set_alarm", time="06:00")
    out = await call(reg, "cancel_timer", kind="timer")
    assert out["error"] == "2 match; say which one, or cancel all of them" and len(out["matches"]) == 2
    assert len((await call(reg, "cancel_timer", kind="timer", all=True))["cancelled"]) == 2
    assert "say which to cancel" in (await call(reg, "cancel_timer"))["error"]
    assert (await call(reg, "cancel_timer", id="42"))["error"] == "there is no timer, alarm or reminder 42"
    assert len((await call(reg, "cancel_timer", all=True))["cancelled"]) == 1
    assert s.items() == []


@pytest.mark.parametrize(("name", "args", "words"), [
    ("set_timer", {"seconds": 0}, "at least one second"),
    ("set_timer", {"seconds": -30}, "at least one second"),
    ("set_timer", {"seconds": 200000}, "at most 24 hours"),
    ("set_timer", {"seconds": "five"}, "expected integer"),  # the registry's schema check
    ("set_timer", {"seconds": 60, "label": "x" * 61}, "longer than 60"),
    ("set_alarm", {"time": "25:00"}, "not a time of day"),
    ("set_alarm", {"time": "noon"}, "not a time like 07:30"),
    ("set_alarm", {"time": "07:00", "weekdays": ["funday"]}, "must be one of"),
    ("set_reminder", {"at": "2026-12-01T09:00", "text": "late"}, "has already passed"),
    ("set_reminder", {"at": "tomorrow", "text": "x"}, "not a time like 18:30"),
    ("set_reminder", {"at": "18:00", "text": "  "}, "needs something to remind of"),
    ("cancel_timer", {"time": "9"}, "not a time like 07:30"),
])
async def test_refusals_are_sentences(rig: Rig, name: str, args: dict[str, Any], words: str) -> None:
    s = rig.make()
    out = await registry(s).call(name, args)
    assert set(out) == {"error"} and words in out["error"], out
    assert s.items() == []


async def test_cap_is_said(rig: Rig) -> None:
    reg = registry(rig.make(max_active=1))
    await call(reg, "set_timer", seconds=60)
    out = await call(reg, "set_alarm", time="07:00")
    assert out == {"error": "there are already 1 timers, alarms and reminders, the most I can keep; "
                            "cancel one first"}
