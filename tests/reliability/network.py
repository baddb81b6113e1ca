"""Network faults against the real daemon process: the emulator misbehaves, the speaker copes."""

from __future__ import annotations

import os
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
    count_during,
    delivered,
    follow_up,
    make_rig,
    no_tracebacks,
    statuses,
    truthful,
    wait_until,
)
from tests.sounds import SCENARIO, silence, speech, wake

ANSWER = SCENARIO.turns[0].reply_text
GO_AWAYS = int(os.environ.get("SPEAKERD_GO_AWAYS", "60"))


def _conns(rig: Rig) -> str:
    assert rig.emulator is not None
    out = []
    for c in rig.emulator.connections:
        how = f"{c.close_code}" if c.close_code is not None else "open"
        out.append(f"#{c.id}{'(resumed)' if c.resumed_handle else ''}:{how}")
    return " ".join(out)


def _answered_after(fault: Fault, *, config: str = "", min_connections: int = 2) -> Callable[[Path], str]:
    """Shared shape: arm ``fault`` for the next connection, ask, and require the whole answer."""

    def run(workdir: Path) -> str:
        with make_rig(workdir, config=config) as rig:
            assert rig.emulator is not None and rig.notify is not None
            rig.emulator.inject(fault)
            n0 = len(rig.notify.messages)
            mark = ask(rig, "what time is it")
            answered(rig, mark, ANSWER)
            assert len(rig.emulator.connections) >= min_connections, _conns(rig)
            sts = statuses(rig, n0)
            assert not any(s.startswith("error") for s in sts), sts
            whole = delivered(rig, "what time is it")
            assert truthful(rig) in ("listening", "speaking", "idle")
            no_tracebacks(rig)
            return (f"answered in full; question audio whole on #{whole[-1]}; LEDs/STATUS agree; "
                    f"connections {_conns(rig)}; STATUS {' > '.join(_dedupe(sts))}")

    return run


def _dedupe(items: list[str]) -> list[str]:
    out: list[str] = []
    for s in items:
        if not out or out[-1] != s:
            out.append(s)
    return out


def drop_mid_tool_call(workdir: Path) -> str:
    scenario = Scenario.from_dict({"turns": [{
        "user_transcript": "what time is it",
        "tool_calls": [{"name": "slow_lookup", "args": {}}],
        "after_tool_text": "The lookup said {result}.",
    }]})
    tool = (f'[[tools.commands]]\nname = "slow_lookup"\ndescription = "a slow lookup"\n'
            f'argv = ["{sys.executable}", "-c", "import time; time.sleep(1.5); print(42)"]\n')
    with make_rig(workdir, scenario=scenario, config=tool) as rig:
        assert rig.emulator is not None and rig.mic is not None
        mark = len(rig.lines)
        rig.mic.say(wake() + speech("what time is it") + silence(2.0))
        rig.wait_log(r"^tool slow_lookup\(", timeout=40, start=mark)
        rig.emulator.inject(Fault("drop", target="current", during="now"))  # the tool is still running
        rig.wait_log(r"^tool slow_lookup done", timeout=20, start=mark)
        answered(rig, mark, "The lookup said 42.")
        responses = rig.emulator.messages("toolResponse")
        assert len(rig.emulator.connections) >= 2, _conns(rig)
        assert any(r.connection >= 2 for r in rig.emulator.received if "toolResponse" in r.message), \
            "the tool's result was not delivered on the new connection"
        delivered(rig, "what time is it")
        truthful(rig)
        no_tracebacks(rig)
        runs = sum(1 for x in rig.lines[mark:] if x.message == "tool slow_lookup done")
        return (f"tool ran {runs}x (the replayed question asked again), {len(responses)} toolResponse, "
                f"one delivered on the new connection; answer spoken; connections {_conns(rig)}")


