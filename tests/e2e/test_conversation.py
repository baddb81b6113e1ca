"""The real daemon, end to end: what the emulator received and what the speaker file holds."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from speakerd_workshop.emulator import Fault

from tests.e2e.conftest import WAKE, RigFactory, contiguous_in, loud_seconds, silence, speech

pytestmark = pytest.mark.slow


def test_wake_question_reply_no_frame_lost_with_slow_connect(rig_factory: RigFactory) -> None:
    with rig_factory() as rig:
        assert rig.mic is not None and rig.emulator is not None and rig.devices is not None
        rig.mic.say(silence(2.0))
        rig.mic.wait_idle()
        assert rig.emulator.connections == []  # nothing leaves the device while idle

        rig.emulator.inject(Fault("stall", during="setup", seconds=0.6))  # a slow connect
        start = len(rig.mic.sent)
        rig.mic.say(WAKE + speech("what time is it?") + silence(2.5))
        rig.wait_state("speaking", timeout=40)
        rig.wait_state("listening", timeout=40, start=rig.wait_state("speaking") + 1)

        received = rig.emulator.received_audio()
        sent = bytes(rig.mic.sent)
        offset = contiguous_in(sent, received)
        assert offset >= 0, "the audio the emulator received is not an unbroken slice of what was said"
        question_at = start + len(WAKE)
        assert offset <= question_at, "audio after the wake word is missing"
        assert offset >= start + len(silence(1.2)), "audio from before the wake word was sent"
        heard = rig.speaker_pcm()
        reply = loud_seconds(heard, rig.devices.speaker_rate)
        assert reply > 1.0, f"only {reply:.2f} s of reply audio reached the speaker"
        assert "you: what time is it" in rig.log_text()


def test_follow_up_inside_window_and_none_after(rig_factory: RigFactory) -> None:
    with rig_factory(config="[conversation]\nfollow_up_seconds = 3.0\n") as rig:
        assert rig.mic is not None and rig.emulator is not None
        emulator = rig.emulator  # not Optional, also inside the lambdas
        rig.mic.say(WAKE + speech("what time is it?") + silence(2.0))
        first = rig.wait_state("speaking", timeout=40)
        rig.wait_state("listening", timeout=40, start=first + 1)
        rig.mic.say(silence(0.3) + speech("and tomorrow?") + silence(2.0))
        second = rig.wait_state("speaking", timeout=40, start=first + 1)
        assert "you: and tomorrow" in rig.log_text()
        rig.wait_state("idle", timeout=40, start=second)
        assert len(emulator.connections) == 1
        emulator.wait_for(lambda: emulator.connections[0].closed, timeout=10)
        assert emulator.messages("realtimeInput")[-1].get("audioStreamEnd") is True
        heard_before = len(emulator.received_audio())
        rig.mic.say(speech("what time is it?") + silence(2.0))
        rig.mic.wait_idle()
        time.sleep(0.5)
        assert len(emulator.received_audio()) == heard_before, rig.log_text()
        assert len(emulator.connections) == 1


def test_barge_in_by_voice_and_by_button(rig_factory: RigFactory) -> None:
    with rig_factory(config="[conversation]\nfollow_up_seconds = 6.0\n") as rig:
        assert rig.mic is not None and rig.emulator is not None
        emulator = rig.emulator  # not Optional, also inside the lambdas
        # Turn 1, then a long story in turn 3 to interrupt; turn 2's answer is interrupted by button.
        rig.mic.say(WAKE + speech("what time is it?") + silence(2.0))
        s1 = rig.wait_state("speaking", timeout=40)
        rig.wait_state("listening", timeout=40, start=s1 + 1)
        rig.mic.say(silence(0.3) + speech("and tomorrow?") + silence(1.0))
        s2 = rig.wait_state("speaking", timeout=40, start=s1 + 1)
        reply = rig.ctl("press", 0.1)
        assert reply["ok"], reply
        rig.wait_log(r"^button short -> interrupt$", timeout=10, start=s2)
        b = rig.wait_state("listening", timeout=10, start=s2)
        rig.wait_log(r"^interrupt to silence", timeout=10, start=s2)
        assert rig.states(s2)[:2] == ["speaking", "listening"]
        rig.mic.say(silence(0.3) + speech("tell me a story") + silence(1.0))
        s3 = rig.wait_state("speaking", timeout=40, start=b)
        time.sleep(1.0)
        rig.mic.say(speech("stop stop stop, that is enough") + silence(2.0))
        rig.wait_log(r"^interrupted by voice$", timeout=20, start=s3)
        assert emulator.wait_for(lambda: any(e.kind == "interruptedBy" or "interrupt" in e.kind
                                             for e in emulator.events), timeout=5)


def test_long_press_mutes_sends_audio_stream_end_and_stops_streaming(rig_factory: RigFactory) -> None:
    with rig_factory() as rig:
        assert rig.mic is not None and rig.emulator is not None
        emulator = rig.emulator  # not Optional, also inside the lambdas
        rig.mic.say(WAKE + speech("what time is it?") + silence(2.0))
        s = rig.wait_state("speaking", timeout=40)
        rig.wait_state("listening", timeout=40, start=s + 1)
        assert rig.ctl("press", 1.6)["ok"]
        rig.wait_state("muted", timeout=10, start=s)
        assert emulator.wait_for(
            lambda: any(m.get("audioStreamEnd") for m in emulator.messages("realtimeInput")), timeout=5)
        heard = len(emulator.received_audio())
        rig.mic.say(WAKE + speech("what time is it?") + silence(1.0))
        rig.mic.wait_idle()
        time.sleep(0.5)
        assert len(emulator.received_audio()) == heard
        assert rig.states(s)[-1] == "muted"
        assert rig.ctl("status")["muted"] is True


def test_tool_call_runs_and_its_answer_is_spoken(rig_factory: RigFactory) -> None:
    from speakerd_workshop.emulator import Scenario

    scenario = Scenario.from_dict({"turns": [{
        "user_transcript": "what time is it",
        "tool_calls": [{"name": "current_time", "args": {}}],
        "after_tool_text": "It is {result} right now.",
    }]})
    with rig_factory(scenario=scenario) as rig:
        assert rig.mic is not None and rig.emulator is not None
        emulator = rig.emulator  # not Optional, also inside the lambdas
        rig.mic.say(WAKE + speech("what time is it?") + silence(2.0))
        rig.wait_log(r"^tool current_time", timeout=40)
        responses = emulator.wait_for(lambda: emulator.messages("toolResponse"), timeout=20)
        result = json.dumps(responses[0])
        assert "current_time" in result
        rig.wait_state("speaking", timeout=30)


def test_sigterm_mid_reply_then_restart_resumes_and_kill9_too(rig_factory: RigFactory) -> None:
    with rig_factory() as rig:
        assert rig.mic is not None and rig.emulator is not None and rig.notify is not None
        rig.mic.say(WAKE + speech("tell me a story") + silence(1.5))
        rig.wait_state("speaking", timeout=40)
        rig.send_signal(signal.SIGTERM)
        rig.notify.wait_for(lambda m: m.get("STOPPING") == "1", timeout=15)
        assert rig.wait_exit(30) == 0
        store = list(rig.state_dir.glob("*resum*"))
        assert store, f"no resumption file in {sorted(p.name for p in rig.state_dir.iterdir())}"

        rig.start()
        mark = len(rig.lines)
        rig.mic.say(WAKE + speech("and tomorrow?") + silence(2.0))
        rig.wait_log(r"Live session ready \(resumed\)", timeout=40, start=mark)
        assert rig.emulator.connections[-1].resumed_handle

        rig.wait_state("speaking", timeout=40, start=mark)
        rig.send_signal(signal.SIGKILL)
        rig.wait_exit(10)
        rig.start()
        mark = len(rig.lines)
        rig.mic.say(WAKE + speech("what time is it?") + silence(2.0))
        rig.wait_log(r"Live session ready \(resumed\)", timeout=40, start=mark)
        assert rig.emulator.connections[-1].resumed_handle


def test_speakerctl_against_the_running_daemon(rig_factory: RigFactory) -> None:
    with rig_factory() as rig:
        assert rig.emulator is not None
        status = rig.ctl("status")
        assert status["ok"] and status["state"] == "idle" and "rig-test-key" not in json.dumps(status)
        assert rig.ctl("volume", 35)["ok"] and rig.ctl("status")["volume"] == 35
        assert rig.ctl("say", "what time is it")["ok"]
        rig.wait_state("speaking", timeout=40)
        assert any(m.get("text") for m in rig.emulator.messages("realtimeInput")) or \
            rig.emulator.messages("clientContent")
        assert rig.ctl("interrupt")["ok"]
        rig.wait_state("listening", timeout=10)
        assert rig.ctl("mute")["ok"]
        rig.wait_state("muted", timeout=10)
        assert rig.ctl("say", "hello")["ok"] is False
        assert rig.ctl("unmute")["ok"]
        rig.wait_state("idle", timeout=10, start=rig.wait_state("muted"))


def test_stop_word_ends_the_conversation(rig_factory: RigFactory) -> None:
    from speakerd_workshop.emulator.tts import synthesize

    with rig_factory(config='[wakeword]\nstop_model = "alexa"\n') as rig:
        assert rig.mic is not None and rig.emulator is not None
        emulator = rig.emulator  # not Optional, also inside the lambdas
        rig.mic.say(WAKE + speech("tell me a story") + silence(1.0))
        s = rig.wait_state("speaking", timeout=40)
        rig.mic.say(silence(1.0) + synthesize("alexa", rate=16000, voice="en") + silence(1.0))
        rig.wait_log(r"^stop word alexa", timeout=20, start=s)
        rig.wait_state("idle", timeout=10, start=s)
        emulator.wait_for(lambda: emulator.connections[0].closed, timeout=10)


def test_look_tool_sends_exactly_the_requested_frames_with_the_camera_indication(
    rig_factory: RigFactory, tmp_path: Path
) -> None:
    from PIL import Image
    from speakerd_workshop.emulator import Scenario

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, colour in enumerate(("red", "green", "blue")):
        Image.new("RGB", (640, 480), colour).save(photos / f"{i}.png")
    scenario = Scenario.from_dict({"turns": [{
        "user_transcript": "what am I holding",
        "tool_calls": [{"name": "look", "args": {"count": 2}}],
        "after_tool_text": "I looked at {frames} photos.",
    }]})
    config = f'[camera]\nenabled = true\nsource = "files"\ndevice = "{photos}"\nfps = 2.0\n'
    with rig_factory(scenario=scenario, config=config) as rig:
        assert rig.mic is not None and rig.emulator is not None
        rig.mic.say(WAKE + speech("what am I holding?") + silence(2.0))
        rig.wait_log(r"^tool look", timeout=40)
        on = rig.wait_log(r"^camera on", timeout=20)
        off = rig.wait_log(r"^camera off", timeout=20, start=on)
        said = rig.wait_log(r"^speaker: .*photos\.", timeout=30)
        assert rig.lines[said].message == "speaker: I looked at 2 photos."  # one line per turn
        frames = rig.emulator.received_video()
        assert len(frames) == 2 and all(jpeg[:2] == b"\xff\xd8" for _t, jpeg in frames)
        assert rig.lines[on].at <= rig.lines[off].at
        setup = rig.emulator.connections[0].setup or {}
        assert "contextWindowCompression" in setup  # forced on while the camera may be used


def test_wake_again_right_after_a_conversation_ends(rig_factory: RigFactory) -> None:
    """A new conversation started while the old session is still closing is not ended by it."""
    with rig_factory(config="[conversation]\nfollow_up_seconds = 1.0\n") as rig:
        assert rig.mic is not None and rig.emulator is not None
        emulator = rig.emulator  # not Optional, also inside the lambdas
        rig.mic.say(WAKE + speech("what time is it?") + silence(2.0))
        first = rig.wait_state("speaking", timeout=40)
        idle = rig.wait_state("idle", timeout=40, start=first + 1)
        reply = rig.ctl("say", "and tomorrow?")  # at once: the first session is still closing
        assert reply["ok"], reply
        woke = rig.wait_state("wake", timeout=10, start=idle + 1)
        second = rig.wait_state("speaking", timeout=40, start=woke)
        rig.wait_state("listening", timeout=40, start=second + 1)
        emulator.wait_for(lambda: len(emulator.connections) == 2, timeout=10)
        emulator.wait_for(lambda: emulator.connections[0].closed, timeout=10)
        ends = [line.message for line in rig.lines[woke:] if line.message.startswith("conversation ended")]
        assert ends == [], f"the old session ended the new conversation: {ends}"
        rig.wait_log(r"^speaker: .*[Ss]unny", timeout=10, start=woke)  # the second question was answered
        assert rig.ctl("status")["state"] == "listening"  # and the conversation is still open
