"""Loaded into the daemon under test through PYTHONPATH: SIGUSR2 hangs its event loop for good.

Why: SIGSTOP freezes the whole process, which is not what a hung loop looks like. Python runs
signal handlers in the main thread, which is the loop's, so this handler blocks the loop while the
audio and executor threads go on, as a loop stuck in a blocking call would. Only tests load it.
"""

import signal
import time
from types import FrameType


def _hang(signum: int, frame: FrameType | None) -> None:
    while True:
        time.sleep(3600)


signal.signal(signal.SIGUSR2, _hang)
