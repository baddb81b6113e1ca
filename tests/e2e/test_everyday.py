"""Everyday use through the real daemon and the rig: a timer set by voice rings, a press stops it,
its label is said; an announcement is said word for word; a scripted question gets its answer."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import RigFactory

pytestmark = pytest.mark.slow

FAST = "[conversation]\nfollow_up_seconds = 1.0\n"


def test_a_timer_rings_with_no_session_open_a_press_stops_it_and_its_label_is_said(rig_factory: RigFactory) -> None:
    with rig_factory(scenario=None, config=FAST) as rig:
        assert rig.emulator is not None
        reply = rig.ctl("say", {"text": "set a timer for 3 seconds called tea", "wait": True, "timeout": 30})
        assert reply["ok"] and reply["answer"] == "Your tea timer is set.", reply
        timers = rig.ctl("timers")["timers"]
        assert [(t["kind"], t["label"]) for t in timers] == [("timer", "tea")]
        idle = rig.wait_state("idle", timeout=30)  # the conversation is over before it rings
        ringing = rig.wait_state("alarm", timeout=30, start=idle)
        assert rig.ctl("status")["leds"] == "alarm"
        assert rig.ctl("press", 0.1)["ok"]
        rig.wait_log(r"^timers: dismissed", timeout=10, start=ringing)
        said = rig.wait_log(r"^speaker: Timer: tea\.$", timeout=30, start=ringing)
        assert "announcement not said verbatim" not in rig.log_text()
        rig.wait_state("idle", timeout=30, start=said)
        assert rig.ctl("timers")["timers"] == []
        assert len(rig.emulator.connections) == 2  # the question, then the label's own short session


def test_an_announcement_is_said_word_for_word_without_the_microphone(rig_factory: RigFactory) -> None:
    with rig_factory(scenario=None, config=FAST) as rig:
        assert rig.emulator is not None and rig.mic is not None
        reply = rig.ctl("announce", {"text": "Dinner is ready, come downstairs.", "force": False})
        assert reply["ok"], reply
        said = rig.wait_log(r"^speaker: ", timeout=30)
        assert rig.lines[said].message == "speaker: Dinner is ready, come downstairs."
        rig.wait_state("idle", timeout=30, start=said)
        assert rig.emulator.received_audio() == b""  # nothing from the room left the device
        assert "announcement not said verbatim" not in rig.log_text()


def test_a_timer_survives_a_restart_and_rings_after_it(rig_factory: RigFactory) -> None:
    with rig_factory(scenario=None, config=FAST) as rig:
        reply = rig.ctl("say", {"text": "set a timer for 12 seconds called eggs", "wait": True, "timeout": 30})
        assert reply["ok"], reply
        before = rig.ctl("timers")["timers"]
        assert rig.stop() == 0
        rig.start()
        after = rig.ctl("timers")["timers"]
        assert [(t["id"], t["label"]) for t in after] == [(t["id"], t["label"]) for t in before]
        ringing = rig.wait_state("alarm", timeout=40)
        assert rig.ctl("stop")["message"] == "alarm stopped"
        rig.wait_log(r"^speaker: Timer: eggs\.$", timeout=30, start=ringing)


def test_a_grounded_answer_logs_its_sources_and_status_shows_them(rig_factory: RigFactory) -> None:
    with rig_factory(scenario=None, config=FAST) as rig:
        reply = rig.ctl("say", {"text": "what's the weather today?", "wait": True, "timeout": 30})
        assert reply["ok"] and "sunny" in reply["answer"], reply
        line = rig.lines[rig.wait_log(r"^sources: https://", timeout=10)]
        sources = rig.ctl("status")["last_sources"]
        assert sources and all(s["uri"].startswith("https://") for s in sources)
        assert [s["uri"] for s in sources] == line.message.removeprefix("sources: ").split(" ; ")


def test_an_alarm_across_the_spring_daylight_saving_change(rig_factory: RigFactory) -> None:
    """The real daemon under libfaketime, just before Berlin's clocks jump from 02:00 to 03:00: an
    alarm for 03:00 rings when the clock jumps, half a minute later, and says so in local time."""
    import glob

    libs = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    if not libs:
        pytest.skip("libfaketime is not installed (scripts/test.sh installs faketime)")
    env = {"LD_PRELOAD": libs[0], "FAKETIME": "@2027-03-28 01:59:30", "TZ": "Europe/Berlin",
           "FAKETIME_DONT_RESET": "1"}
    config = FAST + '[clock]\ntimezone = "Europe/Berlin"\n'
    with rig_factory(scenario=None, config=config, env=env) as rig:
        reply = rig.ctl("say", {"text": "wake me at 03:00", "wait": True, "timeout": 30})
        assert reply["ok"] and reply["answer"] == "Your alarm is set for 03:00.", reply
        (alarm,) = rig.ctl("timers")["timers"]
        assert alarm["kind"] == "alarm" and alarm["rings_at"].startswith("2027-03-28T03:00:00+02:00"), alarm
        ringing = rig.wait_state("alarm", timeout=90)
        assert rig.ctl("stop")["message"] == "alarm stopped"
        assert rig.ctl("timers")["timers"] == []  # a one-off alarm: gone once it rang
        due = rig.lines[rig.wait_log(r"^timers: alarm 1 .*is due", timeout=5)]
        assert due.at <= rig.lines[ringing].at
