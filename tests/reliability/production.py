"""Production's behaviours (reference live-service-behaviours.md) against the real daemon: the
emulator acts each one out, the speaker must come through with an outcome the user can see.

Cases whose outcome needs the daemon to handle a new Live event (ResponseStalled, TurnRejected) or
a state-machine change carry ``wiring``: they are expected to fail until the daemon is wired.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from speakerd_workshop.emulator import Fault, Scenario
from speakerd_workshop.rig import Rig

from tests.reliability.harness import (
    Case,
    answered,
    ask,
    delivered,
    follow_up,
    make_rig,
    no_tracebacks,
    statuses,
    truthful,
    wait_status,
    wait_until,
)
from tests.reliability.network import ANSWER, _conns, _dedupe
from tests.sounds import SCENARIO, silence, speech, wake

STORY = SCENARIO.turns[2].reply_text
LONG_FOLLOW_UP = "[conversation]\nfollow_up_seconds = 120.0\nidle_timeout_seconds = 120.0\n"
LOOKUP = Scenario.from_dict({"turns": [{
    "user_transcript": "what time is it",
    "tool_calls": [{"name": "slow_lookup", "args": {}}],
    "after_tool_text": "The lookup said {result}.",
}], "default_reply": "That is all I know."})
SLOW_TOOL = (f'[[tools.commands]]\nname = "slow_lookup"\ndescription = "a slow lookup"\n'
             f'argv = ["{sys.executable}", "-c", "import time; time.sleep(3); print(42)"]\n')


def _events(rig: Rig, kind: str) -> list[object]:
    assert rig.emulator is not None
    return [e for e in rig.emulator.events if e.kind == kind]


def _fault_now(rig: Rig, fault: Fault) -> None:
    """Arm ``fault`` on the connection of the conversation in progress."""
    assert rig.emulator is not None
    rig.emulator.inject(fault)


def _start_conversation(rig: Rig) -> int:
    """Wake the speaker and wait for a ready session; returns the log index."""
    assert rig.mic is not None
    mark = len(rig.lines)
    rig.mic.say(wake() + silence(0.5))
    rig.wait_state("listening", timeout=40, start=mark)
    wait_until(rig, lambda: rig.emulator is not None and rig.emulator.connections
               and rig.emulator.connections[-1].setup is not None, what="a session")
    return mark


def slow_pongs(workdir: Path) -> str:
    """Pongs after 25 s: the SDK default (20 s timeout) would cut the session at the first ping."""
    with make_rig(workdir, config=LONG_FOLLOW_UP) as rig:
        assert rig.emulator is not None
        mark = _start_conversation(rig)
        _fault_now(rig, Fault("slow_pong", target="current", during="now", seconds=25.0))
        started = time.monotonic()
        wait_until(rig, lambda: _events(rig, "slowPong"), timeout=60, what="a ping answered slowly")
        time.sleep(max(0.0, 60.0 - (time.monotonic() - started)))  # past 30 s + 25 s: a pong came late
        mark2 = follow_up(rig, "what time is it")
        answered(rig, mark2, ANSWER)
        conns = rig.emulator.connections
        assert len(conns) == 1 and conns[0].closed is None, _conns(rig)
        assert "keepalive" not in rig.log_text()
        no_tracebacks(rig)
        return (f"{len(_events(rig, 'slowPong'))} pong(s) 25 s late; one connection for "
                f"{time.monotonic() - rig.lines[mark].at:.0f} s; question answered on it")


def blocking_call_mic(workdir: Path) -> str:
    with make_rig(workdir, scenario=LOOKUP, config=SLOW_TOOL) as rig:
        assert rig.emulator is not None and rig.mic is not None
        _start_conversation(rig)
        _fault_now(rig, Fault("abort_on_input", target="current", during="now"))
        mark = follow_up(rig, "what time is it")
        answered(rig, mark, "The lookup said 42.")
        codes = [c.close_code for c in rig.emulator.connections]
        assert 1008 not in codes, _conns(rig)
        assert len(rig.emulator.connections) == 1, _conns(rig)
        truthful(rig)
        no_tracebacks(rig)
        return f"mic held back during the 3 s tool call; no 1008; answered; connections {_conns(rig)}"


def aborted_1008(workdir: Path) -> str:
    """A 1008 after setup (what production sends on input during a blocking call): resumed once."""
    with make_rig(workdir) as rig:
        assert rig.emulator is not None and rig.notify is not None
        _start_conversation(rig)
        n0 = len(rig.notify.messages)
        _fault_now(rig, Fault("close", code=1008, reason="The operation was aborted.", target="current",
                              during="now"))
        wait_until(rig, lambda: len(rig.emulator.connections) >= 2  # type: ignore[union-attr]
                   and rig.emulator.connections[1].setup is not None, what="a resumed connection")  # type: ignore[union-attr]
        assert rig.emulator.connections[1].resumed_handle is not None
        mark = follow_up(rig, "what time is it")
        answered(rig, mark, ANSWER)
        sts = statuses(rig, n0)
        assert not any(s.startswith("error") for s in sts), sts
        truthful(rig)
        no_tracebacks(rig)
        return f"resumed once, answered; STATUS {' > '.join(_dedupe(sts))}; connections {_conns(rig)}"


def reply_stall(*, twice: bool, by_text: bool) -> Callable[[Path], str]:
    """The user's turn is transcribed, then nothing, socket open."""

    def run(workdir: Path) -> str:
        with make_rig(workdir, config=LONG_FOLLOW_UP) as rig:
            assert rig.emulator is not None and rig.notify is not None and rig.mic is not None
            _start_conversation(rig)
            _fault_now(rig, Fault("stall_reply", target="current", during="now"))
            if twice:
                rig.emulator.inject(Fault("stall_reply"))  # the resumed connection stalls too
            n0 = len(rig.notify.messages)
            mark = len(rig.lines)
            t0 = time.monotonic()
            if by_text:
                rig.ctl("say", "what time is it")
            else:
                rig.mic.say(silence(0.3) + speech("what time is it") + silence(2.0))
            rig.wait_log(r"no reply from the Live service", timeout=40, start=mark)
            if not twice:
                answered(rig, mark, ANSWER)
                assert len(rig.emulator.connections) == 2 and rig.emulator.connections[1].resumed_handle
                recovered = time.monotonic() - t0
                sts = statuses(rig, n0)
                assert not any(s.startswith("error") for s in sts), sts
                truthful(rig)
                no_tracebacks(rig)
                return (f"warning, resumed and asked again; answered {recovered:.0f} s after the question; "
                        f"connections {_conns(rig)}")
            rig.wait_log(r"giving up on this turn", timeout=40, start=mark)
            sts = wait_status(rig, "error", n0, timeout=10)  # the error LED, for a moment
            shown = rig.wait_state("error", timeout=10, start=mark)
            rig.wait_state("idle", timeout=15, start=shown + 1)  # then back to waiting for the wake word
            state = truthful(rig, timeout=15)
            assert state in ("listening", "idle"), state
            assert rig.ctl("status")["state"] != "thinking"
            no_tracebacks(rig)
            return (f"warning, one resume, then the error cue after {time.monotonic() - t0:.0f} s; "
                    f"STATUS {' > '.join(_dedupe(sts))}; now {state}")

    return run


