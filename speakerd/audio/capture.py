"""Microphone capture: a PyAudio reader thread delivering 80 ms frames of 16 kHz mono to the loop.

Why a thread and blocking reads: a read that waits for the device is the simplest clock there is,
and it keeps the event loop free. Everything the loop sees is a finished AudioFrame handed over
with ``call_soon_threadsafe``. A device that fails or vanishes is reopened with backoff, and the
loop hears about it as a DeviceFault (and again when it recovers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from speakerd.audio.devices import (
    AudioDeviceError,
    default_device,
    find_device,
    no_device_message,
    pyaudio_instance,
    pyaudio_release,
    supports,
)
from speakerd.audio.echo import MicProcessor
from speakerd.audio.resample import StreamResampler, to_mono
from speakerd.config import AudioSettings
from speakerd.events import FRAME_SAMPLES, SAMPLE_RATE_IN, AudioFrame, DeviceFault
from speakerd.supervise import Supervised

log = logging.getLogger("speakerd.audio")
PA_INPUT_OVERFLOWED = -9981


@dataclass
class CaptureStats:
    frames: int = 0
    overflows: int = 0
    reopens: int = 0  # attempts to open again after a failure
    opens: int = 0  # successful opens (the first, after each unmute and each recovery)
    stream_open: bool = False
    device_rate: int = 0
    device_channels: int = 0


class Capture:
    def __init__(self, settings: AudioSettings, loop: asyncio.AbstractEventLoop,
                 on_frame: Callable[[AudioFrame], None], on_fault: Callable[[DeviceFault], None],
                 *, echo: MicProcessor | None = None) -> None:
        self.settings = settings
        self.echo = echo
        self.loop = loop
        self.on_frame = on_frame
        self.on_fault = on_fault
        self.stats = CaptureStats()
        self._stop = threading.Event()
        self._muted = threading.Event()
        self._changed = threading.Event()
        self._worker = Supervised("speakerd-capture", self._run, on_crash=self._crashed)
        self._faulted = False  # a fault was reported and the recovery not yet: kept across restarts
        self._index = 0
        self._default_name: str | None = None  # the device taken while input_device is unset

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()
        self._stop.set()
        self._changed.set()
        self._worker.join(timeout=3)

    @property
    def alive(self) -> bool:
        return self._worker.alive

    def _crashed(self, message: str) -> None:
        """The capture thread failed: the microphone is down until the restarted thread reopens it."""
        self.stats.stream_open = False
        if not self._faulted:
            self._faulted = True
            self._post(self.on_fault, DeviceFault("input", message))

    def set_muted(self, muted: bool) -> None:
        """Muted closes the device: the microphone is really off, not just ignored."""
        if muted:
            self._muted.set()
        else:
            self._muted.clear()
        self._changed.set()

    # The thread -----------------------------------------------------------------------------------

    def _post(self, fn: Callable[[Any], None], arg: Any) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: shutting down
            self.loop.call_soon_threadsafe(fn, arg)

    def _open(self, pa: Any) -> tuple[Any, int, int]:
        s = self.settings
        device = find_device(pa, s.input_device, "input")
        if device is None:  # unset: the default, or the first device that can capture
            device = default_device(pa, "input")
            if device is None:
                raise AudioDeviceError(no_device_message("input"))
            if device.name != self._default_name:
                log.info("microphone: input_device is unset; using %r (index %d)", device.name, device.index)
                self._default_name = device.name
        channels = s.input_channel + 1
        if device.max_input_channels < channels:
            raise AudioDeviceError(f"audio.input_channel {s.input_channel}: {device.name!r} has only "
                                   f"{device.max_input_channels} input channels")
        rate = s.input_rate
        if rate is None:
            rate = SAMPLE_RATE_IN
            if not supports(pa, device, "input", rate, channels):
                rate = device.default_rate
        import pyaudio

        block = max(1, round(rate * FRAME_SAMPLES / SAMPLE_RATE_IN))
        try:
            stream = pa.open(format=pyaudio.paInt16, channels=channels, rate=rate, input=True,
                             input_device_index=device.index, frames_per_buffer=block)
        except (OSError, ValueError) as e:
            raise AudioDeviceError(f"cannot open {device.name} at {rate} Hz, {channels} channel(s): {e}") from None
        self.stats.device_rate, self.stats.device_channels = rate, channels
        return stream, rate, channels

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():  # after a crash, the restart reports the recovery
            if self._muted.is_set():
                self._changed.wait()
                self._changed.clear()
                continue
            if self._faulted:
                self.stats.reopens += 1
            try:
                pa = pyaudio_instance()
            except Exception as e:  # PortAudio itself cannot start
                self._fault(f"audio system unavailable: {str(e).splitlines()[0]}", self._faulted)
                self._faulted = True
                self._stop.wait(delay)
                delay = min(delay * 2, self.settings.reopen_max_seconds)
                continue
            try:
                stream, rate, channels = self._open(pa)
            except AudioDeviceError as e:
                pyaudio_release()  # the next attempt enumerates afresh: the device may be back
                self._fault(str(e), self._faulted)
                self._faulted = True
                self._stop.wait(delay)
                delay = min(delay * 2, self.settings.reopen_max_seconds)
                continue
            self.stats.opens += 1
            self.stats.stream_open = True
            if self.echo is not None:  # a new stream: its samples start a new count, the filter is stale
                self.echo.reset()
            if self._faulted:
                log.debug("microphone is back")  # the owner logs on_fault
                self._post(self.on_fault, DeviceFault("input", "microphone is back", recovered=True))
                self._faulted = False
            delay = 0.5
            try:
                lost = self._read_loop(stream, rate, channels)
            finally:
                with contextlib.suppress(Exception):
                    stream.close()
                self.stats.stream_open = False
                pyaudio_release()
            if lost is not None:
                self._fault(lost, False)
                self._faulted = True
                self._stop.wait(delay)

    def _fault(self, message: str, already: bool) -> None:
        """Report a fault once per outage; the retries after it are logged at debug level."""
        if already:
            log.debug("microphone still unavailable: %s", message)
            return
        log.debug("microphone: %s", message)
        self._post(self.on_fault, DeviceFault("input", message))

    def _read_loop(self, stream: Any, rate: int, channels: int) -> str | None:
        """Read until stopped, muted or the device fails; returns the failure, if any.

        Why the care over allocations: this runs 12.5 times a second for as long as the speaker is
        on. A 16 kHz mono device's reads are the frames already (no numpy at all); otherwise the
        resampled samples collect in one preallocated buffer instead of a growing concatenation.
        """
        resampler = StreamResampler(rate, SAMPLE_RATE_IN, "LQ")
        block = max(1, round(rate * FRAME_SAMPLES / SAMPLE_RATE_IN))
        direct = resampler.identity and channels == 1 and block == FRAME_SAMPLES and self.echo is None
        pending = np.empty(FRAME_SAMPLES * 4, dtype=np.int16)
        fill = 0
        self._changed.clear()
        while not self._stop.is_set() and not self._muted.is_set():
            try:
                raw = stream.read(block, exception_on_overflow=True)
            except OSError as e:
                if getattr(e, "errno", None) == PA_INPUT_OVERFLOWED:
                    self.stats.overflows += 1
                    if self.stats.overflows in (1, 10, 100) or self.stats.overflows % 1000 == 0:
                        log.warning("microphone overflow (%d so far): the system was too busy to read",
                                    self.stats.overflows)
                    continue
                return f"microphone stopped working: {e}"
            if direct and len(raw) == FRAME_SAMPLES * 2:
                self._emit(raw)
                continue
            out = resampler.process(to_mono(np.frombuffer(raw, dtype=np.int16), channels, self.settings.input_channel))
            if fill + len(out) > len(pending):
                pending = np.concatenate([pending[:fill], np.empty(len(out) + FRAME_SAMPLES, dtype=np.int16)])
            pending[fill : fill + len(out)] = out
            fill += len(out)
            start = 0
            while fill - start >= FRAME_SAMPLES:
                frame = pending[start : start + FRAME_SAMPLES]
                if self.echo is None:
                    self._emit(frame.tobytes())
                else:
                    sent = self.echo.process(frame)
                    self._emit(sent.tobytes(), self.echo.cleaned.tobytes())
                start += FRAME_SAMPLES
            if start:
                pending[: fill - start] = pending[start:fill]
                fill -= start
        return None

    def _emit(self, pcm: bytes, ungated: bytes | None = None) -> None:
        if ungated == pcm:
            ungated = None  # the gate let it through: one copy is enough
        self._post(self.on_frame, AudioFrame(pcm, self._index, time.monotonic(), ungated))
        self._index += 1
        self.stats.frames += 1
