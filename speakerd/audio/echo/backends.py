"""Echo cancellers behind one small interface: 10 ms blocks of microphone and aligned reference.

Why several: the Speex canceller is what the project had; WebRTC's AEC3 (pywebrtc-audio, wheels for
x86_64 and aarch64) removes far more of a real room's echo for a few ms of CPU per second, and
handles double talk and residual delay itself. Both get a reference the pipeline has already
aligned with the microphone, so neither has to find a delay larger than its filter.
"""

from __future__ import annotations

import ctypes
from typing import Protocol

import numpy as np

from speakerd.audio.echo.settings import Canceller

BLOCK = 160  # 10 ms at 16 kHz


class CancellerUnavailable(Exception):
    """The library is missing; the message says what to install."""


class EchoBackend(Protocol):
    name: str

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """int16 microphone and reference of equal length (a multiple of BLOCK): the cleaned microphone."""
        ...

    def reset(self) -> None: ...


class PassThrough:
    name = "none"

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        return mic

    def reset(self) -> None:
        pass


class SpeexBackend:
    name = "speex"

    def __init__(self, rate: int, tail_ms: int) -> None:
        from speakerd.audio.aec import SPEEX_ECHO_SET_SAMPLING_RATE, EchoCancellerUnavailable, _lib

        try:
            self._lib = _lib()
        except EchoCancellerUnavailable as e:
            raise CancellerUnavailable(str(e)) from None
        self._rate, self._tail = rate, tail_ms
        self._ctl = SPEEX_ECHO_SET_SAMPLING_RATE
        self._state: int | None = None
        self.reset()

    def reset(self) -> None:
        if self._state:
            self._lib.speex_echo_state_destroy(self._state)
        self._state = self._lib.speex_echo_state_init(BLOCK, self._rate * self._tail // 1000)
        r = ctypes.c_int(self._rate)
        self._lib.speex_echo_ctl(self._state, self._ctl, ctypes.byref(r))

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        mic = np.ascontiguousarray(mic, dtype=np.int16)
        ref = np.ascontiguousarray(ref, dtype=np.int16)
        out = np.empty_like(mic)
        for i in range(0, len(mic) - BLOCK + 1, BLOCK):
            self._lib.speex_echo_cancellation(self._state, mic[i:].ctypes.data, ref[i:].ctypes.data,
                                              out[i:].ctypes.data)
        return out

    def __del__(self) -> None:
        if getattr(self, "_state", None):
            self._lib.speex_echo_state_destroy(self._state)
            self._state = None


class WebRtcBackend:
    name = "webrtc"

    def __init__(self, rate: int) -> None:
        try:
            import pywebrtc_audio
        except ImportError:
            raise CancellerUnavailable(
                "audio.echo.canceller = \"webrtc\" needs pywebrtc-audio (pip install pywebrtc-audio)") from None
        self._aec = pywebrtc_audio.EchoCanceller(sample_rate=rate, num_channels=1, stream_delay_ms=0)

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        return np.asarray(self._aec.process(np.ascontiguousarray(mic, dtype=np.int16),
                                            np.ascontiguousarray(ref, dtype=np.int16)))

    def reset(self) -> None:
        self._aec.reset()


def make_backend(kind: Canceller, rate: int, tail_ms: int) -> EchoBackend:
    if kind == "speex":
        return SpeexBackend(rate, tail_ms)
    if kind == "webrtc":
        return WebRtcBackend(rate)
    return PassThrough()
