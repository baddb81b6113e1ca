"""The pre-roll ring: the last seconds of microphone frames, so the words after the wake word
(and the wake word itself) reach the model even though the session opens only after it."""

from __future__ import annotations

from collections import deque

from speakerd.events import FRAME_SAMPLES, SAMPLE_RATE_IN, AudioFrame


class PrerollBuffer:
    def __init__(self, seconds: float) -> None:
        self.frames: deque[AudioFrame] = deque(maxlen=max(1, round(seconds * SAMPLE_RATE_IN / FRAME_SAMPLES)))

    def push(self, frame: AudioFrame) -> None:
        self.frames.append(frame)

    def since(self, index: int) -> list[AudioFrame]:
        """Frames with ``index`` or later, oldest first (as many as the ring still holds)."""
        return [f for f in self.frames if f.index >= index]
