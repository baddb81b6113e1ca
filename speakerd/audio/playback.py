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
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speakerd.audio import earcons
from speakerd.audio.devices import AudioDeviceError, find_device, pyaudio_instance, pyaudio_release, supports
from speakerd.audio.echo import FarEndSink
from speakerd.audio.resample import StreamResampler, resample_once
from speakerd.config import AudioSettings
from speakerd.events import SAMPLE_RATE_IN, SAMPLE_RATE_OUT, DeviceFault

log = logging.getLogger("speakerd.audio")
FADE_SECONDS = 0.005
VOLUME_FILE = "volume.json"


@dataclass
class PlayerStats:
    periods: int = 0
    samples_written: int = 0  # at the device rate, handed to the device
    underruns: int = 0  # replies that ran dry before they ended
    flushes: int = 0
    first_write_monotonic: float | None = None  # when the current reply's first samples were written
    written_after_flush: int = 0  # samples handed to the device after the last flush() (the fade)
    last_flush_seconds: float | None = None  # flush() to the last pre-silence write returning
    device_rate: int = 0
    device_buffer_ms: float = 0.0  # what the device can hold, as PortAudio reports it


@dataclass
class _Chunk:
    samples: np.ndarray  # float32; at the device rate once it is open, else at ``rate``
    rate: int
    reply_start: bool = False  # the first audio of a reply: its write is the reply's first audio
    is_reply: bool = True  # reply audio (resampled by the stateful reply resampler) vs an earcon


