"""Energy-based voice activity detection, shaped by the setup's automaticActivityDetection.

Time is counted in audio samples, not wall-clock time, so a turn ends at the same point of the
audio however fast the client sends it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from speakerd_workshop.emulator.wire import Json

FRAME_SECONDS = 0.02
DEFAULT_SILENCE_MS = 800


@dataclass(frozen=True)
class VadSettings:
    start_db: float  # a frame this loud (dBFS RMS) counts toward speech starting
    end_db: float  # once speaking, a frame quieter than this counts as silence
    start_ms: int  # speech needed before the start is committed
    silence_ms: int  # silence needed to end the turn

    @classmethod
    def from_setup(cls, aad: Json | None) -> VadSettings:
        aad = aad or {}
        high_start = aad.get("startOfSpeechSensitivity", "START_SENSITIVITY_HIGH") != "START_SENSITIVITY_LOW"
        high_end = aad.get("endOfSpeechSensitivity", "END_SENSITIVITY_HIGH") != "END_SENSITIVITY_LOW"
        start_db = -42.0 if high_start else -32.0
        # A sensitive end detector treats soft trailing sound as silence and ends sooner.
        end_db = start_db if high_end else start_db - 8.0
        start_ms = max(int(aad.get("prefixPaddingMs") or 0), 40 if high_start else 120)
        silence = aad.get("silenceDurationMs")
        silence_ms = DEFAULT_SILENCE_MS if silence is None else int(silence)
        return cls(start_db, end_db, start_ms, silence_ms)


@dataclass(frozen=True)
class VadEvent:
    kind: str  # "start" or "end"
    offset: float  # seconds of audio received on this connection when it happened


class EnergyVad:
    """Feed 16-bit mono PCM; get start and end events."""

    def __init__(self, settings: VadSettings) -> None:
        self.settings = settings
        self.active = False
        self._pending = np.zeros(0, dtype=np.int16)
        self._rate = 16000
        self._samples = 0
        self._loud_ms = 0.0
        self._quiet_ms = 0.0

    def reset(self) -> None:
        self.active = False
        self._loud_ms = self._quiet_ms = 0.0

    def feed(self, pcm: bytes, rate: int = 16000) -> list[VadEvent]:
        if rate != self._rate:
            self._rate = rate
            self._pending = np.zeros(0, dtype=np.int16)
        usable = len(pcm) - len(pcm) % 2
        samples = np.concatenate([self._pending, np.frombuffer(pcm[:usable], dtype="<i2")])
        frame = max(1, int(rate * FRAME_SECONDS))
        n = len(samples) // frame
        self._pending = samples[n * frame :]
        events: list[VadEvent] = []
        frame_ms = 1000.0 * frame / rate
        for i in range(n):
            chunk = samples[i * frame : (i + 1) * frame].astype(np.float64)
            rms = math.sqrt(float(np.mean(chunk * chunk))) / 32768.0
            db = 20.0 * math.log10(rms) if rms > 0 else -120.0
            self._samples += frame
            offset = self._samples / rate
            s = self.settings
            if not self.active:
                self._loud_ms = self._loud_ms + frame_ms if db >= s.start_db else 0.0
                if self._loud_ms >= s.start_ms:
                    self.active = True
                    self._quiet_ms = 0.0
                    events.append(VadEvent("start", offset))
            else:
                self._quiet_ms = self._quiet_ms + frame_ms if db < s.end_db else 0.0
                if self._quiet_ms >= s.silence_ms:
                    self.active = False
                    self._loud_ms = 0.0
                    events.append(VadEvent("end", offset))
        return events
