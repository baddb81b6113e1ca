"""The daemon in the test process: its own rules in milliseconds, fakes only at speakerd.ports.

The real start-up runs (state directory, gpiozero mock pins, the control socket); audio, the
wake-word engine and the Live session are the fakes of tests/daemon/fakes.py. tests/e2e runs the
same rules with every real part in the real process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from speakerd import config
from speakerd.control import ControlError
from speakerd.daemon import Daemon
from speakerd.effects import State
from speakerd.events import (
    DeviceFault,
    Interrupted,
    ReplyAudio,
    SessionState,
    ToolCall,
    ToolResult,
    TurnComplete,
    WakeDetected,
)
from speakerd.live.store import ResumptionStore
from speakerd.wakeword import WakeWordError
from tests.daemon.fakes import Fakes

REPLY = b"\x01\x02" * 2400  # 100 ms at 24 kHz


def make_config(tmp_path: Path, **sections: Any) -> config.Config:
    base: dict[str, Any] = {
        "state": {"directory": tmp_path / "state"},
        "control": {"socket": tmp_path / "control.sock", "group": None},
        "gpio": {"enabled": "on", "pin_factory": "mock", "led_profile": "rgb", "rgb_pins": [5, 6, 13],
                 "button_pin": 17, "button_hold_seconds": 5.0},
        "conversation": {"follow_up_seconds": 0.2, "idle_timeout_seconds": 5.0},
        "wakeword": {"stop_model": "alexa"},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    settings = config.Settings(**base)
    return config.Config(settings=settings, path=tmp_path / "speakerd.toml", api_key=SecretStr("k"),
                         api_key_source="test")


@asynccontextmanager
async def running(tmp_path: Path, fakes: Fakes, **sections: Any) -> AsyncIterator[Daemon]:
    daemon = Daemon(make_config(tmp_path, **sections), backends=fakes.backends())
    assert await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.shutdown()


def state(daemon: Daemon) -> State:
    """Read afresh: mypy would keep an earlier ``== "..."`` narrowing across the daemon's calls."""
    return daemon.machine.state


