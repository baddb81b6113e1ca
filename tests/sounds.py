"""Test sounds and the conversation the end-to-end and reliability suites hold with the daemon.

Why one module: both suites speak the same words to the daemon through the rig's microphone; one
cached TTS per phrase and one scenario keep them saying the same thing.
"""

from __future__ import annotations

import functools

import numpy as np
from speakerd_workshop.emulator import Scenario
from speakerd_workshop.emulator.tts import synthesize

from speakerd.events import SAMPLE_RATE_IN


def silence(seconds: float, rate: int = SAMPLE_RATE_IN) -> bytes:
    """Digital silence, s16le mono."""
    return b"\0\0" * int(seconds * rate)


@functools.cache
def speech(text: str, rate: int = SAMPLE_RATE_IN) -> bytes:
    """``text`` spoken by the emulator's TTS (cached: the same words are said in many tests)."""
    return synthesize(text, rate=rate)


def wake() -> bytes:
    """The wake word with the lead-in and pause the daemon's detector expects."""
    return silence(1.2) + speech("hey jarvis") + silence(0.4)


def loud(seconds: float, amplitude: float = 0.3, freq: float = 220.0, rate: int = SAMPLE_RATE_IN) -> bytes:
    """A voiced-level tone (about -13 dBFS RMS) that an energy VAD takes for speech."""
    t = np.arange(int(seconds * rate)) / rate
    return bytes((amplitude * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes())


# The conversation the end-to-end and reliability suites hold with the daemon.
SCENARIO = Scenario.from_dict({
    "default_reply": "That is all I know.",
    "turns": [
        {"user_transcript": "what time is it", "reply_text": "It is time for a test."},
        {"user_transcript": "and tomorrow", "reply_text": "Tomorrow will be sunny."},
        {"user_transcript": "tell me a story", "reply_text": (
            "Once upon a time there was a very small speaker that told very long stories, "
            "so long that everybody in the house learned to interrupt it politely.")},
    ],
})
