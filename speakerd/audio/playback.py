"""Playback: 24 kHz replies and earcons to the speaker, with a queue that can be dropped at once.

Why a writer thread that writes one short period at a time: the device only ever holds a period
or two, everything else waits in our own queue, so an interruption (the server's ``interrupted``
or the button) clears the queue and the speaker is silent within one period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speakerd.audio import earcons
from speakerd.audio.aec import EchoCanceller
from speakerd.audio.devices import AudioDeviceError, find_device, pyaudio_instance, pyaudio_release, supports
from speakerd.audio.resample import StreamResampler
from speakerd.config import AudioSettings
from speakerd.events import SAMPLE_RATE_IN, SAMPLE_RATE_OUT, DeviceFault

log = logging.getLogger("speakerd.audio")
FADE_SECONDS = 0.005
VOLUME_FILE = "volume.json"


@dataclass
class PlayerStats:
    periods: int = 0
    samples_written: int = 0
    underruns: int = 0
    flushes: int = 0
    first_write_monotonic: float | None = None  # of the current reply
    device_rate: int = 0


class Player:
    def __init__(self, settings: AudioSettings, state_dir: Path, loop: asyncio.AbstractEventLoop,
                 on_fault: Callable[[DeviceFault], None], *, echo: EchoCanceller | None = None) -> None:
        self.settings = settings
        self.echo = echo
        self._echo_resampler: StreamResampler | None = None
        self.state_dir = state_dir
        self.loop = loop
        self.on_fault = on_fault
        self.stats = PlayerStats()
        self._queue: deque[np.ndarray] = deque()  # int16 at the device rate, volume not yet applied
        self._lock = threading.Condition()
        self._stop = False
        self._busy = False  # a period is being written
        self._thread: threading.Thread | None = None
        self._resampler: StreamResampler | None = None
        self._rate = 0
        self._period = 0
        self._volume = self._load_volume()
        self._fresh = True  # the next audio starts a reply: fade in

    # Volume -----------------------------------------------------------------------------------------

    def _load_volume(self) -> int:
        try:
            value = json.loads((self.state_dir / VOLUME_FILE).read_text())["volume"]
            if isinstance(value, int) and 0 <= value <= 100:
                return value
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return self.settings.volume

    @property
    def volume(self) -> int:
        return self._volume

    @volume.setter
    def volume(self, value: int) -> None:
        self._volume = max(0, min(100, int(value)))
        try:
            tmp = self.state_dir / f".{VOLUME_FILE}.tmp"
            tmp.write_text(json.dumps({"volume": self._volume}))
            tmp.replace(self.state_dir / VOLUME_FILE)
        except OSError as e:
            log.warning("cannot remember the volume in %s: %s", self.state_dir, e.strerror or e)

    # Loop side --------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="speakerd-playback", daemon=True)
        self._thread.start()

    def play(self, pcm: bytes, *, gain: float = 1.0) -> None:
        """Queue 24 kHz s16le mono; never blocks."""
        self._enqueue(np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2"), SAMPLE_RATE_OUT, gain)

    def _enqueue(self, samples: np.ndarray, rate: int, gain: float) -> None:
        with self._lock:
            if self._rate == 0:  # the device is not open yet: keep it at its own rate for now
                self._queue.append(samples.astype(np.float32) * gain)
                self._lock.notify_all()
                return
            data = self._convert(samples, rate) * gain
            if self._fresh and not self._queue and len(data):
                n = min(len(data), int(FADE_SECONDS * self._rate))
                data[:n] *= np.linspace(0.0, 1.0, n, dtype=np.float32)
                self._fresh = False
            self._queue.append(data)
            self._lock.notify_all()

    def _convert(self, samples: np.ndarray, rate: int) -> np.ndarray:
        if rate == self._rate:
            return samples.astype(np.float32)
        if rate == SAMPLE_RATE_OUT and self._resampler is not None:
            return self._resampler.process(samples).astype(np.float32)
        return StreamResampler(rate, self._rate).process(np.concatenate(
            [samples, np.zeros(64, dtype=np.int16)])).astype(np.float32)

    def end_of_reply(self) -> None:
        """Fade the tail of what is queued so the reply does not end with a click."""
        with self._lock:
            if self._queue:
                tail = self._queue[-1]
                n = min(len(tail), int(FADE_SECONDS * (self._rate or SAMPLE_RATE_OUT)))
                if n:
                    tail[-n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)
            self._fresh = True

    def flush(self) -> None:
        """Drop everything not yet in the device: silent within one period."""
        with self._lock:
            self._queue.clear()
            self._fresh = True
            self.stats.flushes += 1
            self.stats.first_write_monotonic = None
            if self._resampler is not None:
                self._resampler = StreamResampler(SAMPLE_RATE_OUT, self._rate)

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._queue and not self._busy

    async def drain(self) -> None:
        while not self.idle:  # noqa: ASYNC110 - a 20 ms poll is cheaper than a cross-thread event here
            await asyncio.sleep(0.02)

    def play_earcon(self, name: str) -> None:
        if not self.settings.earcons:
            return
        try:
            pcm, rate = earcons.load(name, self.settings.earcon_dir)
        except earcons.EarconError as e:
            log.warning("%s", e)
            return
        self._fresh = True
        self._enqueue(pcm, rate, self.settings.earcon_volume / 100)
        self._fresh = True

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=3)

    # Writer thread ----------------------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self._stop

    def _post(self, event: DeviceFault) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.on_fault, event)

    def _open(self, pa: Any) -> Any:
        import pyaudio

        s = self.settings
        device = find_device(pa, s.output_device, "output")
        rate = s.output_rate
        if rate is None:
            rate = SAMPLE_RATE_OUT
            if not supports(pa, device, "output", rate, 1):
                info = pa.get_default_output_device_info()
                rate = device.default_rate if device else int(info["defaultSampleRate"])
        period = max(64, rate // 50)  # 20 ms
        buffers = max(1, round(s.playback_buffer_ms / 20))
        try:
            stream = pa.open(format=pyaudio.paInt16, channels=1, rate=rate, output=True,
                             output_device_index=device.index if device else None,
                             frames_per_buffer=period * buffers)
        except (OSError, ValueError) as e:
            name = device.name if device else "the default output"
            raise AudioDeviceError(f"cannot open {name} at {rate} Hz: {e}") from None
        with self._lock:
            pending = list(self._queue)
            self._queue.clear()
            self._rate, self._period = rate, period
            self._resampler = StreamResampler(SAMPLE_RATE_OUT, rate)
            self._echo_resampler = StreamResampler(rate, SAMPLE_RATE_IN)
            for chunk in pending:  # queued before the device was known: assumed 24 kHz
                self._queue.append(self._convert(chunk.astype(np.int16), SAMPLE_RATE_OUT))
        self.stats.device_rate = rate
        return stream

    def _next_period(self) -> np.ndarray | None:
        with self._lock:
            if not self._queue and not self._fresh:
                # The reply is not over (no end_of_reply/flush) but nothing is left to play: the
                # network or the model fell behind the speaker.
                self.stats.underruns += 1
                self._fresh = True
            while not self._queue and not self._stop:
                self._busy = False
                self._lock.wait(0.5)
            if self._stop:
                return None
            self._busy = True
            out = []
            need = self._period
            while need > 0 and self._queue:
                chunk = self._queue[0]
                take = chunk[:need]
                out.append(take)
                need -= len(take)
                if len(take) == len(chunk):
                    self._queue.popleft()
                else:
                    self._queue[0] = chunk[len(take):]
            return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def _run(self) -> None:
        delay = 0.5
        faulted = False
        while not self._stopping():
            with self._lock:
                while not self._queue and not self._stop:
                    self._lock.wait(0.5)
            if self._stopping():
                return
            pa = None
            try:
                pa = pyaudio_instance()
                stream = self._open(pa)
            except Exception as e:
                if pa is not None:
                    pyaudio_release()
                if not faulted:
                    self._post(DeviceFault("output", str(e).splitlines()[0]))
                    faulted = True
                with self._lock:  # nothing can be heard: do not let replies pile up
                    self._queue.clear()
                    self._lock.wait(delay)
                delay = min(delay * 2, self.settings.reopen_max_seconds)
                continue
            if faulted:
                self._post(DeviceFault("output", "speaker is back", recovered=True))
                faulted = False
            delay = 0.5
            try:
                self._write_loop(stream)
            except OSError as e:
                self._post(DeviceFault("output", f"speaker stopped working: {e}"))
                faulted = True
            finally:
                with contextlib.suppress(Exception):
                    stream.close()
                pyaudio_release()
                with self._lock:
                    self._busy = False

    def _write_loop(self, stream: Any) -> None:
        while True:
            data = self._next_period()
            if data is None:
                return
            if not len(data):
                continue
            gain = self._volume / 100.0
            pcm = np.clip(np.round(data * gain), -32768, 32767).astype("<i2")
            if self.stats.first_write_monotonic is None:
                self.stats.first_write_monotonic = time.monotonic()
            stream.write(pcm.tobytes(), exception_on_underflow=False)
            if self.echo is not None and self._echo_resampler is not None:
                self.echo.far_end(self._echo_resampler.process(pcm))
            self.stats.periods += 1
            self.stats.samples_written += len(pcm)