async def until(pred: Callable[[], bool], what: str, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def wake(daemon: Daemon, fakes: Fakes) -> None:
    """A wake word in the newest frame, then the session is ready."""
    frame = fakes.mic.frame()
    fakes.engines[0].on_wake(WakeDetected("hey_jarvis", 0.9, frame.index))
    await until(lambda: fakes.live.sessions != [] and fakes.session.opened, "the session to open")
    fakes.session.emit(SessionState("ready"))
    assert state(daemon) == "listening"


async def test_wake_streams_from_the_wake_frame_and_nothing_before(tmp_path: Path) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        for _ in range(5):
            fakes.mic.frame()
        assert fakes.live.sessions == []  # nothing leaves the device while idle
        assert fakes.engines[0].fed == [0, 1, 2, 3, 4]
        await wake(daemon, fakes)
        assert fakes.session.audio_frames() == 1  # the pre-roll from the wake word's frame on
        fakes.mic.frame()
        fakes.mic.frame()
        assert fakes.session.audio_frames() == 3
        assert fakes.engines[0].paused and not fakes.engines[1].paused  # the stop word listens now
        assert fakes.speaker.earcons == ["wake"]


async def test_a_superseded_sessions_events_are_ignored(tmp_path: Path) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        await wake(daemon, fakes)
        old = fakes.session
        daemon.user_action("end")
        assert state(daemon) == "idle" and ("audio_stream_end", None) in old.sent
        await wake(daemon, fakes)
        new = fakes.session
        assert new is not old
        old.emit(SessionState("closed", "the old one closed"))
        old.emit(ReplyAudio(REPLY))
        assert daemon.machine.in_conversation and state(daemon) == "listening"
        assert fakes.speaker.played == []
        assert daemon.conversation.ignored_events == 2
        new.emit(ReplyAudio(REPLY))
        assert state(daemon) == "speaking" and fakes.speaker.played == [REPLY]


async def test_reply_then_listening_when_the_speaker_drained(tmp_path: Path) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        await wake(daemon, fakes)
        fakes.session.emit(ReplyAudio(REPLY))
        fakes.session.emit(TurnComplete())
        assert fakes.speaker.replies_ended == 1
        await until(lambda: state(daemon) == "listening", "listening after the drain")
        await until(lambda: state(daemon) == "idle", "the follow-up window to close")
        await until(lambda: fakes.session.closed, "the session to close")
        assert fakes.speaker.earcons == ["wake", "end"]


async def test_button_press_interrupts_the_reply(tmp_path: Path) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        await wake(daemon, fakes)
        fakes.session.emit(ReplyAudio(REPLY))
        reply = await daemon.commands.handle("press", 0.01)  # the real gpiozero Button on a mock pin
        assert reply["message"].startswith("pressed")
        await until(lambda: fakes.speaker.flushes == 1, "the flush")
        assert state(daemon) == "listening"
        fakes.session.emit(ReplyAudio(REPLY))  # the rest of the interrupted reply is dropped
        assert fakes.speaker.played == [REPLY]
        assert "interrupt_to_silence" in daemon.metrics.latest


async def test_voice_barge_in_flushes(tmp_path: Path) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        await wake(daemon, fakes)
        fakes.session.emit(ReplyAudio(REPLY))
        fakes.session.emit(Interrupted())
        assert fakes.speaker.flushes == 1 and state(daemon) == "listening"


async def test_mute_ends_the_conversation_and_closes_the_microphone(tmp_path: Path) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        await wake(daemon, fakes)
        await daemon.commands.handle("mute", None)
        assert fakes.mic.muted and state(daemon) == "muted"
        assert ("audio_stream_end", None) in fakes.session.sent and not daemon.health.mic_expected
        assert daemon.status()["leds"] == "muted"
        with pytest.raises(ControlError, match="muted"):
            await daemon.commands.handle("say", "hello")
        await daemon.commands.handle("unmute", None)
        assert (fakes.mic.muted, state(daemon)) == (False, "idle")


@pytest.mark.parametrize(("command", "argument", "message"), [
    ("volume", 101, "0 to 100"), ("volume", True, "0 to 100"), ("say", "  ", "some text"),
    ("dance", None, "unknown command"), ("press", 11, "0 to 10"),
])
async def test_control_commands_refuse_bad_input(tmp_path: Path, command: str, argument: Any, message: str) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        with pytest.raises(ControlError, match=message):
            await daemon.commands.handle(command, argument)
        assert state(daemon) == "idle" and fakes.speaker.volume == 50


async def test_say_starts_a_conversation_with_text(tmp_path: Path) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        await daemon.commands.handle("say", " what time is it ")
        assert ("text", "what time is it") in fakes.session.sent and state(daemon) == "thinking"
        assert fakes.speaker.earcons == []  # a typed question needs no wake sound


async def test_a_failing_effect_does_not_stop_the_others(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fakes = Fakes()

    def broken() -> None:
        raise RuntimeError("flush failed")

    fakes.speaker.flush = broken  # type: ignore[method-assign]
    async with running(tmp_path, fakes) as daemon:
        await wake(daemon, fakes)
        fakes.session.emit(ReplyAudio(REPLY))
        fakes.session.emit(Interrupted())
        assert state(daemon) == "listening"  # the show after the failed flush still ran
        assert "effect flush_playback failed" in caplog.text


async def test_set_volume_tool_and_end_conversation(tmp_path: Path) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        await wake(daemon, fakes)
        tools = fakes.session.tools
        assert await tools.call("set_volume", {"level": 30}) == {"volume": 30}
        assert fakes.speaker.volume == 30
        fakes.session.emit(ToolCall("t1", "end_conversation", {}))
        fakes.session.emit(ToolResult("t1", "end_conversation", await tools.call("end_conversation", {})))
        fakes.session.emit(TurnComplete())
        await until(lambda: state(daemon) == "idle", "the goodbye")


async def test_stop_word_ends_the_conversation(tmp_path: Path) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        await wake(daemon, fakes)
        frame = fakes.mic.frame()
        assert fakes.engines[1].fed == [frame.index]
        fakes.engines[1].on_wake(WakeDetected("alexa", 0.8, frame.index))
        assert state(daemon) == "idle" and fakes.session.closed is False  # closing is a task
        await until(lambda: fakes.session.closed, "the session to close")


async def test_a_microphone_fault_shows_error_and_holds_the_watchdog(tmp_path: Path) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        assert fakes.audio.on_fault is not None
        fakes.audio.on_fault(DeviceFault("input", "the microphone is gone"))
        assert state(daemon) == "error" and daemon.status_line() == "error: the microphone is gone"
        assert not daemon.health.mic_expected
        fakes.audio.on_fault(DeviceFault("input", "microphone back", recovered=True))
        assert state(daemon) == "idle" and daemon.health.mic_expected


async def test_a_wake_word_model_that_cannot_load_is_a_startup_error(tmp_path: Path) -> None:
    fakes = Fakes()

    def engine(*_: Any) -> Any:
        raise WakeWordError("wakeword.models: no model named 'hey_nobody'")

    backends = fakes.backends()
    daemon = Daemon(make_config(tmp_path), backends=type(backends)(audio=fakes.audio, wakeword=engine,
                                                                   sessions=fakes.live))
    assert not await daemon.start()
    assert fakes.audio.mic is None  # nothing else was opened, and the control socket is gone
    assert not (tmp_path / "control.sock").exists()


async def test_a_quick_re_wake_with_the_camera_always_on(tmp_path: Path) -> None:
    """The old session's camera stop is still pending when the new session starts the camera."""
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(frames / "a.png")
    fakes = Fakes()
    camera = {"enabled": True, "source": "files", "device": str(frames), "width": 64, "height": 64,
              "fps": 5.0, "send": "always"}
    async with running(tmp_path, fakes, camera=camera) as daemon:
        await wake(daemon, fakes)
        first = fakes.session
        await until(lambda: any(kind == "video" for kind, _ in first.sent), "frames to the first session")
        daemon.user_action("end")
        await wake(daemon, fakes)  # at once: camera.stop() of the first session has not run yet
        second = fakes.session
        assert second is not first and state(daemon) == "listening"
        await until(lambda: any(kind == "video" for kind, _ in second.sent), "frames to the new session")
        sent_to_first = sum(1 for kind, _ in first.sent if kind == "video")
        await asyncio.sleep(0.5)
        assert sum(1 for kind, _ in first.sent if kind == "video") == sent_to_first  # the old one gets none


async def test_a_timer_rings_with_no_session_is_dismissed_and_its_label_is_announced(tmp_path: Path) -> None:
    from speakerd.daemon.announcements import verbatim_prompt
    from speakerd.events import Transcript

    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        await daemon.commands.handle("say", "set a timer")
        tools = fakes.session.tools
        assert (await tools.call("set_timer", {"seconds": 1, "label": "tea"}))["set"]["label"] == "tea"
        daemon.user_action("end")
        listed = await daemon.commands.handle("timers", None)
        assert [t["label"] for t in listed["timers"]] == ["tea"]
        await until(lambda: daemon.status()["state"] == "alarm", "the timer to ring", within=5)
        assert daemon.status()["leds"] == "alarm" and daemon.status_line() == "alarm"
        await until(lambda: ("alarm", 80) in fakes.speaker.sounds, "the alarm sound")
        assert (await daemon.commands.handle("stop", None))["message"] == "alarm stopped"
        assert fakes.speaker.sounds_dropped >= 1
        await until(lambda: len(fakes.live.sessions) == 2, "the announcement's session")
        said = fakes.session
        assert ("text", verbatim_prompt("Timer: tea.")) in said.sent
        assert not [kind for kind, _ in said.sent if kind == "audio"]  # no microphone in an announcement
        said.emit(SessionState("ready"))
        said.emit(Transcript("model", "Timer: tea."))
        said.emit(ReplyAudio(REPLY))
        said.emit(TurnComplete())
        await until(lambda: state(daemon) == "idle" and said.closed, "the announcement to end")
        assert (await daemon.commands.handle("timers", None))["timers"] == []
        assert (await daemon.commands.handle("stop", None))["message"] == "nothing is ringing"


async def test_announce_is_refused_when_muted_or_too_long_and_queued_behind_a_conversation(tmp_path: Path) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes, conversation={"announce_max_chars": 20}) as daemon:
        with pytest.raises(ControlError, match="at most 20 characters"):
            await daemon.commands.handle("announce", "x" * 21)
        await wake(daemon, fakes)
        assert (await daemon.commands.handle("announce", "dinner is ready"))["message"] == "queued"
        assert len(fakes.live.sessions) == 1
        daemon.user_action("end")
        await until(lambda: len(fakes.live.sessions) == 2, "the queued announcement")
        await daemon.commands.handle("mute", None)
        with pytest.raises(ControlError, match="muted"):
            await daemon.commands.handle("announce", "later")
        assert (await daemon.commands.handle("announce", {"text": "fire drill", "force": True}))["message"]


async def test_transcripts_are_one_line_per_turn_and_say_wait_returns_the_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from speakerd.events import Transcript

    caplog.set_level("INFO", logger="speakerd")
    fakes = Fakes()
    async with running(tmp_path, fakes, conversation={"follow_up_seconds": 5.0}) as daemon:
        asking = asyncio.ensure_future(daemon.commands.handle("say", {"text": "what time is it", "wait": True}))
        await until(lambda: fakes.live.sessions != [], "the session")
        session = fakes.session
        session.emit(SessionState("ready"))
        for word in ("what ", "time ", "is it"):
            session.emit(Transcript("user", word))
        for word in ("It ", "is ", "noon."):
            session.emit(Transcript("model", word))
        session.emit(TurnComplete({"total_token_count": 42, "prompt_token_count": 30}))
        assert (await asyncio.wait_for(asking, 5))["answer"] == "It is noon."
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(("you: ", "speaker: "))]
        assert lines == ["you: what time is it", "speaker: It is noon."]
        status = daemon.status()
        assert status["last_exchange"] == {"you": "what time is it", "speaker": "It is noon."}
        assert status["tokens"]["total_token_count"] == 42
        with pytest.raises(ControlError, match=r"no answer within 0\.2 s"):
            await daemon.commands.handle("say", {"text": "and tomorrow", "wait": True, "timeout": 0.2})


