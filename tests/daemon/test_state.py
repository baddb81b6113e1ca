"""The pure state machine: each rule of the conversation, driven with plain events."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from speakerd.effects import Effect, OpenSession, Show, StartTimer, State, Stream, WakeListening
from speakerd.events import (
    DeviceFault,
    Interrupted,
    PlaybackDrained,
    ReplyAudio,
    SayText,
    SessionState,
    Started,
    TimerFired,
    ToolCall,
    ToolResult,
    Transcript,
    TurnComplete,
    UserAction,
    UserSpeech,
    WakeDetected,
)
from speakerd.state import Event, Machine, Timings


def kinds(fx: list[Effect]) -> list[str]:
    """Effects as short names; a state or earcon name is appended to what shows or plays it."""
    out = []
    for e in fx:
        detail = e.state if isinstance(e, Show) else getattr(e, "name", None)
        out.append(f"{e.kind}:{detail}" if detail else e.kind)
    return out


def timers(fx: list[Effect]) -> list[StartTimer]:
    return [e for e in fx if isinstance(e, StartTimer)]


def started(push_to_talk: bool = False, **seconds: float) -> Machine:
    m = Machine(Timings(push_to_talk=push_to_talk, **seconds))
    assert kinds(m.handle(Started())) == ["show:idle"]
    return m


def state_now(m: Machine) -> State:
    """``m.state`` read afresh: mypy keeps an earlier ``m.state == ...`` narrowing across ``m.handle()``."""
    return m.state


def in_reply(m: Machine) -> None:
    m.handle(WakeDetected("hey_jarvis", 0.9, 42))
    m.handle(SessionState("ready"))
    m.handle(Transcript("user", "what time is it"))
    m.handle(ReplyAudio(b"\x01\x00" * 10))


def test_wake_opens_session_streaming_from_the_wake_frame() -> None:
    m = started()
    fx = m.handle(WakeDetected("hey_jarvis", 0.9, 42))
    assert kinds(fx) == ["show:wake", "earcon:wake", "wake_listening", "open_session", "start_timer",
                         "stream", "start_timer"]
    assert fx[3] == OpenSession(42) and fx[2] == WakeListening(False) and fx[5] == Stream(True)
    assert {e.timer for e in timers(fx)} == {"max_session", "idle_timeout"}
    assert kinds(m.handle(SessionState("ready"))) == ["show:listening"]
    # A second wake word during the conversation does nothing.
    assert m.handle(WakeDetected("hey_jarvis", 0.9, 50)) == []


def test_nothing_streams_before_wake_or_while_muted() -> None:
    m = started()
    assert m.handle(ReplyAudio(b"xx")) == [] and m.handle(UserSpeech()) == []
    m.handle(UserAction("mute"))
    assert m.state == "muted"
    assert m.handle(WakeDetected("hey_jarvis", 0.9, 1)) == []
    assert m.handle(UserAction("wake")) == []
    fx = m.handle(UserAction("mute_toggle"))
    assert kinds(fx) == ["mic", "wake_listening", "earcon:unmute", "show:idle"]


def test_reply_then_follow_up_window_then_end() -> None:
    m = started(follow_up_seconds=8.0)
    in_reply(m)
    assert m.state == "speaking"
    assert m.handle(TurnComplete()) == []  # still playing: the window waits for the speaker
    fx = m.handle(PlaybackDrained())
    assert kinds(fx) == ["show:listening", "start_timer"] and fx[1] == StartTimer("follow_up", 8.0)
    fx = m.handle(TimerFired("follow_up"))
    assert kinds(fx)[:4] == ["log", "stream", "end_audio_stream", "close_session"]
    assert kinds(fx)[-3:] == ["earcon:end", "wake_listening", "show:idle"]
    assert not m.in_conversation


def test_speech_in_follow_up_window_keeps_the_conversation() -> None:
    m = started()
    in_reply(m)
    m.handle(TurnComplete())
    m.handle(PlaybackDrained())
    fx = m.handle(UserSpeech())
    assert fx == [StartTimer("follow_up", 15.0)]
    m.handle(ReplyAudio(b"yy"))
    assert m.state == "speaking" and m.in_conversation


def test_barge_in_by_voice_flushes_and_listens() -> None:
    m = started()
    in_reply(m)
    assert kinds(m.handle(Interrupted())) == ["flush_playback", "show:listening"]
    assert kinds(m.handle(ReplyAudio(b"zz"))) == ["cancel_timer", "cancel_timer", "show:speaking", "play"]


def test_button_interrupt_drops_the_rest_of_the_reply() -> None:
    m = started()
    in_reply(m)
    fx = m.handle(UserAction("interrupt"))
    assert kinds(fx) == ["flush_playback", "stop_reply", "show:listening", "start_timer"]  # the service is told
    assert m.handle(ReplyAudio(b"late")) == []  # the rest of that reply is dropped
    assert m.handle(TurnComplete()) == []
    assert kinds(m.handle(ReplyAudio(b"next")))[-1] == "play"  # the next reply plays


def test_idle_timeout_only_without_speech() -> None:
    m = started()
    m.handle(WakeDetected("hey_jarvis", 0.9, 1))
    m.handle(SessionState("ready"))
    assert "close_session" in kinds(m.handle(TimerFired("idle_timeout")))
    m.handle(WakeDetected("hey_jarvis", 0.9, 9))
    m.handle(UserSpeech())
    assert m.handle(TimerFired("idle_timeout")) == []


def test_max_session_ends_even_while_speaking() -> None:
    m = started()
    in_reply(m)
    fx = m.handle(TimerFired("max_session"))
    assert kinds(fx)[0] == "flush_playback" and "close_session" in kinds(fx)


def test_mute_during_conversation_sends_audio_stream_end() -> None:
    m = started()
    in_reply(m)
    fx = m.handle(UserAction("mute_toggle"))
    k = kinds(fx)
    assert k.index("stream") < k.index("end_audio_stream") < k.index("close_session") < k.index("mic")
    assert m.state == "muted" and m.muted


def test_end_conversation_tool_waits_for_the_goodbye() -> None:
    m = started()
    in_reply(m)
    m.handle(ToolCall("c1", "end_conversation", {}))
    assert m.handle(ToolResult("c1", "end_conversation", {"result": "ok"})) == []
    m.handle(TurnComplete())
    assert "close_session" in kinds(m.handle(PlaybackDrained()))


def test_say_opens_a_conversation_and_sends_text() -> None:
    m = started()
    fx = m.handle(SayText("hello"))
    k = kinds(fx)
    assert "open_session" in k and k.index("open_session") < k.index("send_text")
    assert "earcon:wake" not in k and m.state == "thinking"


def test_reconnecting_shows_offline_then_returns() -> None:
    m = started()
    in_reply(m)
    assert kinds(m.handle(SessionState("reconnecting"))) == ["show:offline"]
    assert kinds(m.handle(SessionState("ready"))) == ["show:listening"]
    assert m.in_conversation


def test_fatal_session_failure_shows_error_and_wake_retries() -> None:
    m = started()
    m.handle(WakeDetected("hey_jarvis", 0.9, 1))
    fx = m.handle(SessionState("failed", "API key rejected", fatal=True))
    assert "close_session" in kinds(fx) and m.state == "error" and m.error == "API key rejected"
    assert "open_session" in kinds(m.handle(WakeDetected("hey_jarvis", 0.9, 5)))
    assert m.error is None


def test_microphone_fault_and_recovery() -> None:
    m = started()
    in_reply(m)
    fx = m.handle(DeviceFault("input", "USB mic gone"))
    assert "close_session" in kinds(fx) and m.state == "error"
    assert m.handle(WakeDetected("hey_jarvis", 0.9, 1)) == []
    assert kinds(m.handle(DeviceFault("input", "back", recovered=True))) == ["show:idle"]
    assert m.handle(DeviceFault("output", "speaker gone")) == [] and state_now(m) == "idle"


def test_push_to_talk_uses_activity_markers() -> None:
    m = started(push_to_talk=True)
    fx = m.handle(UserAction("ptt_start"))
    k = kinds(fx)
    assert k.index("open_session") < k.index("activity_start") < k.index("stream")
    assert "idle_timeout" not in [e.timer for e in timers(fx)]
    m.handle(SessionState("ready"))
    assert kinds(m.handle(UserAction("ptt_end"))) == ["activity_end", "stream", "show:thinking"]
    k = kinds(m.handle(UserAction("ptt_start")))
    assert k[:2] == ["stream", "activity_start"]


def test_a_finished_tool_does_not_hold_the_conversation_open() -> None:
    m = started()
    in_reply(m)
    m.handle(ToolCall("v1", "set_volume", {"level": 40}))
    m.handle(ToolResult("v1", "set_volume", {"volume": 40}))
    m.handle(TurnComplete())
    m.handle(PlaybackDrained())
    assert "close_session" in kinds(m.handle(TimerFired("follow_up")))


def test_go_away_is_handled_quietly() -> None:
    from speakerd.events import GoAway

    m = started()
    in_reply(m)
    assert m.handle(GoAway(5.0)) == [] and m.state == "speaking"


# An alarm over whatever is going on -------------------------------------------------------------------


def test_an_alarm_with_no_conversation_shows_and_a_press_or_wake_word_dismisses() -> None:
    from speakerd.effects import DismissAlarm
    from speakerd.events import AlarmRinging

    m = started()
    assert kinds(m.handle(AlarmRinging(True))) == ["show:alarm"] and m.shown == "alarm"
    assert m.handle(WakeDetected("hey_jarvis", 0.9, 7)) == [DismissAlarm()]  # no conversation opens
    assert m.handle(UserAction("wake")) == [DismissAlarm()]
    assert m.handle(UserAction("mute")) != [DismissAlarm()]  # muting is not a dismissal
    assert kinds(m.handle(AlarmRinging(False))) == ["show:muted"] and not m.in_conversation


def test_an_alarm_during_a_reply_pauses_it_and_the_conversation_resumes() -> None:
    from speakerd.effects import DismissAlarm, HoldPlayback
    from speakerd.events import AlarmRinging

    m = started()
    in_reply(m)
    fx = m.handle(AlarmRinging(True))
    assert Stream(False) in fx and HoldPlayback(True) in fx and "end_audio_stream" in kinds(fx)
    assert kinds(fx)[-1] == "show:alarm"
    assert kinds(m.handle(ReplyAudio(b"zz"))) == ["cancel_timer", "cancel_timer", "play"]  # queued, not shown
    assert m.handle(UserAction("end")) == [DismissAlarm()]  # the stop word stops the alarm, not the talk
    fx = m.handle(AlarmRinging(False))
    assert fx[0] == Show("speaking") and HoldPlayback(False) in fx and Stream(True) in fx
    assert m.in_conversation and m.shown == "speaking"


def test_stop_with_nothing_ringing_does_nothing() -> None:
    m = started()
    in_reply(m)
    assert m.handle(UserAction("stop")) == []
    assert m.state == "speaking"


def test_an_announcement_opens_a_fresh_session_without_the_microphone() -> None:
    from speakerd.effects import Earcon, SendText
    from speakerd.events import Announce

    m = started()
    fx = m.handle(Announce("Say: dinner is ready"))
    assert fx[0] == Earcon("chime") and OpenSession(None, fresh=True) in fx and SendText("Say: dinner is ready") in fx
    assert not any(isinstance(e, Stream) and e.on for e in fx)  # nothing from the room is sent
    m.handle(SessionState("ready"))
    m.handle(ReplyAudio(b"\x01\x00"))
    m.handle(TurnComplete())
    fx = m.handle(PlaybackDrained())
    assert "close_session" in kinds(fx) and "earcon:end" not in kinds(fx) and m.state == "idle"


def test_an_unreachable_service_has_its_own_sound_and_led_until_a_session_works() -> None:
    m = started()
    m.handle(WakeDetected("hey_jarvis", 0.9, 1))
    fx = m.handle(SessionState("failed", "cannot reach the Live API: connection refused"))
    assert "earcon:offline" in kinds(fx) and kinds(fx)[-1] == "show:offline" and not m.in_conversation
    assert "open_session" in kinds(m.handle(WakeDetected("hey_jarvis", 0.9, 9)))  # the next wake tries again
    assert kinds(m.handle(SessionState("ready"))) == ["show:listening"]
    m.handle(UserAction("end"))
    fx = m.handle(UserAction("wake"))
    fx = m.handle(SessionState("failed", "API key not valid", fatal=True))
    assert "earcon:error" in kinds(fx) and state_now(m) == "error"


def test_push_to_talk_mode_answers_a_wake_word_and_a_typed_question() -> None:
    """With push_to_talk the service detects no turns: a pause ends a voice turn the button did not open."""
    from speakerd.events import UserPaused

    m = started(push_to_talk=True)
    k = kinds(m.handle(WakeDetected("hey_jarvis", 0.9, 3)))
    assert k.index("open_session") < k.index("activity_start") < k.index("stream")
    m.handle(SessionState("ready"))
    assert m.handle(UserPaused()) == []  # nothing was said yet: keep listening
    m.handle(UserSpeech())
    assert kinds(m.handle(UserPaused())) == ["activity_end", "stream", "show:thinking"]
    m.handle(ReplyAudio(b"\x01\x00"))
    m.handle(TurnComplete())
    k = kinds(m.handle(PlaybackDrained()))
    assert k == ["show:listening", "start_timer", "activity_start", "stream"]  # the follow-up turn opens
    # A typed question opens no voice turn, so the service answers the text at once.
    m2 = started(push_to_talk=True)
    k = kinds(m2.handle(SayText("what time is it")))
    assert "activity_start" not in k and "send_text" in k
    # A held button's turn is not ended by a pause, only by the release.
    m3 = started(push_to_talk=True)
    m3.handle(UserAction("ptt_start"))
    m3.handle(UserSpeech())
    assert m3.handle(UserPaused()) == []
    assert kinds(m3.handle(UserAction("ptt_end")))[0] == "activity_end"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    "wake", "speech", "paused", "ready", "reply", "turn", "drained", "interrupted", "follow_up", "idle", "max",
    "mute", "unmute", "end", "ptt_start", "ptt_end", "say", "alarm_on", "alarm_off", "failed", "closed", "reconnecting",
]), max_size=40), st.booleans())
def test_streaming_stops_only_with_an_end_marker(steps: list[str], push_to_talk: bool) -> None:
    """Whatever happens: every time streaming stops in an open session, audioStreamEnd (automatic turn
    detection) or activityEnd (push-to-talk) goes with it, so the service answers what it has."""
    from speakerd.effects import ActivityEnd, EndAudioStream
    from speakerd.events import AlarmRinging, UserPaused

    events: dict[str, Event] = {
        "wake": WakeDetected("hey_jarvis", 0.9, 1), "speech": UserSpeech(), "paused": UserPaused(),
        "ready": SessionState("ready"), "reply": ReplyAudio(b"\x01\x00"), "turn": TurnComplete(),
        "drained": PlaybackDrained(), "interrupted": Interrupted(), "follow_up": TimerFired("follow_up"),
        "idle": TimerFired("idle_timeout"), "max": TimerFired("max_session"), "mute": UserAction("mute"),
        "unmute": UserAction("unmute"), "end": UserAction("end"), "ptt_start": UserAction("ptt_start"),
        "ptt_end": UserAction("ptt_end"), "say": SayText("hi"), "alarm_on": AlarmRinging(True),
        "alarm_off": AlarmRinging(False), "failed": SessionState("failed", "x"), "closed": SessionState("closed"),
        "reconnecting": SessionState("reconnecting", "drop"),
    }
    m = started(push_to_talk=push_to_talk)
    streaming = False
    for step in steps:
        fx = m.handle(events[step])
        for i, e in enumerate(fx):
            if isinstance(e, Stream):
                if streaming and not e.on:
                    rest = fx[max(0, i - 1): i + 3]
                    assert any(isinstance(x, EndAudioStream | ActivityEnd) for x in rest), (step, kinds(fx))
                streaming = e.on
