"""The default audio backend: PyAudio (PortAudio) on ALSA, with optional echo cancellation.

Why a backend object: the microphone and the speaker are opened together because the echo
canceller needs what the speaker played as its reference for what the microphone hears.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from speakerd.audio.aec import EchoCanceller, EchoCancellerUnavailable
from speakerd.audio.capture import Capture
from speakerd.audio.playback import Player
from speakerd.config import AudioSettings
from speakerd.events import AudioFrame, DeviceFault

log = logging.getLogger("speakerd.audio")


def open_pyaudio(
    settings: AudioSettings,
    state_dir: Path,
    loop: asyncio.AbstractEventLoop,
    on_frame: Callable[[AudioFrame], None],
    on_fault: Callable[[DeviceFault], None],
) -> tuple[Capture, Player]:
    """``Capture`` and ``Player`` on the configured ALSA devices, sharing the echo canceller."""
    echo = _echo_canceller(settings.echo_cancellation)
    player = Player(settings, state_dir, loop, on_fault, echo=echo)
    capture = Capture(settings, loop, on_frame, on_fault, echo=echo)
    return capture, player


def _echo_canceller(wanted: bool) -> EchoCanceller | None:
    if not wanted:
        return None
    try:
        echo = EchoCanceller()
    except EchoCancellerUnavailable as e:
        log.warning("%s; running without echo cancellation", e)
        return None
    log.info("echo cancellation on (Speex)")
    return echo
