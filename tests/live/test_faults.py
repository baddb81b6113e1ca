"""Faults and their outcomes, and the store at start-up, with the real SDK against the emulator."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest
from speakerd_workshop.emulator import EmulatorThread, Fault, tts

from speakerd.events import Interrupted, ReplyAudio, SessionState, Transcript, TurnComplete
from speakerd.live import LiveError, ResumptionStore
from tests.live.test_session import KEY, RATE, SCENARIO, Recorder, make_cfg, make_session, say
from tests.sounds import silence

TEA = SCENARIO.turns[0].reply_text


def model_text(rec: Recorder) -> str:
    return "".join(t.text for t in rec.of(Transcript) if t.role == "model")


async def test_1011_mid_reply_resumes_and_the_question_is_answered(tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    await session.open()
    question = tts.synthesize("what time is it", rate=RATE) + silence(0.6)
    emu.inject(Fault("close", code=1011, target="current", during="reply", after_chunks=2))
    await say(session, question)
    await rec.wait(lambda: rec.of(TurnComplete) and len(emu.connections) == 2)
    first, second = emu.connections
    assert first.close_code == 1011 and second.resumed_handle is not None
    # The resumed session had not heard the question: it was sent again, first, and answered.
    assert emu.received_audio(second.id).startswith(question)
    assert model_text(rec).strip().endswith(TEA)
    assert [e.phase for e in rec.of(SessionState)][:3] == ["connecting", "ready", "reconnecting"]
    await session.close()


async def test_malformed_frame_reconnects(tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    await session.open()
    emu.inject(Fault("malformed", target="current", during="now"))
    await rec.wait(lambda: len(emu.connections) == 2 and session.is_open)
    assert emu.connections[1].resumed_handle == emu.connections[0].resumed_handle or \
        emu.connections[1].resumed_handle is not None
    await say(session, tts.synthesize("what time is it", rate=RATE) + silence(0.6))
    await rec.wait(lambda: rec.of(TurnComplete))
    await session.close()


async def test_1007_mid_session_starts_fresh_once(tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    await session.open()
    emu.inject(Fault("close", code=1007, target="current", during="now"))
    await rec.wait(lambda: len(emu.connections) == 2 and session.is_open)
    assert emu.connections[1].resumed_handle is None  # the handle was dropped
    assert not any(e.phase == "failed" for e in rec.of(SessionState))
    await session.close()


@pytest.mark.slow
async def test_repeated_1011_backs_off_with_jitter_up_to_the_cap(tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)  # reconnect_max_seconds = 0.5
    await session.open()
    for n in range(1, 8):  # every new connection fails at once, seven times
        await rec.wait(lambda n=n: len(emu.connections) == n and session.is_open)
        emu.inject(Fault("close", code=1011, target="current", during="now"))
    await rec.wait(lambda: len(emu.connections) == 8 and session.is_open)
    backoffs = list(session.stats.backoffs)
    assert len(backoffs) == 7 and all(0 < b <= 0.5 for b in backoffs)
    assert backoffs[0] <= 0.25 and max(backoffs) > 0.25  # grows from 0.125-0.25 s to the cap
    assert len(set(backoffs)) == len(backoffs)  # jitter
    assert not any(e.phase == "failed" for e in rec.of(SessionState))
    await session.close()


async def test_1008_after_setup_resumes_once_then_stops_with_one_line(tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec)
    await session.open()
    # The key and model were accepted at setup: a 1008 now is the service aborting, resumed once.
    emu.inject(Fault("close", code=1008, reason="The operation was aborted.", target="current", during="now"))
    await rec.wait(lambda: len(emu.connections) == 2 and session.is_open)
    assert emu.connections[1].resumed_handle is not None
    assert not any(e.phase == "failed" for e in rec.of(SessionState))
    # A second one with no turn in between is not a fluke: one line, fatal, no more connections.
    emu.inject(Fault("close", code=1008, reason="Permission denied.", target="current", during="now"))
    await rec.wait(lambda: any(e.phase == "failed" for e in rec.of(SessionState)))
    failed = next(e for e in rec.of(SessionState) if e.phase == "failed")
    assert failed.fatal and "1008" in failed.detail and "\n" not in failed.detail and KEY not in failed.detail
    await asyncio.sleep(1.0)
    assert len(emu.connections) == 2
    assert session.stats.last_close_code == 1008 and session.stats.last_close_reason == "Permission denied."
    await session.close()


async def test_unknown_model_is_fatal(tmp_path: Path, emu: EmulatorThread) -> None:
    session = make_session(make_cfg(tmp_path, emu, model="gemini-2.0-flash-live-001"), Recorder())
    with pytest.raises(LiveError, match="not found") as e:
        await session.open()
    assert e.value.fatal
    await session.close()


async def test_go_away_1000_when_the_reply_outlasts_time_left_is_routine(tmp_path: Path, cert_dir: Path) -> None:
    # The story lasts longer than the 1 s goAway notice: the session moves before the server's
    # 1000 close (or right after it), with no failure and no backoff.
    with EmulatorThread(SCENARIO, api_key=KEY, cert_dir=cert_dir, pace=1.0, go_away_before_seconds=1.0) as emu:
        rec = Recorder()
        session = make_session(make_cfg(tmp_path, emu), rec)
        await session.open()
        await say(session, tts.synthesize("what time is it", rate=RATE) + silence(0.6))
        await rec.wait(lambda: rec.of(ReplyAudio))
        emu.inject(Fault("go_away", target="current", during="now"))
        await rec.wait(lambda: len(emu.connections) == 2 and session.is_open, timeout=20)
        assert emu.connections[1].resumed_handle is not None
        assert not any(e.phase in ("failed", "reconnecting") for e in rec.of(SessionState))
        assert not session.stats.backoffs
        await session.close()


async def test_push_to_talk_and_text(tmp_path: Path, emu: EmulatorThread) -> None:
    rec = Recorder()
    session = make_session(make_cfg(tmp_path, emu), rec, push_to_talk=True)
    await session.open()
    assert (emu.connections[0].setup or {})["realtimeInputConfig"]["automaticActivityDetection"]["disabled"]
    session.activity_start()
    await say(session, silence(0.3))  # the server does not judge the audio: the button does
    session.activity_end()
    await rec.wait(lambda: rec.of(TurnComplete))
    session.send_text("and tomorrow")
    await rec.wait(lambda: len(rec.of(TurnComplete)) == 2)
    assert model_text(rec).strip().endswith(SCENARIO.turns[1].reply_text)
    session.end_audio_stream()  # not sent with manual activity: the markers say it
    await session.close()
    assert not any(m.get("audioStreamEnd") for m in emu.messages("realtimeInput"))


async def test_barge_in_interrupts_and_the_conversation_goes_on(tmp_path: Path, cert_dir: Path) -> None:
    with EmulatorThread(SCENARIO, api_key=KEY, cert_dir=cert_dir, pace=1.0) as emu:
        rec = Recorder()
        session = make_session(make_cfg(tmp_path, emu), rec)
        await session.open()
        await say(session, tts.synthesize("what time is it", rate=RATE) + silence(0.6))
        await rec.wait(lambda: rec.of(ReplyAudio))
        await say(session, tts.synthesize("and tomorrow", rate=RATE) + silence(0.6))
        await rec.wait(lambda: rec.of(Interrupted))
        cut = rec.events.index(rec.of(Interrupted)[0])
        first_reply = b"".join(e.pcm for e in rec.events[:cut] if isinstance(e, ReplyAudio))
        assert 0 < len(first_reply) < len(tts.synthesize(TEA, rate=24000))  # the first reply was cut
        await rec.wait(lambda: len(rec.of(TurnComplete)) >= 2)
        assert model_text(rec).strip().endswith(SCENARIO.turns[1].reply_text)  # and the talk goes on
        await session.close()


@pytest.mark.parametrize("content", [b"\x00garbage", b'{"handle": "h"', b"[]"])
async def test_corrupt_store_file_starts_fresh(tmp_path: Path, emu: EmulatorThread, content: bytes,
                                               caplog: pytest.LogCaptureFixture) -> None:
    cfg = make_cfg(tmp_path, emu)
    cfg.settings.state.directory.mkdir(parents=True)
    (cfg.settings.state.directory / "resumption.json").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="speakerd.live"):
        session = make_session(cfg, Recorder())
        await session.open()
    assert emu.connections[0].resumed_handle is None
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    await Recorder().wait(lambda: session.handle is not None)
    await session.close()
    stored = json.loads((cfg.settings.state.directory / "resumption.json").read_text())
    assert stored["handle"] == session.handle  # replaced by a good one


async def test_expired_store_file_starts_fresh(tmp_path: Path, emu: EmulatorThread) -> None:
    cfg = make_cfg(tmp_path, emu)
    store = ResumptionStore(cfg.settings.state.directory, cfg.settings.live.model, now=lambda: time.time() - 7300)
    store.save("emu-an-old-handle")
    session = make_session(cfg, Recorder())
    await session.open()
    assert emu.connections[0].resumed_handle is None and len(emu.connections) == 1
    await session.close()