async def test_forget_by_command_and_by_tool_drops_the_kept_conversation(tmp_path: Path) -> None:
    fakes = Fakes()
    async with running(tmp_path, fakes) as daemon:
        daemon.store.save("handle-1")
        await wake(daemon, fakes)
        assert (await daemon.commands.handle("forget", None))["message"].startswith("forgotten")
        await until(lambda: fakes.session.closed and daemon.store.load() is None, "the handle to go")
        assert state(daemon) == "idle"
        daemon.store.save("handle-2")
        await wake(daemon, fakes)
        tools = fakes.session.tools
        fakes.session.emit(ToolCall("f1", "forget_conversation", {}))
        fakes.session.emit(ToolResult("f1", "forget_conversation", await tools.call("forget_conversation", {})))
        fakes.session.emit(TurnComplete())
        await until(lambda: state(daemon) == "idle" and daemon.store.load() is None, "the tool's forgetting")


def test_resume_minutes_bounds_how_long_a_conversation_is_kept(tmp_path: Path) -> None:
    daemon = Daemon(make_config(tmp_path, conversation={"resume_minutes": 1.0}), backends=Fakes().backends())
    (tmp_path / "state").mkdir()
    daemon.store.save("h")
    assert daemon.store.load() == "h"
    later = ResumptionStore(tmp_path / "state", daemon.store.model, daemon.store.max_age_seconds,
                            now=lambda: time.time() + 61)  # a minute and a second later
    assert later.load() is None