def fatal_close(code: int, during: str) -> Callable[[Path], str]:
    """1008 (and 1007 with nothing to resume): one attempt, an error the owner can read, no loop."""

    def run(workdir: Path) -> str:
        with make_rig(workdir) as rig:
            assert rig.emulator is not None and rig.notify is not None and rig.mic is not None
            if during == "setup":
                rig.emulator.inject(Fault("close", code=code, during="setup"))
            mark = len(rig.lines)
            n0 = len(rig.notify.messages)
            rig.mic.say(wake() + speech("what time is it") + silence(2.0))
            if during == "now":
                # A 1008 after setup is resumed once (production aborts operations with it); the
                # second in a row, before any turn completed, is the configuration: fatal.
                rig.wait_state("listening", timeout=40, start=mark)
                rig.emulator.inject(Fault("close", code=code, target="current", during="now"))
                wait_until(rig, lambda: len(rig.emulator.connections) >= 2  # type: ignore[union-attr]
                           and rig.emulator.connections[-1].setup is not None, what="the resume")  # type: ignore[union-attr]
                rig.emulator.inject(Fault("close", code=code, target="current", during="now"))
            rig.wait_state("error", timeout=40, start=mark)
            before, after = count_during(lambda: len(rig.emulator.connections), 4.0)  # type: ignore[union-attr]
            assert before == after, f"{code} retried: {before} -> {after} connections"
            status = rig.notify.wait_for(lambda m: m.get("STATUS", "").startswith("error:"), start=n0)
            text = rig.notify.messages[status]["STATUS"]
            assert f"({code})" in text, text
            ctl = rig.ctl("status")
            assert ctl["state"] == "error" and f"({code})" in (ctl["last_error"] or ""), ctl
            assert truthful(rig) == "error"
            # The next wake word is a new attempt by the person, not a loop: exactly one more connection.
            rig.emulator.inject(Fault("close", code=code, during="setup"))
            mark2 = len(rig.lines)
            rig.mic.say(wake() + silence(1.0))
            rig.wait_state("error", timeout=40, start=mark2)
            b2, a2 = count_during(lambda: len(rig.emulator.connections), 3.0)  # type: ignore[union-attr]
            assert a2 == b2 == after + 1, (after, b2, a2)
            no_tracebacks(rig)
            return (f"state error, STATUS={text!r}; {after} connection(s), none added in 4 s; "
                    f"a new wake word tries once more")

    return run


def close_1007_mid_reply(workdir: Path) -> str:
    with make_rig(workdir) as rig:
        assert rig.emulator is not None
        rig.emulator.inject(Fault("close", code=1007, during="reply", after_chunks=2))
        mark = ask(rig, "what time is it")
        rig.wait_log(r"cannot be resumed", timeout=20, start=mark)
        wait_until(rig, lambda: len(rig.emulator.connections) >= 2, what="a new connection")  # type: ignore[union-attr]
        second = rig.emulator.connections[1]
        assert second.resumed_handle is None, "1007 must drop the handle"
        state = rig.ctl("status")["state"]
        assert state != "error", state
        # The conversation goes on in the fresh session.
        mark2 = follow_up(rig, "and tomorrow")
        answered(rig, mark2, SCENARIO.turns[1].reply_text)
        no_tracebacks(rig)
        return f"fresh session once (handle dropped), conversation continues; connections {_conns(rig)}"