def rejected_turns(workdir: Path) -> str:
    with make_rig(workdir, config=LONG_FOLLOW_UP) as rig:
        assert rig.emulator is not None and rig.notify is not None
        _start_conversation(rig)
        _fault_now(rig, Fault("reject", target="current", during="now", count=3))
        for n in range(1, 4):
            mark = len(rig.lines)
            rig.ctl("say", "what time is it")
            rig.wait_log(rf"without a reply \(RESPONSE_REJECTED\), {n} in a row", timeout=30, start=mark)
            rig.wait_state("listening", timeout=30, start=mark)
        wait_until(rig, lambda: len(rig.emulator.connections) == 2  # type: ignore[union-attr]
                   and rig.emulator.connections[1].setup is not None, what="a fresh session")  # type: ignore[union-attr]
        assert rig.emulator.connections[1].resumed_handle is None, "three rejections must start afresh"
        cues = [x for x in rig.lines if x.message.startswith("the model gave no answer (RESPONSE_REJECTED)")]
        assert len(cues) >= 3, "no error cue per rejection"  # the machine's Log goes with its error earcon
        mark = len(rig.lines)
        rig.ctl("say", "what time is it")
        answered(rig, mark, ANSWER)
        no_tracebacks(rig)
        return f"3 rejections logged and cued; fresh session; next question answered; connections {_conns(rig)}"


