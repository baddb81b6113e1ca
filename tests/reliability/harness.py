"""Helpers shared by the fault matrix, the tests and ``scripts/reliability-report.py``.

Why a plain module and not fixtures: the report script runs the same cases outside pytest, so a
case is a function of a work directory that returns what it observed and raises AssertionError
when the outcome is not the expected one.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speakerd_workshop.emulator import Scenario
from speakerd_workshop.rig import API_KEY, Rig, merge_toml

from tests import support
from tests.sounds import SCENARIO, silence, speech, wake

# Quick reconnects and a short connect timeout keep stalls cheap; the rest is the rig's default.
FAST = """
[live]
connect_timeout_seconds = 3.0
reconnect_max_seconds = 1.0
[conversation]
follow_up_seconds = 4.0
"""

@dataclass
class Case:
    """One fault: what is done, what must happen, and the function that does it and checks."""

    id: str
    area: str  # network, security, state, process, devices
    fault: str
    expected: str
    run: Callable[[Path], str]
    heavy: bool = False  # opt-in (SPEAKERD_SOAK=1)
    wiring: str | None = None  # what the daemon still has to do before this can pass (expected to fail)


def make_rig(workdir: Path, *, config: str = "", scenario: Scenario | None = None,
             emulator_options: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Rig:
    return Rig(workdir, scenario=scenario or SCENARIO, config=merge_toml(FAST, config),
               emulator_options=emulator_options, env=env)


def ask(rig: Rig, question: str, *, start: int | None = None, timeout: float = 60.0) -> int:
    """Wake the speaker, ask, and wait until the reply was spoken and the speaker listens again.

    Returns the log index where the question was asked.
    """
    assert rig.mic is not None
    mark = len(rig.lines) if start is None else start
    rig.mic.say(wake() + speech(question) + silence(2.0))
    spoke = rig.wait_state("speaking", timeout=timeout, start=mark)
    rig.wait_state("listening", timeout=timeout, start=spoke + 1)
    return mark


def follow_up(rig: Rig, question: str, *, timeout: float = 60.0) -> int:
    """Ask inside the follow-up window (no wake word)."""
    assert rig.mic is not None
    mark = len(rig.lines)
    rig.mic.say(silence(0.3) + speech(question) + silence(2.0))
    spoke = rig.wait_state("speaking", timeout=timeout, start=mark)
    rig.wait_state("listening", timeout=timeout, start=spoke + 1)
    return mark


def said(rig: Rig, start: int = 0) -> str:
    """The model's words as the daemon logged them (its output transcription) since ``start``."""
    words = [x.message.removeprefix("speaker: ") for x in rig.lines[start:] if x.message.startswith("speaker: ")]
    return re.sub(r"\s+", " ", " ".join(words)).strip()


def heard(rig: Rig, start: int = 0) -> str:
    return " ".join(x.message.removeprefix("you: ") for x in rig.lines[start:] if x.message.startswith("you: "))


def statuses(rig: Rig, start: int = 0) -> list[str]:
    assert rig.notify is not None
    return [m["STATUS"] for m in rig.notify.messages[start:] if "STATUS" in m]


def wait_status(rig: Rig, prefix: str, start: int = 0, timeout: float = 10.0) -> list[str]:
    """``statuses`` once one starting with ``prefix`` came: the log line and the datagram race."""
    assert rig.notify is not None
    rig.notify.wait_for(lambda m: m.get("STATUS", "").startswith(prefix), start=start, timeout=timeout)
    return statuses(rig, start)


def count_during(fn: Callable[[], int], seconds: float) -> tuple[int, int]:
    """``fn()`` now and after ``seconds``: shows whether something keeps growing (a retry loop)."""
    before = fn()
    time.sleep(seconds)
    return before, fn()


def no_tracebacks(rig: Rig) -> None:
    text = rig.log_text()
    assert "Traceback" not in text, f"a traceback reached the log:\n{text[-3000:]}"


def no_key(text: str, where: str) -> None:
    assert API_KEY not in text, f"the API key appears in {where}"
    assert API_KEY[4:-4] not in text, f"part of the API key appears in {where}"


def proc_figures(pid: int) -> dict[str, int]:
    """RSS (kB), open file descriptors and threads of a process, from /proc."""
    rss = 0
    threads = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return {"rss_kb": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": threads}


def opt_in(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def wait_until(rig: Rig, pred: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``pred`` (log lines, emulator records) until it is truthy; on timeout show the log tail."""
    def described() -> str:
        tail = "\n".join(f"  {x.level} {x.message}" for x in rig.lines[-30:])
        return f"{what}; last lines:\n{tail}"

    return support.wait_until(pred, described, timeout=timeout, interval=0.05)


def answered(rig: Rig, start: int, reply: str, *, timeout: float = 60.0) -> None:
    """The whole reply was spoken after ``start`` (possibly after a cut-off first attempt)."""
    want = re.sub(r"\s+", "", reply)
    wait_until(rig, lambda: re.sub(r"\s+", "", said(rig, start)).endswith(want), timeout=timeout,
               what=f"reply {reply!r}")


def hush(rig: Rig) -> None:
    """Forget speech not yet fed (the daemon died mid-sentence; nobody reads the FIFO meanwhile)."""
    mic = rig.mic
    assert mic is not None
    with mic._lock:  # the rig has no public way to clear the queue
        mic._queue.clear()


def truthful(rig: Rig, timeout: float = 10.0) -> str:
    """LEDs, ``STATUS=`` and the control socket agree on the state once things settle; returns it.

    Polled rather than sampled once, because the three are updated one after the other.
    """
    assert rig.notify is not None

    def agree() -> str | None:
        st = rig.ctl("status")
        shown = [m["STATUS"] for m in rig.notify.messages if "STATUS" in m]  # type: ignore[union-attr]
        state = str(st["state"])
        if st.get("leds") not in (state, None) or not shown or shown[-1].split(":")[0] != state:
            return None
        return state

    return str(wait_until(rig, agree, timeout=timeout, what="LEDs, STATUS= and the control socket agreeing"))


def delivered(rig: Rig, text: str) -> list[int]:
    """Connections that received the spoken ``text`` whole, byte for byte: no user audio was lost."""
    assert rig.emulator is not None
    pcm = speech(text)
    found = [c.id for c in rig.emulator.connections if pcm in rig.emulator.received_audio(c.id)]
    assert found, f"the audio of {text!r} did not reach the service whole on any connection"
    return found


class CannotSimulate(Exception):
    """This machine cannot stage the fault (no mount rights, say): the case is skipped, not passed."""


@contextlib.contextmanager
def small_filesystem(path: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` at ``path``: a disk that fills up, or can be made read-only, for real.

    Root ignores permission bits, but not ENOSPC or a read-only mount.
    """
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "speakerd-test", str(path)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise CannotSimulate(f"cannot mount a tmpfs: {r.stderr.strip() or r.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to the last byte; returns the file to delete to free it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size) > 0:
                    pass
    finally:
        os.close(fd)
    return filler
