"""Earcons: short sounds for wake, end, error and mute/unmute, and the alarm sound.

Why synthesised: nothing to ship or license, and they are identical on every speaker. The alarm,
longer and meant to be pleasant, is a WAV shipped in ``speakerd/data`` (made by
``scripts/make-alarm-sound.py``). Owners can put their own WAVs (wake.wav, end.wav, error.wav,
mute.wav, unmute.wav, camera.wav, alarm.wav, chime.wav, offline.wav) in ``[audio] earcon_dir``; a missing or unreadable
one falls back to the built-in sound.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import wave
from pathlib import Path
from typing import IO

import numpy as np

log = logging.getLogger("speakerd.audio")
RATE = 24000
NAMES = ("wake", "end", "error", "mute", "unmute", "camera", "alarm", "chime", "offline")
SHIPPED = {"alarm": "alarm.wav"}  # built-in sounds that are files in speakerd/data

# name -> list of (frequency Hz, seconds)
_TONES: dict[str, list[tuple[float, float]]] = {
    "wake": [(660.0, 0.07), (880.0, 0.09)],
    "end": [(880.0, 0.07), (660.0, 0.09)],
    "error": [(220.0, 0.12), (0.0, 0.05), (220.0, 0.12)],
    "mute": [(440.0, 0.06), (330.0, 0.08)],
    "unmute": [(330.0, 0.06), (440.0, 0.08)],
    "camera": [(1320.0, 0.04), (0.0, 0.03), (1320.0, 0.04)],
    "alarm": [(1046.5, 0.15), (1318.5, 0.15), (1568.0, 0.3), (0.0, 0.4)],  # if the file is gone
    "chime": [(784.0, 0.12), (0.0, 0.03), (659.3, 0.2)],  # before an announcement
    "offline": [(523.3, 0.1), (0.0, 0.04), (392.0, 0.1), (0.0, 0.04), (261.6, 0.18)],  # service unreachable
}


class EarconError(Exception):
    pass


@functools.lru_cache(maxsize=16)
def synth(name: str) -> np.ndarray:
    parts = []
    for freq, seconds in _TONES[name]:
        t = np.arange(int(seconds * RATE)) / RATE
        env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.008)  # 8 ms ramps: no clicks
        parts.append(0.5 * np.sin(2 * np.pi * freq * t) * env if freq else np.zeros_like(t))
    return (np.concatenate(parts) * 32767).astype(np.int16)


def _read(f: str | IO[bytes]) -> tuple[np.ndarray, int]:
    with wave.open(f, "rb") as w:
        if w.getsampwidth() != 2:
            raise wave.Error("only 16-bit PCM is supported")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        channels = w.getnchannels()
        if channels > 1:
            data = data[: len(data) - len(data) % channels].reshape(-1, channels)[:, 0]
        return data.copy(), w.getframerate()


@functools.lru_cache(maxsize=4)
def _shipped(filename: str) -> tuple[np.ndarray, int] | None:
    try:
        with (importlib.resources.files("speakerd") / "data" / filename).open("rb") as f:
            return _read(f)
    except (OSError, EOFError, wave.Error) as e:
        log.warning("the built-in sound %s is unreadable (%s); using a plain tone", filename, e)
        return None


def load(name: str, directory: Path | None) -> tuple[np.ndarray, int]:
    """The earcon as int16 mono samples and their rate."""
    if name not in NAMES:
        raise EarconError(f"unknown earcon {name!r}")
    if directory is not None:
        path = directory / f"{name}.wav"
        if path.exists():
            try:
                return _read(str(path))
            except (OSError, EOFError, wave.Error) as e:
                log.warning("%s: not a readable WAV (%s); using the built-in sound", path, e)
    if name in SHIPPED and (shipped := _shipped(SHIPPED[name])) is not None:
        return shipped[0].copy(), shipped[1]
    return synth(name), RATE
