"""What the daemon measures: the watchdog's health, latency figures and local speech.

Why local speech detection: the server decides turns, but the daemon must know that a person is
talking to keep the follow-up window open and to time "end of speech to first reply audio". A
plain energy threshold is enough for that; it never decides what the service hears.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from speakerd import systemd
from speakerd.events import AudioFrame

log = logging.getLogger("speakerd")

SPEECH_DBFS = -38.0  # louder than this for SPEECH_FRAMES frames in a row is speech
SPEECH_FRAMES = 3
SPEECH_EVENT_EVERY = 0.5  # seconds between UserSpeech events while talking


@dataclass
class Health:
    """What the watchdog needs to know; parts update it from the loop."""

    started: float = field(default_factory=time.monotonic)
    last_frame: float | None = None  # monotonic time of the newest microphone frame
    mic_expected: bool = False  # False while muted, failed, or before capture starts
    frame_timeout: float = 5.0

    def expect_frames(self, on: bool) -> None:
        if on and not self.mic_expected:
            self.last_frame = time.monotonic()  # the clock starts now, not at the last frame
        self.mic_expected = on

    def problem(self) -> str | None:
        if not self.mic_expected:
            return None
        now = time.monotonic()
        last = self.last_frame if self.last_frame is not None else self.started
        if now - last > self.frame_timeout:
            return f"no microphone frames for {now - last:.1f} s"
        return None


@dataclass
class Metrics:
    """Latency figures of the current and previous conversations, for journald and speakerctl."""

    conversations: int = 0
    reconnects: int = 0
    wake_at: float | None = None
    speech_end_at: float | None = None  # last loud microphone frame before a reply
    waiting_first_audio: bool = False
    latest: dict[str, float] = field(default_factory=dict)

    def record(self, name: str, seconds: float) -> None:
        self.latest[name] = round(seconds, 4)
        log.info("%s %.3f s", name.replace("_", " "), seconds, extra=systemd.fields(**{name: f"{seconds:.4f}"}))

    def first_reply_audio(self) -> None:
        """The first reply audio after the person spoke: time it once."""
        if self.waiting_first_audio and self.speech_end_at is not None:
            self.waiting_first_audio = False
            self.record("speech_end_to_first_audio", time.monotonic() - self.speech_end_at)

    def session_ready(self) -> None:
        if self.wake_at is not None:
            self.record("wake_to_streaming", time.monotonic() - self.wake_at)
            self.wake_at = None


def dbfs(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    if samples.size == 0:
        return -120.0
    rms = math.sqrt(float(np.mean(samples * samples)))
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -120.0


class SpeechDetector:
    """Loud frames in a row mean a person is talking (said at most every half second); quiet for
    ``pause_frames`` after that means they paused (said once)."""

    def __init__(self, metrics: Metrics, pause_frames: int = 9) -> None:
        self._metrics = metrics
        self.pause_frames = pause_frames
        self._loud_frames = 0
        self._quiet_frames = 0
        self._talking = False
        self._last_event = 0.0

    def reset(self) -> None:
        self._loud_frames = self._quiet_frames = 0
        self._talking = False

    def feed(self, frame: AudioFrame) -> Literal["speech", "paused"] | None:
        """What the daemon should tell the machine about this frame, if anything."""
        if dbfs(frame.pcm) <= SPEECH_DBFS:
            self._loud_frames = 0
            self._quiet_frames += 1
            if self._talking and self._quiet_frames >= self.pause_frames:
                self._talking = False
                return "paused"
            return None
        self._loud_frames += 1
        if self._loud_frames < SPEECH_FRAMES:
            return None
        self._quiet_frames = 0
        self._talking = True
        self._metrics.speech_end_at = frame.monotonic
        self._metrics.waiting_first_audio = True
        if frame.monotonic - self._last_event < SPEECH_EVENT_EVERY:
            return None
        self._last_event = frame.monotonic
        return "speech"
