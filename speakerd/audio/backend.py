"""The default audio backend: PyAudio (PortAudio) on ALSA, with the echo pipeline between them.

Why a backend object: the microphone and the speaker are opened together because echo handling
needs what the speaker played as its reference for what the microphone hears ([audio.echo]).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from speakerd.audio.capture import Capture
from speakerd.audio.echo import build_echo
from speakerd.audio.playback import Player
from speakerd.config import AudioSettings
from speakerd.events import AudioFrame, DeviceFault


def open_pyaudio(
    settings: AudioSettings,
    state_dir: Path,
    loop: asyncio.AbstractEventLoop,
    on_frame: Callable[[AudioFrame], None],
    on_fault: Callable[[DeviceFault], None],
) -> tuple[Capture, Player]:
    """``Capture`` and ``Player`` on the configured ALSA devices, sharing the echo pipeline."""
    echo = build_echo(settings.echo)  # says in the log which echo handling is in effect
    player = Player(settings, state_dir, loop, on_fault, echo=echo)
    capture = Capture(settings, loop, on_frame, on_fault, echo=echo)
    return capture, player
