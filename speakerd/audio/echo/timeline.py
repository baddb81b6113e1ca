"""What the speaker played, placed on the microphone's time line.

Why a time line and not a queue: the player writes ahead of the speaker by its buffer, pauses
between replies and runs dry when the network is late. A queue drained by the capture thread
squeezes those gaps out and the reference drifts off the echo; samples stamped with the moment
they were handed to the device keep every gap where it was. The estimated delay then lines the
two up exactly (delay.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

log = logging.getLogger("speakerd.audio")
RING_SECONDS = 4.0
GAP_SAMPLES = 1920  # a write this far behind the clock: the speaker ran dry, this starts now (120 ms)
REANCHOR_SAMPLES = 4000  # the microphone's count this far off the clock is re-anchored (250 ms)


class ReferenceTimeline:
    """Thread-safe: ``write`` from the playback thread, ``read`` and ``mic_block`` from capture."""

    def __init__(self, rate: int = 16000, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._t0 = clock()
        self._size = int(RING_SECONDS * rate)
        self._ring = np.zeros(self._size, dtype=np.float32)
        self._end = 0  # absolute index after the last reference sample written
        self._mic_end: int | None = None
        self._lock = threading.Lock()
        self.bursts = 0
        self.burst_start = 0  # absolute index where the current burst was anchored
        self.reply_end = 0  # absolute index after the last reply sample (earcons do not count)

    def now(self) -> int:
        return int((self._clock() - self._t0) * self.rate)

    def write(self, samples: np.ndarray, reply: bool = True) -> None:
        """The playback thread: samples just handed to the device (16 kHz, after the volume)."""
        now = self.now()
        with self._lock:
            if self._end < now - GAP_SAMPLES:  # the speaker was silent: this starts now
                log.debug("echo reference: playback restarts %d ms after the last",
                          (now - self._end) * 1000 // self.rate)
                self._zero(self._end, now)
                self._end = now
                self.burst_start = now
                self.bursts += 1
            self._put(self._end, samples.astype(np.float32))
            self._end += len(samples)
            if reply:
                self.reply_end = self._end

    def _zero(self, start: int, end: int) -> None:
        start = max(start, end - self._size)
        for a, b in self._spans(start, end):
            self._ring[a:b] = 0.0

    def _put(self, start: int, x: np.ndarray) -> None:
        x = x[-self._size :]
        pos = 0
        for a, b in self._spans(start, start + len(x)):
            self._ring[a:b] = x[pos : pos + b - a]
            pos += b - a

    def _spans(self, start: int, end: int) -> list[tuple[int, int]]:
        a, b = start % self._size, (end - 1) % self._size + 1
        if end <= start:
            return []
        return [(a, b)] if a < b else [(a, self._size), (0, b)]

    def read(self, start: int, end: int) -> np.ndarray:
        """Reference samples for absolute indices [start, end): zeros where nothing was played."""
        out = np.zeros(end - start, dtype=np.float32)
        with self._lock:
            lo, hi = max(start, self._end - self._size), min(end, self._end)
            pos = lo - start
            for a, b in self._spans(lo, hi):
                out[pos : pos + b - a] = self._ring[a:b]
                pos += b - a
        return out

    def mic_block(self, n: int) -> int:
        """The capture thread, once per block just read: the absolute index the block ends at.

        Counted sample by sample (the microphone's own clock); re-anchored to the monotonic clock
        when it strays, as after a device reopen or an overflow.
        """
        now = self.now()
        if self._mic_end is None or abs(self._mic_end + n - now) > REANCHOR_SAMPLES:
            if self._mic_end is not None:
                log.debug("echo reference: microphone re-anchored by %d ms",
                          (now - self._mic_end - n) * 1000 // self.rate)
            self._mic_end = now
        else:
            self._mic_end += n
        return self._mic_end

    def reset_mic(self) -> None:
        self._mic_end = None

    @property
    def written_end(self) -> int:
        with self._lock:
            return self._end
