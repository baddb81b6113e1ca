"""The process: killed at any moment it starts clean; a hung loop or a dead microphone stops the pings."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

from speakerd_workshop.emulator import Scenario
from speakerd_workshop.rig import MicFeeder, Rig

from tests.reliability.harness import Case, answered, hush, make_rig, no_tracebacks, opt_in, wait_until
from tests.sounds import silence, speech, wake

KILL_RUNS = int(os.environ.get("SPEAKERD_KILL_RUNS", "100" if opt_in("SPEAKERD_SOAK") else "10"))
REPLY = "That is all I know."
ANY_TURN = Scenario.from_dict({"default_reply": REPLY, "default_user_transcript": "a question"})


def _stored_handle(rig: Rig) -> str | None:
    """What a restart should resume from: the file is either whole and valid, or absent."""
    path = rig.state_dir / "resumption.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())  # never half-written: a JSONDecodeError fails the case
    return str(data["handle"])


def kill_at_random_points(workdir: Path) -> str:
    rng = random.Random(int(os.environ.get("SPEAKERD_SEED", "7")))
    cfg = "[conversation]\nfollow_up_seconds = 2.0\n"
    outcomes = {"resumed": 0, "fresh": 0}
    signals = {"SIGTERM": 0, "SIGKILL": 0}
    with make_rig(workdir, scenario=ANY_TURN, config=cfg) as rig:
        assert rig.emulator is not None and rig.mic is not None and rig.notify is not None
        for run in range(KILL_RUNS):
            sig = signal.SIGTERM if run % 2 == 0 else signal.SIGKILL
            signals[sig.name] += 1
            rig.mic.say(wake() + speech("what time is it") + silence(2.0))
            time.sleep(rng.uniform(0.5, 6.0))  # anywhere from the wake word to after the reply
            n0 = len(rig.notify.messages)
            rig.send_signal(sig)
            rc = rig.wait_exit(30)
            if sig == signal.SIGTERM:
                assert rc == 0, f"run {run}: SIGTERM exit {rc}"
                rig.notify.wait_for(lambda m: m.get("STOPPING") == "1", start=n0, timeout=5)
            else:
                assert rc == -signal.SIGKILL, rc
            hush(rig)
            handle = _stored_handle(rig)
            conns = len(rig.emulator.connections)
            mark = len(rig.lines)
            rig.start()
            rig.mic.say(wake() + speech("what time is it") + silence(2.0))
            answered(rig, mark, REPLY, timeout=60)
            new = rig.emulator.connections[conns]
            if handle is None:
                assert new.resumed_handle is None
                outcomes["fresh"] += 1
            else:
                assert new.resumed_handle == handle, f"run {run}: stored {handle}, sent {new.resumed_handle}"
                outcomes["resumed"] += 1
            rig.wait_state("idle", timeout=30, start=mark)
        no_tracebacks(rig)
    return (f"{KILL_RUNS} runs ({signals['SIGTERM']} SIGTERM exit 0 with STOPPING=1, {signals['SIGKILL']} "
            f"SIGKILL); each restart answered: {outcomes['resumed']} resumed the stored handle, "
            f"{outcomes['fresh']} fresh (no handle stored yet); resumption file never half-written")


HANG_HOOK = Path(__file__).resolve().parent / "hooks"  # sitecustomize: SIGUSR2 hangs the loop


def _threads(pid: int) -> dict[int, str]:
    """Each thread's scheduler state (R, S, T...), from /proc."""
    states = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        states[int(task.name)] = stat[stat.rindex(")") + 2]
    return states


def _pings(rig: Rig) -> int:
    assert rig.notify is not None
    return rig.notify.count("WATCHDOG")


def watchdog(workdir: Path) -> str:
    """WATCHDOG_USEC=1 s: pings every 0.5 s; none while frozen, the microphone is dead or the loop hangs."""
    with make_rig(workdir, env={"WATCHDOG_USEC": "1000000", "PYTHONPATH": str(HANG_HOOK)}) as rig:
        assert rig.proc is not None and rig.devices is not None and rig.mic is not None
        wait_until(rig, lambda: _pings(rig) >= 3, timeout=10, what="three watchdog pings")
        # A frozen process: nothing in it runs, so nothing pings (systemd would kill it).
        os.kill(rig.proc.pid, signal.SIGSTOP)
        time.sleep(1.0)  # a ping sent just before the stop may still be on its way to the reader
        frozen = _pings(rig)
        time.sleep(2.0)
        assert _pings(rig) == frozen, "pinged while stopped"
        os.kill(rig.proc.pid, signal.SIGCONT)
        wait_until(rig, lambda: _pings(rig) > frozen, timeout=10, what="pings to resume after SIGCONT")
        # A dead microphone: the FIFO keeps a writer (so reads block, no EOF) but no data comes.
        holder = os.open(rig.devices.mic_fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            mark = len(rig.lines)
            rig.mic.close()
            rig.wait_log(r"unhealthy, withholding watchdog ping: no microphone frames", timeout=20, start=mark)
            time.sleep(0.2)
            withheld = _pings(rig)
            time.sleep(2.0)
            assert _pings(rig) == withheld, "pinged without microphone frames"
            rig.mic = MicFeeder(rig.devices.mic_fifo)
            rig.wait_log(r"healthy again; watchdog pings resumed", timeout=20, start=mark)
        finally:
            os.close(holder)
        wait_until(rig, lambda: _pings(rig) > withheld, timeout=10, what="pings after the microphone came back")
        no_tracebacks(rig)
        # A hung loop while the process's other threads go on: the loop's thread blocks for good.
        pid = rig.proc.pid
        threads = len(_threads(pid))
        rig.send_signal(signal.SIGUSR2)
        time.sleep(1.0)
        hung = _pings(rig)
        time.sleep(3.0)  # longer than the FIFO holds (2 s): the feeder only goes on if the daemon reads
        periods = rig.mic.periods
        time.sleep(1.0)
        states = _threads(pid)
        assert _pings(rig) == hung, "pinged with a hung loop"
        assert rig.proc.poll() is None and "T" not in states.values(), states  # running, not stopped
        assert len(states) == threads >= 2, (threads, states)
        assert rig.mic.periods - periods >= 5, "the microphone thread stopped reading as well"
        rig.send_signal(signal.SIGKILL)  # what systemd does once WatchdogSec has passed
        assert rig.wait_exit(10) == -signal.SIGKILL
        return ("pings every 0.5 s; none during 2 s of SIGSTOP, resumed on SIGCONT; none while the microphone "
                f"gave no frames (logged once), resumed when frames came back; none for 4 s with the loop hung "
                f"while its {threads} threads ran and the microphone was still read")


CASES = [
    Case("kill-at-random-points", "process", f"SIGTERM/SIGKILL at random points of a conversation, {KILL_RUNS} runs",
         "clean restart each time; resumes a stored handle or starts fresh; answered", kill_at_random_points),
    Case("watchdog", "process", "process frozen (SIGSTOP); microphone stops delivering frames; event loop hung "
         "with its threads running",
         "WATCHDOG=1 withheld (systemd restarts), resumed when healthy", watchdog),
]