def late_turn_complete(workdir: Path) -> str:
    """turnComplete 4 s after generationComplete: "speaking" ends when the speaker has drained."""
    with make_rig(workdir) as rig:
        assert rig.emulator is not None
        _start_conversation(rig)
        _fault_now(rig, Fault("late_turn_complete", target="current", during="now", seconds=4.0))
        mark = follow_up(rig, "what time is it")
        answered(rig, mark, ANSWER)
        listening = next(x.at for x in rig.lines[mark:] if x.message == "state listening"
                         and any(y.message == "state speaking" for y in rig.lines[mark:]))
        late = [e for e in rig.emulator.events if e.kind == "turnComplete"]
        turn_complete_at = late[-1].time
        assert listening < turn_complete_at, (
            f"speaking lasted until turnComplete: listening {listening - turn_complete_at:+.1f} s after it")
        no_tracebacks(rig)
        return f"listening {turn_complete_at - listening:.1f} s before the late turnComplete"


def go_away_silent(workdir: Path) -> str:
    with make_rig(workdir, emulator_options={"go_away_before_seconds": 5.0}) as rig:
        assert rig.emulator is not None
        _start_conversation(rig)
        mark = len(rig.lines)
        assert rig.mic is not None
        rig.mic.say(silence(0.3) + speech("what time is it") + silence(2.0))
        wait_until(rig, lambda: _events(rig, "userTurnEnd"), what="the user's turn")
        _fault_now(rig, Fault("go_away_silent", target="current", during="now"))
        answered(rig, mark, ANSWER)
        first = rig.emulator.connections[0]
        assert first.closed_by == "client", f"waited for the server's deadline: {_conns(rig)}"
        assert all(c.resumed_handle for c in rig.emulator.connections[1:])
        truthful(rig)
        no_tracebacks(rig)
        return f"moved on the goAway timer before the 1011 deadline; answered; connections {_conns(rig)}"


def resume_refused_while_open(workdir: Path) -> str:
    with make_rig(workdir) as rig:
        assert rig.emulator is not None
        _start_conversation(rig)
        rig.emulator.inject(Fault("refuse_resume"))
        _fault_now(rig, Fault("go_away", target="current", during="now"))
        wait_until(rig, lambda: len(rig.emulator.connections) >= 2  # type: ignore[union-attr]
                   and rig.emulator.connections[1].setup is not None, what="the move")  # type: ignore[union-attr]
        assert not _events(rig, "resumeRefused"), _conns(rig)
        mark = follow_up(rig, "what time is it")
        answered(rig, mark, ANSWER)
        no_tracebacks(rig)
        return f"old socket closed before the resume: not refused; answered; connections {_conns(rig)}"


def deadline_then_1007(workdir: Path) -> str:
    """58-min close (1011 "Deadline expired") mid-question, and the resume fails with 1007."""
    with make_rig(workdir) as rig:
        assert rig.emulator is not None and rig.mic is not None
        _start_conversation(rig)
        _fault_now(rig, Fault("stall_reply", target="current", during="now", seconds=30))
        rig.emulator.inject(Fault("close", code=1007, during="setup"))
        mark = len(rig.lines)
        rig.mic.say(silence(0.3) + speech("what time is it") + silence(2.0))
        wait_until(rig, lambda: _events(rig, "stallReply"), what="the question heard")
        _fault_now(rig, Fault("close", code=1011, reason="Deadline expired", target="current", during="now"))
        answered(rig, mark, ANSWER)
        conns = rig.emulator.connections
        assert [c.close_code for c in conns[:2]] == [1011, 1007] and conns[2].resumed_handle is None, _conns(rig)
        assert rig.ctl("status")["state"] != "error"
        delivered(rig, "what time is it")
        no_tracebacks(rig)
        return f"fresh session after the failed resume, question replayed and answered; connections {_conns(rig)}"