class Player:
    def __init__(self, settings: AudioSettings, state_dir: Path, loop: asyncio.AbstractEventLoop,
                 on_fault: Callable[[DeviceFault], None], *, echo: FarEndSink | None = None,
                 on_first_audio: Callable[[float], None] | None = None) -> None:
        self.settings = settings
        self.echo = echo
        self.state_dir = state_dir
        self.loop = loop
        self.on_fault = on_fault
        self.on_first_audio = on_first_audio
        self.stats = PlayerStats()
        self._queue: deque[_Chunk] = deque()  # volume not yet applied
        self._lock = threading.Condition()
        self._stop = False
        self._busy = False  # a period is being written
        self._period_is_reply = False  # the period being written holds reply audio (for the echo gate)
        self._thread: threading.Thread | None = None
        self._resampler: StreamResampler | None = None  # replies: 24 kHz -> device rate, stateful
        self._echo_resampler: StreamResampler | None = None
        self._rate = 0
        self._period = 0
        self._volume = self._load_volume()
        self._in_reply = False  # play() since the last end_of_reply()/flush()
        self._fade_in = True  # the next reply audio starts from silence
        self._dry = False  # an underrun was counted for the current dry spell
        self._down = False  # the device failed and no write has worked since (player thread only)
        self._handed = 0  # samples taken for the device, all time
        self._flush_mark = 0
        self._flush_at: float | None = None
        self._drainers: list[asyncio.Future[None]] = []

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
        self._thread = threading.Thread(target=self._run, name="speakerd-playback", daemon=True)
        self._thread.start()

    def play(self, pcm: bytes, *, gain: float = 1.0) -> None:
        """Queue 24 kHz s16le mono reply audio; never blocks."""
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
        if not len(samples):
            return
        with self._lock:
            start = not self._in_reply
            self._in_reply = True
            self._dry = False
            if self._rate:
                data = self._reply_resampler().process(samples).astype(np.float32) * gain
                rate = self._rate
            else:  # the device is not open yet: converted when it is
                data, rate = samples.astype(np.float32) * gain, SAMPLE_RATE_OUT
            if self._fade_in and len(data):
                self._ramp(data, rate, up=True)
                self._fade_in = False
            self._queue.append(_Chunk(data, rate, reply_start=start))
            self._lock.notify_all()

    def _reply_resampler(self) -> StreamResampler:
        if self._resampler is None:
            self._resampler = StreamResampler(SAMPLE_RATE_OUT, self._rate)
        return self._resampler

    @staticmethod
    def _ramp(data: np.ndarray, rate: int, *, up: bool) -> None:
        n = min(len(data), int(FADE_SECONDS * rate))
        if n:
            ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
            if up:
                data[:n] *= ramp
            else:
                data[-n:] *= ramp[::-1]

    def end_of_reply(self) -> None:
        """The reply is complete: play out the resampler's last samples and fade the tail."""
        with self._lock:
            if self._resampler is not None:
                tail = self._resampler.flush().astype(np.float32)
                if len(tail):
                    self._queue.append(_Chunk(tail, self._rate))
            for chunk in reversed(self._queue):
                if chunk.is_reply and len(chunk.samples):
                    self._ramp(chunk.samples, chunk.rate, up=False)
                    break
            self._in_reply = False
            self._fade_in = True
            self._lock.notify_all()

    def flush(self) -> None:
        """Drop everything not yet in the device: what is left is at most one period, faded out."""
        with self._lock:
            tail: list[_Chunk] = []
            if self._busy and self._queue and self._rate:
                # The speaker is mid-sound: continue for a few ms, fading to silence, not a cliff.
                n = int(FADE_SECONDS * self._rate)
                got = []
                for chunk in self._queue:
                    if chunk.rate != self._rate or n <= 0:
                        break
                    got.append(chunk.samples[:n])
                    n -= len(got[-1])
                if got:
                    data = np.concatenate(got).astype(np.float32)
                    self._ramp(data, self._rate, up=False)
                    data[-1:] = 0.0
                    tail.append(_Chunk(data, self._rate))
            self._queue.clear()
            self._queue.extend(tail)
            self._in_reply = False
            self._fade_in = True
            self._dry = False
            self.stats.flushes += 1
            self.stats.first_write_monotonic = None
            self._resampler = None
            self._flush_mark = self._handed
            self.stats.written_after_flush = 0
            self._flush_at = time.monotonic() if self._busy else None
            if self._flush_at is None:
                self.stats.last_flush_seconds = 0.0
            self._lock.notify_all()

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._queue and not self._busy

    async def drain(self) -> None:
        """Wait until everything queued has been written to the device."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if not self._queue and not self._busy:
                return
            self._drainers.append(fut)
        await fut

    def play_earcon(self, name: str) -> None:
        """wake, end, error, mute, unmute (or camera), at ``earcon_volume``; off with ``earcons = false``."""
        if not self.settings.earcons:
            return
        try:
            pcm, rate = earcons.load(name, self.settings.earcon_dir)
        except earcons.EarconError as e:
            log.warning("%s", e)
            return
        gain = self.settings.earcon_volume / 100
        with self._lock:
            if self._rate:
                data, at = resample_once(pcm, rate, self._rate).astype(np.float32) * gain, self._rate
            else:
                data, at = pcm.astype(np.float32) * gain, rate
            self._queue.append(_Chunk(data, at, is_reply=False))
            self._lock.notify_all()

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=3)
        self._wake_drainers()

    # Writer thread ----------------------------------------------------------------------------------

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: shutting down
            self.loop.call_soon_threadsafe(fn, *args)

    def _wake_drainers(self) -> None:
        """Under the lock or after the thread ended: resolve every waiting drain()."""
        drainers, self._drainers = self._drainers, []
        for fut in drainers:
            with contextlib.suppress(RuntimeError):
                fut.get_loop().call_soon_threadsafe(_resolve, fut)

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
        # PortAudio's ALSA stream holds two host periods: half the budget each.
        period = max(32, rate * s.playback_buffer_ms // 2000)
        try:
            stream = pa.open(format=pyaudio.paInt16, channels=1, rate=rate, output=True,
                             output_device_index=device.index if device else None, frames_per_buffer=period)
        except (OSError, ValueError) as e:
            name = device.name if device else "the default output"
            raise AudioDeviceError(f"cannot open {name} at {rate} Hz: {e}") from None
        with contextlib.suppress(OSError, AttributeError):
            self.stats.device_buffer_ms = 1000.0 * stream.get_write_available() / rate
        with self._lock:
            pending = list(self._queue)
            self._queue.clear()
            self._rate, self._period = rate, period
            self._resampler = None
            self._echo_resampler = StreamResampler(rate, SAMPLE_RATE_IN)
            for chunk in pending:  # queued before the device rate was known
                if chunk.rate != rate:
                    if chunk.is_reply and chunk.rate == SAMPLE_RATE_OUT:
                        samples = self._reply_resampler().process(chunk.samples)
                    else:
                        samples = resample_once(chunk.samples, chunk.rate, rate)
                    chunk = _Chunk(samples.astype(np.float32), rate, chunk.reply_start, chunk.is_reply)
                self._queue.append(chunk)
        self.stats.device_rate = rate
        return stream

    def _next_period(self) -> tuple[np.ndarray, bool] | None:
        """The next period's samples and whether a reply starts in it; None when stopping.

        ``self._period_is_reply`` says whether reply audio is in it (not only an earcon).
        """
        with self._lock:
            while not self._queue and not self._stop:
                if self._in_reply and not self._dry:
                    # The reply is not over (no end_of_reply/flush) but nothing is left to play:
                    # the network or the model fell behind the speaker.
                    self.stats.underruns += 1
                    self._dry = True
                    self._fade_in = True
                self._busy = False
                self._wake_drainers()
                self._lock.wait(0.5)
            if self._stop:
                self._busy = False
                return None
            self._busy = True
            out = []
            starts = False
            self._period_is_reply = False
            need = self._period
            while need > 0 and self._queue:
                chunk = self._queue[0]
                if chunk.rate != self._rate:  # cannot happen once open; never write the wrong rate
                    self._queue.popleft()
                    continue
                starts = starts or chunk.reply_start
                self._period_is_reply = self._period_is_reply or chunk.is_reply
                chunk.reply_start = False
                take = chunk.samples[:need]
                out.append(take)
                need -= len(take)
                if len(take) == len(chunk.samples):
                    self._queue.popleft()
                else:
                    chunk.samples = chunk.samples[len(take):]
            data = np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
            self._handed += len(data)
            self.stats.written_after_flush = self._handed - self._flush_mark
            return data, starts

    def _run(self) -> None:
        delay = 0.5
        faulted = False
        while True:
            with self._lock:
                while not self._queue and not self._stop:
                    self._lock.wait(0.5)
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
            gain = self._volume / 100.0
            pcm = np.clip(np.round(data * gain), -32768, 32767).astype("<i2")
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


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
