"""Worker threads with an owner: a crash is logged once, reported, and the work restarted.

Why: a thread that dies of an unexpected exception takes its part with it (a deaf wake word, a
silent speaker) while the event loop, and so the watchdog, stays happy. Every worker thread runs
its body through ``Supervised``: the first crash of a run of crashes is logged with its
traceback, each is reported (the daemon turns it into a device fault the LEDs and ``speakerctl
status`` show), and the body starts again after a backoff that doubles up to a cap. A body that
ran long enough resets the backoff. The part reports its own recovery once it works again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("speakerd")

HEALTHY_SECONDS = 30.0  # a body that ran this long before crashing starts the backoff afresh


class Supervised:
    """Runs ``body`` on a thread of its own until ``stop()``; restarts it after a crash."""

    def __init__(self, name: str, body: Callable[[], None], *,
                 on_crash: Callable[[str], None] | None = None,
                 first_delay: float = 0.5, max_delay: float = 30.0) -> None:
        self.name = name
        self._body = body
        self._on_crash = on_crash
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.crashes = 0
        self.last_error: str | None = None
        self.delays: deque[float] = deque(maxlen=16)  # the latest backoffs (diagnostics, tests)

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the supervisor not to restart the body; the body itself must be told to return."""
        self._stopping.set()

    def join(self, timeout: float | None = None) -> bool:
        """True when the thread has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """The thread runs: its body, or a backoff before the next start."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        delay = self._first_delay
        quiet = False  # a crash of this run of crashes was already logged with its traceback
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                self._body()
                return  # the body returns when it was told to stop
            except Exception as e:
                self.crashes += 1
                self.last_error = f"{type(e).__name__}: {e}".splitlines()[0]
                if time.monotonic() - began >= HEALTHY_SECONDS:
                    delay, quiet = self._first_delay, False
                if quiet:
                    log.warning("%s failed again (%s); restarting in %.1f s", self.name, self.last_error, delay)
                else:
                    log.error("%s failed; restarting in %.1f s", self.name, delay, exc_info=e)
                    quiet = True
                if self._on_crash is not None:
                    try:
                        self._on_crash(f"{self.name} failed: {self.last_error}")
                    except Exception:
                        log.exception("reporting the failure of %s failed", self.name)
            self.delays.append(delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self._max_delay)