def close_1011(reason: str, *, quota: bool) -> Callable[[Path], str]:
    def run(workdir: Path) -> str:
        with make_rig(workdir) as rig:
            assert rig.emulator is not None
            rig.emulator.inject(Fault("close", code=1011, reason=reason, during="reply"))
            mark = ask(rig, "what time is it")
            answered(rig, mark, ANSWER)
            log = rig.log_text()
            assert ("backing off longer" in log) is quota, "quota backoff not said in the log"
            assert rig.ctl("status")["state"] != "error"
            no_tracebacks(rig)
            return f"{'longer backoff, said in the log' if quota else 'backoff'}; answered; connections {_conns(rig)}"

    return run


def quota_in_status(workdir: Path) -> str:
    with make_rig(workdir) as rig:
        assert rig.emulator is not None
        rig.emulator.inject(Fault("close", code=1011, reason="RESOURCE_EXHAUSTED: quota exceeded", during="reply"))
        mark = ask(rig, "what time is it")
        answered(rig, mark, ANSWER)
        live = rig.ctl("status").get("live") or {}
        assert live.get("last_close_code") == 1011 and "quota" in str(live.get("last_close_reason")), live
        assert live.get("last_backoff_quota") is True, live
        return f"speakerctl status: {live}"


def unresumable_window(workdir: Path) -> str:
    with make_rig(workdir) as rig:
        assert rig.emulator is not None
        _start_conversation(rig)
        wait_until(rig, lambda: _events(rig, "handle"), what="a first handle")
        _fault_now(rig, Fault("unresumable", target="current", during="now"))
        _fault_now(rig, Fault("drop", target="current", during="reply", after_chunks=2))
        mark = follow_up(rig, "what time is it")
        answered(rig, mark, ANSWER)
        assert rig.emulator.connections[1].resumed_handle, _conns(rig)
        delivered(rig, "what time is it")
        no_tracebacks(rig)
        return f"resumed with the last resumable handle, question replayed, answered; connections {_conns(rig)}"


def cancelled_tool_call(workdir: Path) -> str:
    """A NON_BLOCKING call (a BLOCKING one holds the microphone back, so no barge-in reaches it)."""
    scenario = Scenario.from_dict({"turns": [
        {"user_transcript": "what time is it", "tool_calls": [{"name": "slow_lookup", "args": {}}],
         "reply_text": "Let me look that up for you, it will take a little while, please bear with me.",
         "after_tool_text": "The lookup said {result}."},
        {"user_transcript": "and tomorrow", "reply_text": "Tomorrow will be sunny."},
    ]})
    tool = SLOW_TOOL + "non_blocking = true\n"
    with make_rig(workdir, scenario=scenario, config=tool, emulator_options={"pace": 1.0}) as rig:
        assert rig.emulator is not None and rig.mic is not None
        mark = len(rig.lines)
        rig.mic.say(wake() + speech("what time is it") + silence(1.0))
        rig.wait_log(r"^tool slow_lookup\(", timeout=40, start=mark)
        rig.wait_state("speaking", timeout=40, start=mark)
        rig.mic.say(speech("and tomorrow") + silence(2.0))  # barge in while the tool runs
        wait_until(rig, lambda: _events(rig, "toolCallCancellation"), what="the cancellation")
        answered(rig, mark, "Tomorrow will be sunny.")
        time.sleep(3.5)  # the cancelled tool would have finished by now
        assert not _events(rig, "unknownToolResponse"), "an answer was sent for a cancelled call"
        assert not any(r.connection and "toolResponse" in r.message for r in rig.emulator.received), \
            "a toolResponse was sent for the cancelled call"
        no_tracebacks(rig)
        return "call cancelled on barge-in, never answered; the new question answered"