def go_away_storm(workdir: Path) -> str:
    """goAway on every connection, ``GO_AWAYS`` in a row, while a conversation stays open.

    The connection lifetime is cut to 1 s only between the two questions: a lifetime shorter than
    one question and answer can never complete a turn (each move replays the unanswered question).
    """
    options = {"go_away_before_seconds": 0.5}
    cfg = "[conversation]\nfollow_up_seconds = 600.0\nidle_timeout_seconds = 600.0\n"
    with make_rig(workdir, config=cfg, emulator_options=options) as rig:
        assert rig.emulator is not None and rig.notify is not None
        emu = rig.emulator
        mark = ask(rig, "what time is it", timeout=90)
        answered(rig, mark, ANSWER, timeout=90)
        first = len(emu.connections)
        emu.emulator.connection_lifetime_seconds = 1.0
        emu.inject(Fault("go_away", target="current", during="now"))
        emu.wait_for(lambda: len(emu.connections) >= first + GO_AWAYS, timeout=GO_AWAYS * 3 + 30)
        emu.emulator.connection_lifetime_seconds = None
        # Settled: the newest connection has outlived the old lifetime (it was opened without one).
        wait_until(rig, lambda: emu.connections[-1].closed is None and emu.connections[-1].setup is not None
                   and time.monotonic() - emu.connections[-1].opened > 2.0, what="a lasting connection")
        mark2 = follow_up(rig, "and tomorrow", timeout=90)
        answered(rig, mark2, SCENARIO.turns[1].reply_text, timeout=90)
        conns = emu.connections
        go_aways = sum(1 for e in emu.events if e.kind == "goAway")
        assert go_aways >= GO_AWAYS, go_aways
        assert all(c.resumed_handle for c in conns[1:]), "a connection after a goAway did not resume"
        codes = {c.close_code for c in conns[:-1]}
        assert codes <= {1000}, _conns(rig)
        assert "connection lost" not in rig.log_text(), "a goAway was handled as a lost connection"
        sts = statuses(rig)
        assert not any(s.startswith("error") for s in sts), sts
        truthful(rig)
        no_tracebacks(rig)
        return (f"{go_aways} goAways, {len(conns)} connections all resumed, every close 1000, none seen as "
                f"lost; a question asked after the storm answered; STATUS never error")


CASES = [
    Case("drop-during-connect", "network", "TCP dropped instead of setupComplete",
         "reconnect; question answered", _answered_after(Fault("drop", during="setup"))),
    Case("stall-before-setup", "network", "server never sends setupComplete",
         "connect timeout (3 s), retry; question answered",
         _answered_after(Fault("stall", during="setup", seconds=0))),
    Case("drop-mid-reply", "network", "TCP dropped after 2 reply chunks",
         "resume; question replayed and answered in full",
         _answered_after(Fault("drop", during="reply", after_chunks=2))),
    Case("drop-mid-tool-call", "network", "TCP dropped while a tool runs",
         "resume; tool result delivered; answer spoken", drop_mid_tool_call),
    Case("close-1011-mid-reply", "network", "close 1011 after 2 reply chunks",
         "resume; answered in full", _answered_after(Fault("close", code=1011, during="reply"))),
    Case("go-away-1000", "network", "goAway right after setupComplete, then close 1000",
         "move to a resumed connection; answered",
         _answered_after(Fault("go_away", during="setup"))),
    Case("close-1007-mid-reply", "network", "close 1007 mid-reply (handle held)",
         "new session once without the handle; conversation goes on", close_1007_mid_reply),
    Case("close-1007-setup", "network", "close 1007 at setup, nothing to resume",
         "error state, STATUS=error, no retry loop", fatal_close(1007, "setup")),
    Case("close-1008-setup", "network", "close 1008 at setup",
         "error state, STATUS=error, no retry loop", fatal_close(1008, "setup")),
    Case("close-1008-mid-session", "network", "close 1008 twice while listening",
         "resumed once, then error state, STATUS=error, no retry loop", fatal_close(1008, "now")),
    Case("malformed-mid-reply", "network", "truncated JSON frame mid-reply",
         "reconnect; answered in full", _answered_after(Fault("malformed", during="reply"))),
    Case("oversized-mid-reply", "network", "frame over the size limit mid-reply",
         "reconnect; answered in full", _answered_after(Fault("oversized", during="reply"))),
    Case("go-away-storm", "network", f"{GO_AWAYS} goAways in a row (connection lifetime 1 s)",
         "every move resumed; question answered; no error", go_away_storm),
]
