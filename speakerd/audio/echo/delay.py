"""The bulk delay between what the speaker played and what the microphone hears (GCC-PHAT).

Why: the device buffers, the converters and the air add 10-500 ms that nobody reports, and they
change on every reopen and drift with the two clocks. A canceller whose reference is misaligned by
more than its filter removes nothing. Every 0.4 s of playback the newest window of
microphone audio is cross-correlated with the reference (phase transform: sharp peaks on speech,
deaf to the room's colouring); two agreeing estimates in a row move the delay.
"""

from __future__ import annotations

import numpy as np

WINDOW_SECONDS = 1.0
EVERY_SECONDS = 0.4
MIN_CONFIDENCE = 40.0  # peak over the correlation's mean absolute value
AGREE_SAMPLES = 32  # 2 ms


class DelayEstimator:
    def __init__(self, rate: int, max_delay_ms: int) -> None:
        self.rate = rate
        self.max_delay = int(rate * max_delay_ms / 1000)
        self.window = int(rate * WINDOW_SECONDS)
        self.every = int(rate * EVERY_SECONDS)
        n = self.window + self.max_delay
        self.nfft = 1 << (2 * n - 1).bit_length()
        self.delay: int | None = None  # samples; None until found
        self.confidence = 0.0
        self.estimates = 0
        self._candidate: int | None = None
        self._since = 0

    def due(self, n: int) -> bool:
        """Count ``n`` new microphone samples; True when an estimate is due."""
        self._since += n
        if self._since >= self.every:
            self._since = 0
            return True
        return False

    def estimate(self, mic: np.ndarray, ref: np.ndarray) -> int | None:
        """``mic``: the last ``window`` samples; ``ref``: the reference for the ``window + max_delay``
        samples ending with them. Returns the delay (samples) now in effect."""
        if len(mic) < self.window or len(ref) < self.window + self.max_delay:
            return self.delay
        r = ref[-(self.window + self.max_delay) :].astype(np.float64)
        m = mic[-self.window :].astype(np.float64)
        if float(np.mean(r[-self.window :] ** 2)) < 100.0 or float(np.mean(m**2)) < 1.0:
            return self.delay  # the speaker is (nearly) silent: nothing to measure
        spec = np.fft.rfft(r, self.nfft) * np.conj(np.fft.rfft(m, self.nfft))
        spec /= np.abs(spec) ** 0.8 + 1e-9  # PHAT-beta: whitened but not all the way
        cc = np.fft.irfft(spec, self.nfft)
        # mic[i] ~ r[i + max_delay - d], so cc peaks at lag k = max_delay - d >= 0.
        lags = cc[: self.max_delay + 1]
        k = int(np.argmax(np.abs(lags)))
        self.confidence = float(np.abs(lags[k]) / (np.mean(np.abs(lags)) + 1e-12))
        if self.confidence < MIN_CONFIDENCE:
            return self.delay
        d = self.max_delay - k
        self.estimates += 1
        if self.delay is None or abs(d - self.delay) <= AGREE_SAMPLES:
            self.delay = d
            self._candidate = None
        elif self._candidate is not None and abs(d - self._candidate) <= AGREE_SAMPLES:
            self.delay, self._candidate = d, None
        else:
            self._candidate = d
        return self.delay
