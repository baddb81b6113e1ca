"""Playback: 24 kHz replies and earcons to the speaker, with a queue that can be dropped at once.

Why a writer thread that writes one short period at a time: the device only ever holds
``playback_buffer_ms`` (two host periods), everything else waits in our own queue, so an
interruption (the server's ``interrupted`` or the button) clears the queue and the speaker is
silent within one period. Volume is applied as each period is written, so a change is heard at
once; fades at the start, end and interruption of a reply keep the speaker from clicking.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
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
from speakerd.audio.echo import FarEndSink
from speakerd.audio.playqueue import PlayerStats, PlayQueue, _Chunk
from speakerd.audio.resample import StreamResampler, resample_once
from speakerd.config import AudioSettings
from speakerd.events import SAMPLE_RATE_IN, SAMPLE_RATE_OUT, DeviceFault
from speakerd.supervise import Supervised

log = logging.getLogger("speakerd.audio")
__all__ = ["Player", "PlayerStats"]
VOLUME_FILE = "volume.json"


class Player(PlayQueue):
    """The speaker: a writer thread that opens the device and writes what the queue hands it."""

    def __init__(self, settings: AudioSettings, state_dir: Path, loop: asyncio.AbstractEventLoop,
                 on_fault: Callable[[DeviceFault], None], *, echo: FarEndSink | None = None,
                 on_first_audio: Callable[[float], None] | None = None) -> None:
        super().__init__(settings)
        self.echo = echo
        self.state_dir = state_dir
        self.loop = loop
        self.on_fault = on_fault
        self.on_first_audio = on_first_audio
        self._worker = Supervised("speakerd-playback", self._run, on_crash=self._crashed)
        self._echo_resampler: StreamResampler | None = None
        self._down = False  # the device failed and no write has worked since (player thread only)
        self._volume = self._load_volume()

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
        """0..100, scales the samples from the next period on, and survives restarts."""
        self._volume = max(0, min(100, int(value)))
        tmp = self.state_dir / f".{VOLUME_FILE}.tmp"
        try:
            tmp.write_text(json.dumps({"volume": self._volume}))
            tmp.replace(self.state_dir / VOLUME_FILE)
        except OSError as e:
            with contextlib.suppress(OSError):  # a full disk must not keep a half-written file
                tmp.unlink()
            log.warning("cannot remember the volume in %s: %s", self.state_dir, e.strerror or e)

    @property
    def period(self) -> int:
        """Samples per write at the device rate (0 until the device is open)."""
        return self._period

    @property
    def rate(self) -> int:
        return self._rate

    # Loop side --------------------------------------------------------------------------------------

    def start(self) -> None:
        self._worker.start()

    def close(self) -> None:
        self._worker.stop()
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self._worker.join(timeout=3)
        self._wake_drainers()

    @property
    def alive(self) -> bool:
        return self._worker.alive

    def _crashed(self, message: str) -> None:
        """The writer thread failed (not the device: that is retried in ``_run``): what was queued
        is dropped, so nothing waits for audio that will not play, and the owner is told."""
        with self._lock:
            self._queue.clear()
            self._busy = False
            self._wake_drainers()
        self._post(self.on_fault, DeviceFault("output", message))

    # Writer thread ----------------------------------------------------------------------------------

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: shutting down
            self.loop.call_soon_threadsafe(fn, *args)

    def _open(self, pa: Any) -> Any:
        import pyaudio

        s = self.settings
        device = find_device(pa, s.output_device, "output") or default_device(pa, "output")
        if device is None:
            raise AudioDeviceError(no_device_message("output"))
        rate = s.output_rate
        if rate is None:
            rate = SAMPLE_RATE_OUT
            if not supports(pa, device, "output", rate, 1):
                rate = device.default_rate
        # PortAudio's ALSA stream holds two host periods: half the budget each.
        period = max(32, rate * s.playback_buffer_ms // 2000)
        try:
            stream = pa.open(format=pyaudio.paInt16, channels=1, rate=rate, output=True,
                             output_device_index=device.index, frames_per_buffer=period)
        except (OSError, ValueError) as e:
            raise AudioDeviceError(f"cannot open {device.name} at {rate} Hz: {e}") from None
        with contextlib.suppress(OSError, AttributeError):
            self.stats.device_buffer_ms = 1000.0 * stream.get_write_available() / rate
        with self._lock:
            pending = list(self._queue)
            self._queue.clear()
            self._rate, self._period = rate, period
            self._resampler = None
            self._echo_resampler = StreamResampler(rate, SAMPLE_RATE_IN, "LQ")
            last_reply = max((i for i, c in enumerate(pending) if c.is_reply and c.rate == SAMPLE_RATE_OUT),
                             default=-1)
            for i, chunk in enumerate(pending):  # queued before the device rate was known
                if chunk.rate != rate:
                    if chunk.is_reply and chunk.rate == SAMPLE_RATE_OUT:
                        samples = self._reply_resampler().process(chunk.samples)
                    else:
                        samples = resample_once(chunk.samples, chunk.rate, rate)
                    chunk = _Chunk(samples.astype(np.float32), rate, chunk.reply_start, chunk.is_reply, chunk.absolute)
                self._queue.append(chunk)
                if i == last_reply and not self._in_reply:
                    # The reply ended before the device opened: its held-back last ms follow it.
                    tail = self._reply_resampler().flush().astype(np.float32)
                    if len(tail):
                        self._queue.append(_Chunk(tail, rate))
        self.stats.device_rate = rate
        return stream

    def _run(self) -> None:
        delay = 0.5
        faulted = False
        while True:
            with self._lock:
                while not self._queue and not self._stop:
                    self._lock.wait()  # every change of queue or stop notifies: no idle wake-ups
                if self._stop:
                    return
            pa = None
            try:
                pa = pyaudio_instance()
                stream = self._open(pa)
            except Exception as e:
                if pa is not None:
                    pyaudio_release()
                if not faulted:
                    log.debug("speaker: %s", str(e).splitlines()[0])  # the owner logs on_fault
                    self._post(self.on_fault, DeviceFault("output", str(e).splitlines()[0]))
                    faulted = True
                with self._lock:  # nothing can be heard: do not let replies pile up
                    self._queue.clear()
                    self._wake_drainers()
                    self._lock.wait(delay)
                delay = min(delay * 2, self.settings.reopen_max_seconds)
                continue
            # Back only once audio went through (see _write_loop): a device can open fine and then
            # fail every write, and must not be reported back and lost again on every reply.
            self._down = faulted
            try:
                self._write_loop(stream)
            except OSError as e:
                if not self._down:  # once per outage, as for a device that will not open
                    log.debug("speaker stopped working: %s", e)
                    self._post(self.on_fault, DeviceFault("output", f"speaker stopped working: {e}"))
                self._down = True
                with self._lock:  # back off, and do not let replies pile up meanwhile
                    self._queue.clear()
                    self._wake_drainers()
                    self._lock.wait(delay)
                delay = min(delay * 2, self.settings.reopen_max_seconds)
            finally:
                faulted = self._down
                if not faulted:
                    delay = 0.5
                with contextlib.suppress(Exception):
                    if not faulted:
                        stream.stop_stream()  # plays out what the device holds (the last earcon)
                    stream.close()
                pyaudio_release()
                with self._lock:
                    self._busy = False
                    self._rate = 0  # the next device may differ
                    self._resampler = None

    def _write_loop(self, stream: Any) -> None:
        # Writes that fit in the device's buffer succeed even when the device is broken (ALSA finds
        # out as it moves the data on), so "back" waits until more than a buffer's worth went in.
        try:
            room = int(stream.get_write_available())
        except (OSError, AttributeError):
            room = self._period * 2  # PortAudio's ALSA stream holds two periods
        accepted = 0
        while True:
            got = self._next_period()
            if got is None:
                return
            data, starts = got
            if not len(data):
                continue
            pcm = np.clip(np.round(data), -32768, 32767).astype("<i2")  # the volume is applied
            if starts:
                now = time.monotonic()
                self.stats.first_write_monotonic = now
                if self.on_first_audio is not None:
                    self._post(self.on_first_audio, now)
            stream.write(pcm.tobytes(), exception_on_underflow=False)
            accepted += len(pcm)
            if self._down and accepted > room + self._period:
                self._down = False
                log.debug("speaker is back")
                self._post(self.on_fault, DeviceFault("output", "speaker is back", recovered=True))
            if self.echo is not None and self._echo_resampler is not None:
                self.echo.far_end(self._echo_resampler.process(pcm), reply=self._period_is_reply)
            self.stats.periods += 1
            self.stats.samples_written += len(pcm)
            with self._lock:
                if self._flush_at is not None and not self._queue:
                    self.stats.last_flush_seconds = time.monotonic() - self._flush_at
                    self._flush_at = None


