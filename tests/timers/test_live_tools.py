"""The timer tools over the real google-genai SDK and TLS, against the emulator: declared in the
setup message, called by the "model", answered with the scheduler's result or refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from speakerd_workshop.emulator import EmulatorThread, Scenario, ToolCallSpec, Turn

from speakerd.events import TurnComplete
from speakerd.live import LiveSession, ResumptionStore, ToolRegistry
from speakerd.timers import Scheduler, SystemClock, TimersSettings, TimerStore
from speakerd.timers.tools import timer_tools
from tests.live.test_session import KEY, Recorder, loud, make_cfg, quiet, say
from tests.timers.conftest import BERLIN, Rings


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("certs")


async def test_model_sets_a_timer_and_hears_a_refusal(tmp_path: Path, cert_dir: Path) -> None:
    scenario = Scenario(turns=(
        Turn(user_transcript="pasta", tool_calls=(
            ToolCallSpec("set_timer", {"seconds": 480, "label": "pasta"}, non_blocking=False),),
            after_tool_text="Done."),
        Turn(user_transcript="zero", tool_calls=(
            ToolCallSpec("set_timer", {"seconds": 0}, non_blocking=False),), after_tool_text="{result}"),
    ))
    sched = Scheduler(TimerStore(tmp_path / "state"), TimersSettings(), BERLIN, Rings(), clock=SystemClock())
    sched.start()
    with EmulatorThread(scenario, api_key=KEY, cert_dir=cert_dir, pace=8.0) as emu:
        rec = Recorder()
        cfg = make_cfg(tmp_path, emu)
        s = cfg.settings
        tools = ToolRegistry(s.tools, {}, extra=timer_tools(sched))
        session = LiveSession(cfg, rec, store=ResumptionStore(s.state.directory, s.live.model), tools=tools)
        await session.open()
        await say(session, loud(0.5) + quiet(0.6))
        await rec.wait(lambda: len(emu.messages("toolResponse")) == 1 and rec.of(TurnComplete))
        declared = {d["name"] for t in (emu.connections[0].setup or {}).get("tools", [])
                    for d in t.get("functionDeclarations", [])}
        assert {"set_timer", "set_alarm", "set_reminder", "list_timers", "cancel_timer",
                "time_left"} <= declared
        first = emu.messages("toolResponse")[0]["functionResponses"][0]
        assert first["name"] == "set_timer" and first["response"]["set"]["label"] == "pasta"
        assert [(i.kind, i.label, i.seconds) for i in sched.items()] == [("timer", "pasta", 480)]
        await say(session, loud(0.5) + quiet(0.6))
        await rec.wait(lambda: len(emu.messages("toolResponse")) == 2, timeout=20)
        second = emu.messages("toolResponse")[1]["functionResponses"][0]
        assert second["response"] == {"error": "a timer needs a duration of at least one second"}
        await session.close()
    assert len(sched.items()) == 1
    sched.close()
