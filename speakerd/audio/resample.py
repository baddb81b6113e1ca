"""Streaming polyphase resampling: block by block, the same samples as resampling in one go.

Why not per-block resample_poly: each block's edges would be filtered against zeros and click.
Keeping enough input context on both sides makes block boundaries invisible (tests compare with
a one-shot resample_poly), at the cost of a few samples of latency (under 1 ms), which ``flush``
hands out at the end of a stream.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly

_TAPS_PER_SIDE = 10  # resample_poly's default window half-length, in units of max(up, down)


def _to_int16(y: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.clip(np.round(y), -32768, 32767).astype(np.int16)
    return out


def resample_once(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """A whole clip (an earcon, a fixture) at another rate, as int16."""
    if src_rate == dst_rate:
        return np.asarray(samples, dtype=np.int16)
    g = gcd(src_rate, dst_rate)
    return _to_int16(resample_poly(np.asarray(samples, dtype=np.float64), dst_rate // g, src_rate // g))


class StreamResampler:
    def __init__(self, src_rate: int, dst_rate: int) -> None:
        g = gcd(src_rate, dst_rate)
        self.src_rate, self.dst_rate = src_rate, dst_rate
        self.up, self.down = dst_rate // g, src_rate // g
        self.identity = self.up == self.down
        self._half = _TAPS_PER_SIDE * max(self.up, self.down)  # in the upsampled domain
        self._reset()

    def _reset(self) -> None:
        self._x = np.zeros(0, dtype=np.float64)
        self._base = 0  # absolute input index of _x[0]; always a multiple of down
        self._emitted = 0  # output samples produced so far

    def process(self, samples: np.ndarray) -> np.ndarray:
        """int16 (or float) mono samples in; int16 out, delayed by under a millisecond."""
        if self.identity:
            return np.asarray(samples, dtype=np.int16)
        self._x = np.concatenate([self._x, np.asarray(samples, dtype=np.float64)])
        end = self._base + len(self._x)
        # Output j needs input up to (j*down + half)/up: emit only those with full support.
        limit = (end * self.up - self._half) // self.down
        if limit <= self._emitted:
            return np.zeros(0, dtype=np.int16)
        y = resample_poly(self._x, self.up, self.down)
        first = self._base * self.up // self.down
        out = y[self._emitted - first : limit - first]
        self._emitted = limit
        # Keep the context the next outputs need (their left support), aligned to ``down``.
        need = (self._emitted * self.down - self._half) // self.up - 1
        keep_from = max(self._base, (need // self.down) * self.down)
        self._x = self._x[keep_from - self._base :]
        self._base = keep_from
        return _to_int16(out)

    def flush(self) -> np.ndarray:
        """The samples still held back, as if the stream ended in silence; then start afresh.

        Together with every ``process`` output this equals one-shot resample_poly of the whole
        stream, so a reply's last milliseconds are not lost.
        """
        if self.identity:
            return np.zeros(0, dtype=np.int16)
        end = self._base + len(self._x)
        total = -(-end * self.up // self.down)  # resample_poly's output length: ceil(n*up/down)
        if total <= self._emitted:
            self._reset()
            return np.zeros(0, dtype=np.int16)
        want = total - self._emitted
        pad = -(-(total * self.down + self._half) // self.up) - end + self.down
        out = self.process(np.zeros(max(pad, 0), dtype=np.float64))[:want]
        self._reset()
        return out


def to_mono(samples: np.ndarray, channels: int, channel: int) -> np.ndarray:
    """One channel of interleaved int16 audio (the configured microphone of an array)."""
    if channels == 1:
        return samples
    usable = len(samples) - len(samples) % channels
    return samples[:usable].reshape(-1, channels)[:, min(channel, channels - 1)]
