"""Voice activity detection, shaped by the setup's automaticActivityDetection.

Two detectors with one interface. ``SileroVad`` (the default for a room) is a neural VAD like the
real service's: speech is speech at any level, so the model's own voice coming back through the
room starts a turn (and barges in) exactly as a person would, and noise that is not speech does
not. ``EnergyVad`` is a loudness threshold, kept for tests that stand tones in for speech.

Time is counted in audio samples, not wall-clock time, so a turn ends at the same point of the
audio however fast the client sends it.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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


class Vad(Protocol):
    active: bool

    def reset(self) -> None: ...
    def feed(self, pcm: bytes, rate: int = 16000) -> list[VadEvent]: ...


VAD_KINDS = ("energy", "silero")
SILERO_CHUNK = 512  # samples at 16 kHz (32 ms): what the Silero v4 model takes
SILERO_FLOOR_DBFS = -70.0  # digital silence (a gated microphone) is never speech


def make_vad(kind: str, settings: VadSettings) -> Vad:
    if kind == "silero":
        return SileroVad(settings)
    if kind == "energy":
        return EnergyVad(settings)
    raise ValueError(f"unknown VAD {kind!r}; one of {', '.join(VAD_KINDS)}")


def silero_model_path() -> Path:
    """openWakeWord 0.5.1 ships Silero VAD v4 as ONNX among its resources."""
    import openwakeword

    return Path(openwakeword.__file__).parent / "resources" / "models" / "silero_vad.onnx"


@functools.lru_cache(maxsize=1)
def _silero_session() -> Any:
    """One ONNX session for the process (``run`` is thread-safe); each stream keeps its own state."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(silero_model_path()), sess_options=opts, providers=["CPUExecutionProvider"])


class SileroVad:
    """Feed 16-bit mono PCM; get start and end events from Silero's speech probability.

    The sensitivities map to probability thresholds: HIGH starts on p >= 0.5, LOW on p >= 0.7;
    a frame below the threshold minus 0.15 counts as silence (hysteresis, as Silero's own
    iterator does).
    """

    _lock = threading.Lock()

    def __init__(self, settings: VadSettings) -> None:
        self.settings = settings
        self.active = False
        self.start_threshold = 0.5 if settings.start_db <= -40 else 0.7
        self.end_threshold = self.start_threshold - 0.15
        self._session = _silero_session()
        self._state = np.zeros((2, 1, 64), dtype=np.float32), np.zeros((2, 1, 64), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._samples = 0
        self._speech_ms = 0.0
        self._quiet_ms = 0.0
        self.last_probability = 0.0

    def reset(self) -> None:
        self.active = False
        self._speech_ms = self._quiet_ms = 0.0

    def probability(self, chunk: np.ndarray) -> float:
        """Speech probability of 512 float samples at 16 kHz (the model's state carries on)."""
        rms = float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2))) + 1e-12
        h, c = self._state
        out, hn, cn = self._session.run(None, {"input": chunk[None, :], "sr": np.array(16000, dtype=np.int64),
                                               "h": h, "c": c})
        self._state = hn, cn
        if 20 * math.log10(rms) < SILERO_FLOOR_DBFS:
            return 0.0
        return float(out[0][0])

    def feed(self, pcm: bytes, rate: int = 16000) -> list[VadEvent]:
        usable = len(pcm) - len(pcm) % 2
        x = np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float32) / 32768.0
        if rate != 16000 and len(x):  # the service resamples whatever it is sent
            n = round(len(x) * 16000 / rate)
            x = np.interp(np.arange(n) * rate / 16000, np.arange(len(x)), x).astype(np.float32)
        samples = np.concatenate([self._pending, x])
        n = len(samples) // SILERO_CHUNK
        self._pending = samples[n * SILERO_CHUNK :]
        events: list[VadEvent] = []
        chunk_ms = 1000.0 * SILERO_CHUNK / 16000
        s = self.settings
        for i in range(n):
            p = self.probability(samples[i * SILERO_CHUNK : (i + 1) * SILERO_CHUNK])
            self.last_probability = p
            self._samples += SILERO_CHUNK
            offset = self._samples / 16000
            if not self.active:
                self._speech_ms = self._speech_ms + chunk_ms if p >= self.start_threshold else 0.0
                if self._speech_ms >= max(s.start_ms, 2 * chunk_ms):
                    self.active = True
                    self._quiet_ms = 0.0
                    events.append(VadEvent("start", offset - self._speech_ms / 1000))
            else:
                self._quiet_ms = self._quiet_ms + chunk_ms if p < self.end_threshold else 0.0
                if self._quiet_ms >= s.silence_ms:
                    self.active = False
                    self._speech_ms = 0.0
                    events.append(VadEvent("end", offset))
        return events
