"""Loaded into the daemon under test through PYTHONPATH, by the reliability tests only.

SIGUSR2 hangs the event loop for good: SIGSTOP freezes the whole process, which is not what a hung
loop looks like. Python runs signal handlers in the main thread, which is the loop's, so this
handler blocks the loop while the audio and executor threads go on, as a loop stuck in a blocking
call would.

SIGUSR1 makes one worker thread fail once, as a silent death would: ``SPEAKERD_TEST_CRASH`` names
it, and the next step of the wake-word thread or the next period of the playback writer raises.
"""

from __future__ import annotations

import os
import signal
import time
from types import FrameType
from typing import Any


def _hang(signum: int, frame: FrameType | None) -> None:
    while True:
        time.sleep(3600)


signal.signal(signal.SIGUSR2, _hang)

_armed = {"on": False}


def _arm(signum: int, frame: FrameType | None) -> None:
    _armed["on"] = True


def _once(what: str) -> None:
    if _armed["on"]:
        _armed["on"] = False
        raise RuntimeError(f"injected by the test: the {what} thread fails")


signal.signal(signal.SIGUSR1, _arm)
_target = os.environ.get("SPEAKERD_TEST_CRASH", "")
if _target == "wakeword":
    from speakerd import wakeword

    _step = wakeword.WakeWordDetector._step

    def _crashing_step(self: Any, frame: Any) -> None:
        _once("wake-word")
        _step(self, frame)

    wakeword.WakeWordDetector._step = _crashing_step  # type: ignore[method-assign]
elif _target == "playback":
    from speakerd.audio import playqueue

    _next = playqueue.PlayQueue._next_period

    def _crashing_next(self: Any) -> Any:
        _once("playback")
        return _next(self)

    playqueue.PlayQueue._next_period = _crashing_next  # type: ignore[method-assign]
