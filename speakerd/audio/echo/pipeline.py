"""The echo pipeline: time line, delay search, canceller and gate between the speaker and the mic.

Why one object: the player hands it what was really played (``far_end``, after the volume) and the
capture thread runs every frame through ``process``; the two existing hooks of Player and Capture
are all it needs, so the daemon wires it exactly where the old Speex canceller went.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from speakerd.audio.echo.backends import BLOCK, EchoBackend, make_backend
from speakerd.audio.echo.delay import DelayEstimator
from speakerd.audio.echo.gate import EchoGate
from speakerd.audio.echo.settings import EchoSettings
from speakerd.audio.echo.timeline import ReferenceTimeline
from speakerd.systemd import fields

log = logging.getLogger("speakerd.audio")
LEAD = 80  # samples (5 ms): the reference leads the echo a little; a canceller cannot look ahead
RESET_JUMP = 640  # a delay change over 40 ms outdates the filter
IDLE_SECONDS = 1.0  # after the tail, with nothing played, the canceller rests (idle CPU)
MIN_BURST = 8000  # samples of a burst's echo heard before its delay is measured (0.5 s)
ERLE_WINDOW = 8000  # samples (0.5 s) per ERLE measurement
CONVERGED_DB = 10.0


@dataclass
class BurstStats:
    """One stretch of playback (a reply): what the canceller achieved on it."""

    started: int = 0  # microphone sample index
    samples: int = 0
    erle: list[float] = field(default_factory=list)  # per 0.5 s window
    converged_after: float | None = None  # seconds from the start to the first window at CONVERGED_DB
    passed_blocks: int = 0
    active_blocks: int = 0
    cpu_seconds: float = 0.0


class EchoPipeline:
    """16 kHz mono int16 in and out. Thread-safe between one player and one capture thread."""

    def __init__(self, settings: EchoSettings, rate: int = 16000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.rate = rate
        self.timeline = ReferenceTimeline(rate, clock)
        self.delay = DelayEstimator(rate, settings.max_delay_ms)
        self.backend: EchoBackend = make_backend(settings.canceller, rate, settings.tail_ms)
        self.gate = EchoGate(settings, with_canceller=settings.canceller != "none")
        self._mic_hist = np.zeros(self.delay.window, dtype=np.float32)
        self._used_delay = 0
        self._verified_end = -1  # microphone index of the last delay measured
        self.cleaned = np.zeros(0, dtype=np.int16)
        self._idle_since: int | None = None
        self._acc = [0.0, 0.0, 0]  # mic power, cleaned power, samples in the current ERLE window
        self.burst: BurstStats | None = None
        self.bursts: list[BurstStats] = []
        self.on_burst: Callable[[BurstStats], None] | None = self._log_burst

    # Player side ----------------------------------------------------------------------------------

    def far_end(self, samples: np.ndarray, reply: bool = True) -> None:
        """What was just handed to the speaker, at 16 kHz, after the volume (``reply``: not an earcon)."""
        self.timeline.write(samples, reply=reply)

    # Capture side ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """The microphone (re)opened: its sample count starts afresh, the filter is stale."""
        self.timeline.reset_mic()
        self.backend.reset()

    def process(self, frame: np.ndarray) -> np.ndarray:
        t0 = time.thread_time()
        mic = np.ascontiguousarray(frame, dtype=np.int16)
        n = len(mic) - len(mic) % BLOCK
        if n == 0:
            return mic
        mic = mic[:n]
        end = self.timeline.mic_block(n)
        self._mic_hist = np.concatenate([self._mic_hist[n:], mic.astype(np.float32)])
        start = end - n
        if self.timeline.written_end < start - self.rate * (self.settings.tail_ms / 1000 + IDLE_SECONDS) \
                - self._used_delay and not self.gate.playing:
            self._end_burst()
            return mic  # nothing played for a while: no echo to remove
        burst_start = self.timeline.burst_start
        if self.delay.due(n) and end - burst_start >= MIN_BURST + self._used_delay:
            estimates = self.delay.estimates
            first = end - self.delay.window - self.delay.max_delay
            ref = self.timeline.read(first, end)
            # Only this burst: the one before was placed with another offset and would vouch for it.
            ref[: max(0, min(len(ref), self.timeline.burst_start - first))] = 0.0
            d = self.delay.estimate(self._mic_hist, ref)
            if self.delay.estimates > estimates:
                self._verified_end = end
            if d is not None:
                d = max(0, d - LEAD)
                if abs(d - self._used_delay) > RESET_JUMP:
                    self.backend.reset()
                if d != self._used_delay:
                    log.debug("echo delay %d ms (confidence %.0f)", (d + LEAD) * 1000 // self.rate,
                              self.delay.confidence)
                self._used_delay = d
        d = self._used_delay
        ref16 = np.clip(np.round(self.timeline.read(start - d, end - d)), -32768, 32767).astype(np.int16)
        out = self.backend.process(mic, ref16)
        # The gate's reference: the loudest block the echo could come from. Until the delay is
        # known that is anywhere up to max_delay back; once known, within a block or two of it.
        if self.delay.delay is None:
            lo, hi = 0, self.delay.max_delay
        else:
            lo, hi = max(0, d - 2 * BLOCK), d + 2 * BLOCK + LEAD
        lo -= lo % BLOCK
        ref = self.timeline.read(start - hi - BLOCK, end - lo)
        power = (ref[: len(ref) - len(ref) % BLOCK].astype(np.float64) ** 2).reshape(-1, BLOCK).mean(axis=1)
        width = len(power) - n // BLOCK + 1
        spread = np.lib.stride_tricks.sliding_window_view(power, width).max(axis=1)[-(n // BLOCK):]
        before = (self.gate.blocks_active, self.gate.blocks_passed)
        # Every burst (a reply, or playback after the speaker ran dry) starts with a new offset
        # between the time line and the speaker: trusted only once measured again.
        aligned = (self.delay.delay is not None
                   and self._verified_end >= burst_start + self._used_delay + MIN_BURST)
        # Inside a reply (its pauses too) until its last sample's echo and reverberation are over.
        reach = (self._used_delay if aligned else self.delay.max_delay) + self.rate * self.settings.tail_ms // 1000
        written = self.timeline.reply_end
        in_burst = written > 0 and burst_start < end and start - reach < written
        gated = self.gate.process(out, spread, aligned=aligned, in_burst=in_burst,
                                  mic=None if self.settings.canceller == "none" else mic)
        self.cleaned = out  # before the gate: for the stop-word detector, which must hear over the reply
        self._account(start, mic, out, before, time.thread_time() - t0)
        return gated

    # Statistics -----------------------------------------------------------------------------------

    def _account(self, start: int, mic: np.ndarray, out: np.ndarray, before: tuple[int, int], cpu: float) -> None:
        if not self.gate.playing and self.burst is None:
            return
        if self.burst is None:
            self.burst = BurstStats(started=start)
        b = self.burst
        b.samples += len(mic)
        b.cpu_seconds += cpu
        b.active_blocks += self.gate.blocks_active - before[0]
        b.passed_blocks += self.gate.blocks_passed - before[1]
        self._acc[0] += float(np.sum(mic.astype(np.float64) ** 2))
        self._acc[1] += float(np.sum(out.astype(np.float64) ** 2))
        self._acc[2] += len(mic)
        if self._acc[2] >= ERLE_WINDOW:
            erle = 10 * math.log10((self._acc[0] + 1.0) / (self._acc[1] + 1.0))
            b.erle.append(erle)
            if b.converged_after is None and erle >= CONVERGED_DB:
                b.converged_after = b.samples / self.rate
            self._acc = [0.0, 0.0, 0]
        if not self.gate.playing:
            self._end_burst()

    def _end_burst(self) -> None:
        if self.burst is None:
            return
        b, self.burst = self.burst, None
        self._acc = [0.0, 0.0, 0]
        self.bursts = [*self.bursts[-99:], b]
        if self.on_burst is not None and b.samples >= self.rate:
            self.on_burst(b)

    def _log_burst(self, b: BurstStats) -> None:
        seconds = b.samples / self.rate
        erle = sorted(b.erle)[len(b.erle) // 2] if b.erle else 0.0
        conv = f"{b.converged_after:.1f}" if b.converged_after is not None else "never"
        passed = 100.0 * b.passed_blocks / max(1, b.active_blocks)
        delay_ms = (self._used_delay + LEAD) * 1000 // self.rate
        log.info("echo over %.1f s of playback: ERLE %.1f dB, %s s to %g dB, delay %d ms, microphone "
                 "passed %.0f%% of it, %.1f ms CPU per s",
                 seconds, erle, conv, CONVERGED_DB, delay_ms, passed, 1000 * b.cpu_seconds / seconds,
                 extra=fields(echo_seconds=f"{seconds:.2f}", erle_db=f"{erle:.1f}", converged_s=conv,
                              delay_ms=delay_ms, passed_pct=f"{passed:.1f}",
                              cpu_ms_per_s=f"{1000 * b.cpu_seconds / seconds:.2f}"))