def reply_audio(kind: str, *, strict_underruns: bool) -> Callable[[Path], str]:
    """Three replies with ``kind`` audio. Underruns are counted for all (at real-time pace without
    any fault the emulator's audio gave 130 over these replies: the player's pre-buffer is short);
    only ``strict_underruns`` requires none."""

    def run(workdir: Path) -> str:
        with make_rig(workdir, emulator_options={"pace": 1.0}) as rig:
            assert rig.emulator is not None
            _start_conversation(rig)
            _fault_now(rig, Fault(kind, target="current", during="now"))  # type: ignore[arg-type]
            follow_up(rig, "what time is it")
            mark = follow_up(rig, "and tomorrow")
            answered(rig, mark, SCENARIO.turns[1].reply_text)
            mark = follow_up(rig, "tell me a story", timeout=90)
            answered(rig, mark, STORY, timeout=90)
            underruns = rig.ctl("status")["audio"]["underruns"]
            played = len(rig.speaker_pcm())
            if strict_underruns:
                assert underruns == 0, f"{underruns} underruns (clicks)"
            no_tracebacks(rig)
            return f"the whole story played ({played} bytes at the speaker), {underruns} underruns"

    return run


CASES = [
    Case("slow-pongs", "network", "WebSocket pongs 25 s late, conversation open 60 s",
         "same connection throughout; no keepalive timeout; answered", slow_pongs),
    Case("blocking-call-mic", "network", "1008 on mic audio while a BLOCKING call is pending",
         "mic held back during the call; no 1008; answered", blocking_call_mic),
    Case("close-1008-aborted", "network", "1008 'The operation was aborted' after setup",
         "resumed once; answered; no error", aborted_1008),
    Case("reply-stall", "network", "user's turn transcribed, then nothing (socket open)",
         "warning after 10 s; resume and replay; answered", reply_stall(twice=False, by_text=False)),
    Case("reply-stall-persists", "network", "a stall that the resumed connection repeats",
         "warning, one resume, then error cue/LED, the conversation ends", reply_stall(twice=True, by_text=False)),
    Case("say-stall", "network", "`speakerctl say` question into a stall that persists",
         "never stuck in thinking: error cue, the conversation ends", reply_stall(twice=True, by_text=True)),
    Case("rejected-turns", "network", "3 turns RESPONSE_REJECTED with no audio",
         "each logged with a short error cue; fresh session after 3; next question answered", rejected_turns),
    Case("late-turn-complete", "network", "turnComplete 4 s after generationComplete",
         "speaking ends when generation is complete and the speaker drained", late_turn_complete),
    Case("go-away-silent", "network", "goAway, then silence until 1011 'Deadline expired'",
         "moves on the timer before the deadline; answered", go_away_silent),
    Case("resume-refused-while-open", "network", "a resume is refused (1011) while the old socket is open",
         "old socket closed first; resume accepted; answered", resume_refused_while_open),
    Case("deadline-then-1007", "network", "1011 'Deadline expired' mid-question, resume fails 1007",
         "fresh session, question replayed and answered", deadline_then_1007),
    Case("close-1011-unavailable", "network", "1011 'The service is currently unavailable' mid-reply",
         "backoff, resume; answered", close_1011("The service is currently unavailable.", quota=False)),
    Case("close-1011-quota", "network", "1011 with a RESOURCE_EXHAUSTED quota reason mid-reply",
         "longer backoff, said in the log; answered",
         close_1011("RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'Live sessions'.", quota=True)),
    Case("quota-in-status", "network", "1011 quota close, then `speakerctl status`",
         "status shows the last close reason and the quota backoff", quota_in_status),
    Case("unresumable-window", "network", "resumable:false updates, then a drop mid-reply",
         "resume from the last resumable handle; replay; answered", unresumable_window),
    Case("cancelled-tool-call", "network", "toolCallCancellation on barge-in during a 3 s tool",
         "never answered; the new question answered", cancelled_tool_call),
    Case("bursty-audio", "network", "reply audio in 40 KB messages, 15x real time",
         "whole reply played; underruns counted", reply_audio("burst", strict_underruns=False)),
    Case("slow-audio", "network", "reply audio at 0.8x real time",
         "whole reply played; a 200 ms pre-buffer before it starts and after each gap (faded in); "
         "gaps counted as underruns", reply_audio("slow_audio", strict_underruns=False)),
]
