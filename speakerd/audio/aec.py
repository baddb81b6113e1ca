"""Acoustic echo cancellation with Speex (libspeexdsp, through ctypes).

Why: without headphones the microphone hears the speaker, and the service then takes the
model's own voice for the user talking over it. The playback thread hands every period it writes
to ``EchoCanceller.far_end``; the capture thread runs each 80 ms frame through ``process`` with
the far-end audio of the same moment as the reference. Off by default (``[audio]
echo_cancellation``) until proven on real hardware, where speaker and microphone clocks and
delays are real; ``bench/aec.py`` measures it on a synthetic echo.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections import deque

import numpy as np

SPEEX_ECHO_SET_SAMPLING_RATE = 24
SUBFRAME = 160  # 10 ms at 16 kHz
MAX_REFERENCE_SECONDS = 1.0


class EchoCancellerUnavailable(Exception):
    """libspeexdsp is not installed; the message says what to install."""


def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("speexdsp") or "libspeexdsp.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise EchoCancellerUnavailable(
            "audio.echo_cancellation needs libspeexdsp (apt install libspeexdsp1)") from None
    lib.speex_echo_state_init.restype = ctypes.c_void_p
    lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_echo_cancellation.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
    lib.speex_echo_state_reset.argtypes = [ctypes.c_void_p]
    lib.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    return lib


class EchoCanceller:
    """16 kHz mono: the far end (what the speaker played) in, the cleaned microphone out."""

    def __init__(self, rate: int = 16000, tail_ms: int = 200) -> None:
        self._lib = _lib()
        self._state = self._lib.speex_echo_state_init(SUBFRAME, rate * tail_ms // 1000)
        r = ctypes.c_int(rate)
        self._lib.speex_echo_ctl(self._state, SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(r))
        self._ref: deque[np.ndarray] = deque()
        self._ref_len = 0
        self._lock = threading.Lock()
        self._max_ref = int(rate * MAX_REFERENCE_SECONDS)

    def far_end(self, samples: np.ndarray, reply: bool = True) -> None:
        """The playback thread: 16 kHz int16 samples as they go to the speaker."""
        with self._lock:
            self._ref.append(samples.astype(np.int16))
            self._ref_len += len(samples)
            while self._ref_len > self._max_ref:  # nobody is capturing: do not grow
                self._ref_len -= len(self._ref.popleft())

    def _take(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int16)
        got = 0
        with self._lock:
            while got < n and self._ref:
                chunk = self._ref[0]
                take = min(n - got, len(chunk))
                out[got : got + take] = chunk[:take]
                got += take
                if take == len(chunk):
                    self._ref.popleft()
                else:
                    self._ref[0] = chunk[take:]
            self._ref_len -= got
        return out

    def process(self, mic: np.ndarray) -> np.ndarray:
        """The capture thread: a frame of int16 samples (a multiple of 10 ms), echo removed."""
        mic = np.ascontiguousarray(mic, dtype=np.int16)
        ref = self._take(len(mic))
        out = np.empty_like(mic)
        for i in range(0, len(mic) - SUBFRAME + 1, SUBFRAME):
            rec = np.ascontiguousarray(mic[i : i + SUBFRAME])
            play = np.ascontiguousarray(ref[i : i + SUBFRAME])
            dst = out[i : i + SUBFRAME]
            self._lib.speex_echo_cancellation(self._state, rec.ctypes.data, play.ctypes.data, dst.ctypes.data)
        return out

    def reset(self) -> None:
        """The microphone reopened: forget the filter and the queued reference."""
        with self._lock:
            self._ref.clear()
            self._ref_len = 0
        if self._state:
            self._lib.speex_echo_state_reset(self._state)

    def close(self) -> None:
        if self._state:
            self._lib.speex_echo_state_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()


def erle_db(mic: np.ndarray, cleaned: np.ndarray) -> float:
    """Echo return loss enhancement: how much quieter the echo is after cancellation."""
    a = float(np.mean(mic.astype(np.float64) ** 2)) + 1e-9
    b = float(np.mean(cleaned.astype(np.float64) ** 2)) + 1e-9
    return 10 * float(np.log10(a / b))
