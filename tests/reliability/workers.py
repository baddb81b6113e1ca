"""Worker threads that die: the real daemon, a thread made to fail once (hooks/sitecustomize.py).

Each case expects the failure logged once with its cause, the thread restarted, the watchdog kept
(the daemon is not restarted) and the speaker working again, as the person would check it.
"""

from __future__ import annotations

import signal
from pathlib import Path

from tests.reliability.harness import Case, ask, make_rig, said, truthful, wait_until
from tests.sounds import SCENARIO

CRASH_HOOK = Path(__file__).resolve().parent / "hooks"  # sitecustomize: SIGUSR1 fails a thread once
ANSWER = SCENARIO.turns[0].reply_text


def wakeword_thread_dies(workdir: Path) -> str:
    with make_rig(workdir, env={"PYTHONPATH": str(CRASH_HOOK), "SPEAKERD_TEST_CRASH": "wakeword"}) as rig:
        assert rig.proc is not None
        pid = rig.proc.pid
        rig.proc.send_signal(signal.SIGUSR1)
        crash = rig.wait_log(r"^speakerd-wakeword failed; restarting", timeout=20)
        assert "injected by the test" in rig.log_text()
        mark = ask(rig, "what time is it")
        wait_until(rig, lambda: ANSWER.rstrip(".") in said(rig, mark), what="the answer")
        assert rig.proc.pid == pid and rig.proc.poll() is None  # not restarted: the thread was
        tracebacks = rig.log_text().count("Traceback")
        state = truthful(rig)
        return (f"crash logged once ({tracebacks} traceback), thread restarted; next wake word answered; "
                f"same process; now {state}; line {crash}")


def playback_thread_dies(workdir: Path) -> str:
    with make_rig(workdir, env={"PYTHONPATH": str(CRASH_HOOK), "SPEAKERD_TEST_CRASH": "playback"}) as rig:
        assert rig.proc is not None
        pid = rig.proc.pid
        rig.proc.send_signal(signal.SIGUSR1)  # the next period the writer takes fails
        mark = ask(rig, "what time is it", timeout=60)
        rig.wait_log(r"^speakerd-playback failed; restarting", timeout=20, start=mark)
        rig.wait_log(r"^output device: speakerd-playback failed", timeout=20, start=mark)
        listening = rig.wait_state("listening", timeout=30, start=mark)
        played_before = rig.ctl("status")["audio"]["played_samples"]
        mark = ask(rig, "and tomorrow", start=listening)
        wait_until(rig, lambda: rig.ctl("status")["audio"]["played_samples"] > played_before,
                   what="the next answer reaching the speaker")
        assert rig.proc.pid == pid and rig.proc.poll() is None
        state = truthful(rig)
        return f"crash logged, reported as an output fault; back to listening; the next answer played; now {state}"


CASES = [
    Case("wakeword-thread-dies", "devices", "the wake-word thread dies of an unexpected exception",
         "logged once with its cause, restarted; the next wake word answered; no daemon restart",
         wakeword_thread_dies),
    Case("playback-thread-dies", "devices", "the playback writer dies mid-reply",
         "logged once, an output fault; back to listening; the next answer plays; no daemon restart",
         playback_thread_dies),
]
