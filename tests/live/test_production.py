"""Production's behaviours (reference live-service-behaviours.md) acted out by the emulator, and
what the session does about each, with the real SDK over TLS."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from speakerd_workshop.emulator import EmulatorThread, Fault, Scenario, ToolCallSpec, Turn, tts

from speakerd.events import (
    GenerationComplete,
    ReplyAudio,
    ResponseStalled,
    SessionState,
    ToolResult,
    TurnComplete,
    TurnRejected,
)
from speakerd.live import LiveSession, ResumptionStore, ToolRegistry, ToolSpec, dispatch, with_keepalive
from speakerd.live.connect_config import KEEPALIVE_TIMEOUT_SECONDS, http_options
from speakerd.live.policy import backoff
from tests.live.test_faults import model_text
from tests.live.test_session import KEY, RATE, SCENARIO, Recorder, make_cfg, make_session, say
from tests.sounds import silence

TEA = SCENARIO.turns[0].reply_text
LOOKUP = Scenario(turns=(Turn(user_transcript="what time is it", tool_calls=(ToolCallSpec("slow_lookup", {}),),
                              after_tool_text="The lookup said {result}."),))


def events_of(emu: EmulatorThread, kind: str) -> list[Any]:
    return [e for e in emu.events if e.kind == kind]


def question() -> bytes:
    return bytes(tts.synthesize("what time is it", rate=RATE)) + silence(0.6)


# Keepalive ----------------------------------------------------------------------------------------


def test_default_http_options_let_a_pong_take_30_s(tmp_path: Path, emu: EmulatorThread) -> None:
    opts = http_options(make_cfg(tmp_path, emu).settings.live)
    args = opts.async_client_args or {}
    assert args["ping_timeout"] >= 60 and args["ping_timeout"] == KEEPALIVE_TIMEOUT_SECONDS
    assert "ssl" in args  # the CA still reaches the WebSocket
    # A caller's own ping settings win.
    own = types.HttpOptions(async_client_args={"ping_interval": None})
    assert with_keepalive(own).async_client_args == {"ping_interval": None}


@pytest.mark.parametrize(("timeout", "survives"), [(1.0, False), (6.0, True)])
async def test_slow_pongs_cut_a_session_only_when_the_ping_timeout_is_short(
        tmp_path: Path, emu: EmulatorThread, timeout: float, survives: bool) -> None:
    """Scaled: pongs after 2.5 s against a 1 s timeout (the SDK default's shape: 25 s vs 20 s)."""
    rec = Recorder()
    opts = with_keepalive(emu.http_options(), interval=0.5, timeout=timeout)
    session = make_session(make_cfg(tmp_path, emu), rec, http_options=opts)
    await session.open()
    emu.inject(Fault("slow_pong", target="current", during="now", seconds=2.5))
    if survives:
        await rec.wait(lambda: len(events_of(emu, "slowPong")) >= 3)
        assert len(emu.connections) == 1 and emu.connections[0].closed is None
    else:
        await rec.wait(lambda: len(emu.connections) == 2 and session.is_open)
        assert emu.connections[0].closed_by != "server"  # the client gave up on its own ping
    await session.close()


# 1008 during a BLOCKING call ----------------------------------------------------------------------


def lookup_session(tmp_path: Path, emu: EmulatorThread, rec: Recorder) -> LiveSession:
    cfg = make_cfg(tmp_path, emu)
    s = cfg.settings

    async def slow_lookup(**_: Any) -> dict[str, Any]:
        await asyncio.sleep(1.5)
        return {"result": 42}

    spec = ToolSpec("slow_lookup", "a slow lookup", {"type": "object", "properties": {}})
    tools = ToolRegistry(s.tools, {}, extra={"slow_lookup": (spec, slow_lookup)})
    return LiveSession(cfg, rec, store=ResumptionStore(s.state.directory, s.live.model), tools=tools)


async def stream_during_tool(session: LiveSession, rec: Recorder) -> None:
    await say(session, question())
    await rec.wait(lambda: session.dispatch.tool_tasks)
    while session.dispatch.tool_tasks:  # the microphone keeps streaming while the tool runs
        session.send_audio(silence(0.08))
        await asyncio.sleep(0.08)


async def test_mic_audio_is_held_back_while_a_blocking_call_is_pending(tmp_path: Path, cert_dir: Path) -> None:
    with EmulatorThread(LOOKUP, api_key=KEY, cert_dir=cert_dir, pace=6.0) as emu:
        rec = Recorder()
        session = lookup_session(tmp_path, emu, rec)
        await session.open()
        emu.inject(Fault("abort_on_input", target="current", during="now"))
        await stream_during_tool(session, rec)
        await rec.wait(lambda: rec.of(TurnComplete))
        assert "The lookup said 42." in model_text(rec)
        assert len(emu.connections) == 1 and emu.connections[0].closed is None
        assert session.stats.held_back_audio_bytes > 0
        await session.close()


async def test_1008_aborted_after_setup_is_resumed_and_answered(
        tmp_path: Path, cert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the hold (expired at once) the service aborts; one resume recovers the turn."""
    monkeypatch.setattr(dispatch, "BLOCKING_HOLD_SECONDS", 0.0)
    with EmulatorThread(LOOKUP, api_key=KEY, cert_dir=cert_dir, pace=6.0) as emu:
        rec = Recorder()
        session = lookup_session(tmp_path, emu, rec)
        await session.open()
        emu.inject(Fault("abort_on_input", target="current", during="now"))
        await stream_during_tool(session, rec)
        await rec.wait(lambda: any("42" in str(e.response) for e in rec.of(ToolResult)) and len(emu.connections) >= 2)
        first = emu.connections[0]
        assert first.close_code == 1008 and first.closed_reason == "The operation was aborted."
        assert emu.connections[1].resumed_handle is not None
        await rec.wait(lambda: "The lookup said 42." in model_text(rec))
        assert not any(e.phase == "failed" for e in rec.of(SessionState))
        await session.close()


# The response watchdog ----------------------------------------------------------------------------


async def test_a_stall_after_the_users_turn_is_resumed_and_answered(tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec, response_timeout=1.5)
    await session.open()
    emu.inject(Fault("stall_reply", target="current", during="now"))
    await say(session, question())
    await rec.wait(lambda: rec.of(TurnComplete))
    assert [e.retrying for e in rec.of(ResponseStalled)] == [True]
    assert len(emu.connections) == 2 and emu.connections[1].resumed_handle is not None
    assert emu.received_audio(2).startswith(question())  # replayed first on the new connection
    assert model_text(rec).strip().endswith(TEA)
    await session.close()


async def test_a_stall_that_persists_is_reported_once_and_the_session_stays(tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec, response_timeout=1.0)
    await session.open()
    emu.inject(Fault("stall_reply", target="current", during="now"))
    emu.inject(Fault("stall_reply"))  # the resumed connection stalls too
    session.send_text("what time is it")
    await rec.wait(lambda: len(rec.of(ResponseStalled)) == 2)
    assert [e.retrying for e in rec.of(ResponseStalled)] == [True, False]
    await asyncio.sleep(1.5)  # no third attempt, no failure: the daemon shows it and listens on
    assert len(rec.of(ResponseStalled)) == 2 and len(emu.connections) == 2 and session.is_open
    assert not any(e.phase == "failed" for e in rec.of(SessionState))
    session.send_text("and tomorrow")  # the next question is answered
    await rec.wait(lambda: rec.of(ReplyAudio))
    await session.close()


# Rejected turns, late turnComplete ----------------------------------------------------------------


async def test_three_rejected_turns_start_a_fresh_session(tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    await session.open()
    emu.inject(Fault("reject", target="current", during="now", count=3))
    for n in range(1, 4):
        session.send_text("what time is it")
        await rec.wait(lambda n=n: len(rec.of(TurnComplete)) == n)
    rejected = rec.of(TurnRejected)
    assert [(r.reason, r.in_a_row, r.fresh_session) for r in rejected] == [
        ("RESPONSE_REJECTED", 1, False), ("RESPONSE_REJECTED", 2, False), ("RESPONSE_REJECTED", 3, True)]
    await rec.wait(lambda: len(emu.connections) == 2 and session.is_open)
    assert emu.connections[1].resumed_handle is None and session.stats.rejected_turns == 3
    assert not rec.of(GenerationComplete)  # nothing was generated
    session.send_text("what time is it")
    await rec.wait(lambda: len(rec.of(TurnComplete)) == 4)
    assert model_text(rec).strip() == TEA
    await session.close()


async def test_generation_complete_is_reported_once_before_a_late_turn_complete(
        tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    await session.open()
    emu.inject(Fault("late_turn_complete", target="current", during="now", seconds=1.5))
    session.send_text("what time is it")
    await rec.wait(lambda: rec.of(TurnComplete))
    kinds = [type(e) for e in rec.events if isinstance(e, ReplyAudio | GenerationComplete | TurnComplete)]
    assert kinds.count(GenerationComplete) == 1
    assert kinds.index(GenerationComplete) == len(kinds) - 2  # after the last audio, before turnComplete
    assert events_of(emu, "lateTurnComplete")
    await session.close()


# Connection lifetime and close codes --------------------------------------------------------------


async def test_go_away_then_silence_moves_on_the_timer(tmp_path: Path, cert_dir: Path) -> None:
    story = Scenario(turns=(SCENARIO.turns[2],))  # a long reply, still going when the goAway comes
    with EmulatorThread(story, api_key=KEY, cert_dir=cert_dir, pace=1.0, go_away_before_seconds=3.0) as emu:
        rec = Recorder()
        session = make_session(make_cfg(tmp_path, emu), rec)
        await session.open()
        session.send_text("tell me a story")
        await rec.wait(lambda: rec.of(ReplyAudio))
        emu.inject(Fault("go_away_silent", target="current", during="now"))
        await rec.wait(lambda: len(emu.connections) == 2 and session.is_open)
        first = emu.connections[0]
        assert first.closed_by == "client"  # moved before the server's 1011 "Deadline expired"
        assert emu.connections[1].resumed_handle is not None
        await session.close()


async def test_resume_refused_while_the_old_socket_is_open(tmp_path: Path, emu: EmulatorThread) -> None:
    """The fault itself, with the bare SDK: a second socket resuming the first one's session."""
    client = genai.Client(api_key=KEY, http_options=emu.http_options())
    config = types.LiveConnectConfig(session_resumption=types.SessionResumptionConfig())
    async with client.aio.live.connect(model="gemini-3.8-live", config=config) as first:
        handle = None
        async for msg in first.receive():
            upd = msg.session_resumption_update
            if upd is not None and upd.new_handle:
                handle = upd.new_handle
                break
        assert handle
        emu.inject(Fault("refuse_resume"))
        again = types.LiveConnectConfig(session_resumption=types.SessionResumptionConfig(handle=handle))
        with pytest.raises(errors.APIError) as e:
            async with client.aio.live.connect(model="gemini-3.8-live", config=again):
                pass
        assert e.value.code == 1011
    # The session closes the old socket before it resumes.
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    await session.open()
    emu.inject(Fault("refuse_resume"))
    emu.inject(Fault("go_away", target="current", during="now"))
    await rec.wait(lambda: len(emu.connections) == 4 and session.is_open)
    assert emu.connections[3].resumed_handle is not None and not events_of(emu, "resumeRefused")[1:]
    await session.close()


async def test_deadline_close_then_1007_on_resume_starts_fresh_with_the_question(
        tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    await session.open()
    emu.inject(Fault("close", code=1007, during="setup"))  # the resume fails
    emu.inject(Fault("stall_reply", target="current", during="now", seconds=30))
    session.send_text("what time is it")
    await rec.wait(lambda: events_of(emu, "stallReply"))
    emu.inject(Fault("close", code=1011, reason="Deadline expired", target="current", during="now"))
    await rec.wait(lambda: rec.of(TurnComplete))
    conns = emu.connections
    assert [c.close_code for c in conns[:2]] == [1011, 1007] and conns[2].resumed_handle is None
    assert model_text(rec).strip() == TEA  # the pending question was asked again in the fresh session
    assert not any(e.phase == "failed" for e in rec.of(SessionState))
    await session.close()


@pytest.mark.parametrize(("reason", "quota"), [
    ("The service is currently unavailable.", False),
    ("RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'Live sessions'.", True),
])
async def test_1011_backs_off_and_a_quota_reason_longer(tmp_path: Path, emu: EmulatorThread, reason: str,
                                                        quota: bool, caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)  # reconnect_max_seconds = 0.5
    await session.open()
    emu.inject(Fault("close", code=1011, reason=reason, target="current", during="now"))
    await rec.wait(lambda: len(emu.connections) == 2 and session.is_open)
    st = session.stats
    assert st.last_close_code == 1011 and st.last_close_reason == reason and st.last_backoff_quota is quota
    assert st.last_backoff_seconds is not None
    assert (st.last_backoff_seconds > 0.5) is quota  # past the ordinary cap only for a quota reason
    assert ("quota exhausted" in caplog.text) is quota
    assert session.stats.status()["last_close_code"] == 1011
    await session.close()


async def test_unresumable_updates_keep_the_last_good_handle(tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    await session.open()
    await rec.wait(lambda: session.handle is not None)
    good = session.handle
    emu.inject(Fault("unresumable", target="current", during="now"))
    emu.inject(Fault("drop", target="current", during="reply", after_chunks=2))
    await say(session, question())
    await rec.wait(lambda: rec.of(TurnComplete) and len(emu.connections) == 2)
    assert emu.connections[1].resumed_handle == good
    assert model_text(rec).strip().endswith(TEA)
    await session.close()


@pytest.mark.parametrize("kind", ["burst", "slow_audio"])
async def test_bursty_and_slow_reply_audio_arrives_whole(tmp_path: Path, emu: EmulatorThread, kind: str) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    await session.open()
    emu.inject(Fault(kind, target="current", during="now"))  # type: ignore[arg-type]
    session.send_text("what time is it")
    await rec.wait(lambda: rec.of(TurnComplete))
    assert rec.audio() == tts.synthesize(TEA, rate=24000)
    sizes = [len(e.pcm) for e in rec.of(ReplyAudio)]
    assert (max(sizes) >= 40_000) is (kind == "burst")
    await session.close()


async def test_the_daemon_says_when_the_users_turn_ended(tmp_path: Path, emu: EmulatorThread) -> None:
    """Without transcripts to go by, ``user_turn_ended()`` is what arms the watchdog."""
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec, response_timeout=1.0, watch_transcripts=False)
    await session.open()
    emu.inject(Fault("stall_reply", target="current", during="now"))
    await say(session, question())
    await rec.wait(lambda: events_of(emu, "stallReply"))
    assert not session.watchdog.armed  # the transcript alone did not arm it
    session.user_turn_ended()
    await rec.wait(lambda: rec.of(ResponseStalled))
    await rec.wait(lambda: rec.of(TurnComplete))  # resumed, asked again, answered
    assert model_text(rec).strip().endswith(TEA)
    await session.close()


def test_quota_backoff_starts_higher_and_is_capped_higher() -> None:
    for attempt in range(1, 12):
        plain = backoff(attempt, 60.0, quota=False)
        quota = backoff(attempt, 60.0, quota=True)
        assert 0 < plain <= 60.0 and 0 < quota <= 240.0
    assert min(backoff(1, 60.0, quota=True) for _ in range(50)) >= 1.0 > max(
        backoff(1, 60.0, quota=False) for _ in range(50))
    assert max(backoff(12, 60.0, quota=True) for _ in range(50)) > 60.0


async def test_a_drop_during_a_blocking_call_releases_the_microphone(tmp_path: Path, cert_dir: Path) -> None:
    """The call was pending on the old socket; on the new one the replayed question needs the
    silence after it to reach the service's VAD."""
    with EmulatorThread(LOOKUP, api_key=KEY, cert_dir=cert_dir, pace=6.0) as emu:
        rec = Recorder()
        session = lookup_session(tmp_path, emu, rec)
        await session.open()
        await say(session, question())
        await rec.wait(lambda: session.dispatch.tool_tasks)
        assert session.dispatch.holding_mic()
        old = set(session.dispatch.blocking)
        emu.inject(Fault("drop", target="current", during="now"))
        await rec.wait(lambda: len(emu.connections) == 2 and session.is_open)
        assert not old & set(session.dispatch.blocking)  # (the replayed question may bring a new call)
        deadline = time.monotonic() + 30.0
        while not model_text(rec).strip().endswith("The lookup said 42."):  # the mic streams on
            assert time.monotonic() < deadline, "the replayed question was never answered"
            session.send_audio(silence(0.08))
            await asyncio.sleep(0.08)
        await session.close()
