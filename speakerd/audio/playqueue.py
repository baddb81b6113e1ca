"""The player's queue: what waits to be played, and how it is cut, held and faded.

Why apart from the device: everything here runs under one lock and decides what the next period
holds (reply audio through the stateful resampler, earcons and the alarm, fades at the start, end
and interruption of a reply, a held reply while an alarm rings); the writer thread in
``playback.py`` only opens the device and writes what this hands it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from speakerd.audio import earcons
from speakerd.audio.resample import StreamResampler, resample_once
from speakerd.config import AudioSettings
from speakerd.events import SAMPLE_RATE_OUT

log = logging.getLogger("speakerd.audio")
FADE_SECONDS = 0.005


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
    absolute: bool = False  # at its own level, whatever the volume (the alarm must be heard)


class PlayQueue:
    """The loop side (``play``, ``flush``, ``hold``, ``drain``) and the writer side (``_next_period``)."""

    def __init__(self, settings: AudioSettings) -> None:
        self.settings = settings
        self.stats = PlayerStats()
        self._queue: deque[_Chunk] = deque()  # volume not yet applied
        self._lock = threading.Condition()
        self._stop = False
        self._busy = False  # a period is being written
        self._resampler: StreamResampler | None = None  # replies: 24 kHz -> device rate, stateful
        self._rate = 0
        self._period = 0
        self._volume = settings.volume
        self._in_reply = False  # play() since the last end_of_reply()/flush()
        self._fade_in = True  # the next reply audio starts from silence
        self._dry = False  # an underrun was counted for the current dry spell
        self._handed = 0  # samples taken for the device, all time
        self._flush_mark = 0
        self._flush_at: float | None = None
        self._drainers: list[asyncio.Future[None]] = []
        self._held = False  # reply audio waits (hold()); sounds still play
        self._buffering = False  # a reply waits until playback_prebuffer_ms of it is queued
        self._period_is_reply = False  # the period being written holds reply audio (for the echo gate)

    def play(self, pcm: bytes, *, gain: float = 1.0) -> None:
        """Queue 24 kHz s16le mono reply audio; never blocks."""
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
        if not len(samples):
            return
        with self._lock:
            start = not self._in_reply
            self._in_reply = True
            self._dry = False
            if start:
                self._buffering = True  # a reply starts once playback_prebuffer_ms of it is queued
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
            self._settle()
            self._lock.notify_all()

    @property
    def has_work(self) -> bool:
        """Something playable waits (a held reply does not count)."""
        with self._lock:
            return self._playable() is not None

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._queue and not self._busy

    async def drain(self) -> None:
        """Wait until everything playable was written to the device (held reply audio waits on)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._playable() is None and not self._busy:
                return
            self._drainers.append(fut)
        await fut

    def play_earcon(self, name: str) -> None:
        """wake, end, error, mute, unmute (or camera), at ``earcon_volume``; off with ``earcons = false``."""
        if not self.settings.earcons:
            return
        self.play_sound(name, self.settings.earcon_volume)

    def play_sound(self, name: str, volume: int, *, absolute: bool = False) -> None:
        """An earcon-directory sound at ``volume`` percent, whatever ``earcons`` says: the alarm,
        which must ring even on a speaker whose owner turned the beeps off."""
        try:
            pcm, rate = earcons.load(name, self.settings.earcon_dir)
        except earcons.EarconError as e:
            log.warning("%s", e)
            return
        gain = volume / 100
        with self._lock:
            if self._rate:
                data, at = resample_once(pcm, rate, self._rate).astype(np.float32) * gain, self._rate
            else:
                data, at = pcm.astype(np.float32) * gain, rate
            self._queue.append(_Chunk(data, at, is_reply=False, absolute=absolute))
            self._lock.notify_all()

    def hold(self, on: bool) -> None:
        """Hold reply audio where it is (sounds still play): an alarm rings over a paused reply."""
        with self._lock:
            self._held = on
            self._lock.notify_all()

    def drop_sounds(self) -> None:
        """Drop queued sounds (not reply audio): a dismissed alarm stops at once."""
        with self._lock:
            kept = [c for c in self._queue if c.is_reply]
            self._queue.clear()
            self._queue.extend(kept)
            self._settle()
            self._lock.notify_all()

    def _settle(self) -> None:
        """Under the lock, after dropping audio: with nothing left to play and no period being
        written, resolve waiting drain()s now. The writer may be opening the device or waiting
        for work, and would not look at the queue again until more comes."""
        if not self._busy and self._playable() is None:
            self._wake_drainers()

    def _playable(self) -> int | None:
        """Index of the next chunk to play: while held, the first sound; a reply only once enough of
        it is queued to ride out a late packet (or it has ended); under the lock."""
        for i, chunk in enumerate(self._queue):
            if self._held and chunk.is_reply:
                continue
            if chunk.is_reply and self._buffering and self._in_reply:
                queued = sum(len(c.samples) / c.rate for c in self._queue if c.is_reply)
                if queued * 1000 < self.settings.playback_prebuffer_ms:
                    continue  # wait for more of the reply: a gap now would be an audible stutter
                self._buffering = False
            return i
        return None

    def _wake_drainers(self) -> None:
        """Under the lock or after the thread ended: resolve every waiting drain()."""
        drainers, self._drainers = self._drainers, []
        for fut in drainers:
            with contextlib.suppress(RuntimeError):
                fut.get_loop().call_soon_threadsafe(_resolve, fut)

    def _next_period(self) -> tuple[np.ndarray, bool] | None:
        """The next period's samples and whether a reply starts in it; None when stopping."""
        with self._lock:
            while self._playable() is None and not self._stop:
                if self._in_reply and not self._dry and not self._held and not self._buffering:
                    # The reply is not over (no end_of_reply/flush) but nothing is left to play:
                    # the network or the model fell behind the speaker. Buffer again before going on.
                    self.stats.underruns += 1
                    self._dry = True
                    self._fade_in = True
                    self._buffering = True
                self._busy = False
                self._wake_drainers()
                self._lock.wait()  # every change of queue or stop notifies: no idle wake-ups
            if self._stop:
                self._busy = False
                return None
            self._busy = True
            out = []
            starts = False
            need = self._period
            gain = self._volume / 100.0
            self._period_is_reply = False
            while need > 0 and (i := self._playable()) is not None:
                chunk = self._queue[i]
                if chunk.rate != self._rate:  # cannot happen once open; never write the wrong rate
                    del self._queue[i]
                    continue
                starts = starts or chunk.reply_start
                self._period_is_reply = self._period_is_reply or chunk.is_reply
                chunk.reply_start = False
                take = chunk.samples[:need]
                out.append(take if chunk.absolute else take * gain)
                need -= len(take)
                if len(take) == len(chunk.samples):
                    del self._queue[i]
                else:
                    chunk.samples = chunk.samples[len(take):]
            data = np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
            self._handed += len(data)
            self.stats.written_after_flush = self._handed - self._flush_mark
            return data, starts



def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
