"""Echo handling between the speaker and the microphone: see pipeline.py and docs/audio.md."""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from speakerd.audio.echo.backends import CancellerUnavailable
from speakerd.audio.echo.pipeline import BurstStats, EchoPipeline
from speakerd.audio.echo.settings import EchoSettings

log = logging.getLogger("speakerd.audio")

__all__ = ["BurstStats", "CancellerUnavailable", "EchoPipeline", "EchoSettings", "FarEndSink", "MicProcessor",
           "build_echo"]


class FarEndSink(Protocol):
    """What the Player feeds: every period it hands the speaker, at 16 kHz, after the volume.

    ``reply`` is false for a period of earcon alone: cancelled like any echo, but not a reason to
    keep the microphone from the service (the question often starts over the wake earcon).
    """

    def far_end(self, samples: np.ndarray, reply: bool = True) -> None: ...


class MicProcessor(Protocol):
    """What Capture runs every 80 ms frame through; ``reset`` when the microphone (re)opens."""

    cleaned: np.ndarray  # the last frame after cancellation, before the gate (for the stop word)

    def process(self, mic: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


def build_echo(settings: EchoSettings) -> EchoPipeline | None:
    """The pipeline for ``settings``, or None when there is nothing to do; one log line either way.

    A canceller whose library is missing is logged once and replaced by none: the gate still
    keeps the speaker from interrupting itself.
    """
    if settings.canceller == "none" and settings.gate == "off":
        log.info("echo handling off: the microphone hears the speaker")
        return None
    try:
        pipeline = EchoPipeline(settings)
    except CancellerUnavailable as e:
        log.warning("%s; echo handling continues without a canceller", e)
        settings = settings.model_copy(update={"canceller": "none"})
        pipeline = EchoPipeline(settings)
    log.info("echo handling: %s", settings.describe())
    return pipeline
