"""The ringer with recorders for the speaker, LEDs and speech, and a clock moved by each play."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from speakerd.timers import Item, TimersSettings
from speakerd.timers.ringer import Ringer, spoken_text

CLIP = 1.3  # seconds one play of the alarm sound takes


@dataclass
class Speaker:
    """Plays take CLIP seconds of fake time; a hook may act during a play (a button press)."""

    t: float = 0.0
    plays: int = 0
    stopped: int = 0
    leds: list[bool] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    during_play: dict[int, object] = field(default_factory=dict)

    async def play(self) -> None:
        self.plays += 1
        hook = self.during_play.get(self.plays)
        if callable(hook):
            hook()
        await asyncio.sleep(0)
        self.t += CLIP

    async def speak(self, text: str) -> None:
        self.said.append(text)


def make(sp: Speaker, **settings: object) -> Ringer:
    return Ringer(TimersSettings(**settings), play=sp.play,
                  stop_sound=lambda: setattr(sp, "stopped", sp.stopped + 1),
                  show=sp.leds.append, speak=sp.speak, now=lambda: sp.t)


def timer(ident: str, label: str = "") -> Item:
    return Item(ident, "timer", 0.0, 0.0, label, seconds=60)


async def settle(r: Ringer) -> None:
    task = r._task
    assert task is not None
    await asyncio.wait_for(task, timeout=10)


async def test_rings_for_at_most_ring_max_then_says_the_label() -> None:
    sp = Speaker()
    r = make(sp, ring_max_seconds=5)
    r.on_due(timer("1", "pasta"), False)
    assert r.ringing
    await settle(r)
    assert sp.plays == 4  # 0, 1.3, 2.6, 3.9 s: starts before 5 s
    assert sp.leds == [True, False] and sp.stopped == 0
    assert sp.said == ["Timer: pasta."]
    assert not r.ringing


async def test_dismiss_stops_the_sound_at_once_and_the_words_follow() -> None:
    sp = Speaker()
    r = make(sp)
    sp.during_play[2] = lambda: r.dismiss()
    reminder = Item("2", "reminder", 0.0, 0.0, "take the cake out")
    r.on_due(reminder, True)
    await settle(r)
    assert sp.plays == 2 and sp.stopped == 1 and sp.leds == [True, False]
    assert sp.said == ["Missed while I was off. Reminder: take the cake out."]
    assert r.dismiss() == []  # nothing ringing now: a button press does its usual thing


async def test_items_due_together_ring_once_and_each_is_said() -> None:
    sp = Speaker()
    r = make(sp, ring_max_seconds=2)
    r.on_due(timer("1", "eggs"), False)
    r.on_due(timer("2"), False)
    r.on_due(timer("3", "toast"), False)
    await settle(r)
    assert sp.leds == [True, False] and sp.plays == 2
    assert sp.said == ["Timer: eggs.", "Timer: toast."]


async def test_due_while_the_last_words_are_said_rings_again() -> None:
    sp = Speaker()
    r = make(sp, ring_max_seconds=1)

    async def speak(text: str) -> None:
        sp.said.append(text)
        if len(sp.said) == 1:
            r.on_due(timer("2", "second"), False)

    r._speak = speak
    r.on_due(timer("1", "first"), False)
    await settle(r)
    assert sp.said == ["Timer: first.", "Timer: second."]
    assert sp.leds == [True, False, True, False]


@pytest.mark.parametrize("speak", [False, True])
async def test_speak_false_and_offline(speak: bool, caplog: pytest.LogCaptureFixture) -> None:
    sp = Speaker()
    r = make(sp, ring_max_seconds=1, speak=speak)

    async def offline(text: str) -> None:
        raise ConnectionError("no network")

    r._speak = offline
    r.on_due(timer("1", "tea"), False)
    await settle(r)
    assert ("could not say what timer 1 was" in caplog.text) is speak


def test_spoken_text() -> None:
    assert spoken_text(timer("1"), False) is None
    assert spoken_text(Item("1", "alarm", 0, 0, "Wake up!", hour=7, minute=0, after=0), False) == "Alarm: Wake up."


async def test_scheduler_and_ringer_on_the_real_loop(tmp_path: object) -> None:
    """Wired as the daemon wires them: real clocks, the real loop timer, recorders for devices."""
    from pathlib import Path

    from speakerd.timers import Scheduler, SystemClock, TimerStore
    from tests.timers.conftest import BERLIN

    said = asyncio.Event()
    sp = Speaker()

    async def speak(text: str) -> None:
        sp.said.append(text)
        said.set()

    ringer = Ringer(TimersSettings(ring_max_seconds=2), play=sp.play, stop_sound=lambda: None,
                    show=sp.leds.append, speak=speak, now=lambda: sp.t)
    sched = Scheduler(TimerStore(Path(str(tmp_path))), TimersSettings(), BERLIN, ringer.on_due,
                      clock=SystemClock())
    sched.start()
    sched.add_timer(1, "quick")
    await asyncio.wait_for(said.wait(), timeout=30)
    assert sp.said == ["Timer: quick."] and sp.leds == [True, False] and sp.plays == 2
    sched.close()
    await ringer.close()
