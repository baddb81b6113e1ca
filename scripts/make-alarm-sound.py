#!/usr/bin/env python3
"""Make speakerd/data/alarm.wav, the built-in alarm sound (24 kHz, 16-bit mono, as the earcons).

Why a file and not synthesis at start: the sound is meant to be replaced (an alarm.wav in
``[audio] earcon_dir``), so the built-in one is a file like the replacements. Why this sound: a
rising C-major arpeggio of soft bell tones is clearly an alarm without being a shriek, and its
silent tail is the gap between repeats. Run it again only to change the sound.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np

RATE = 24000
NOTES = (1046.5, 1318.5, 1568.0, 2093.0)  # C6 E6 G6 C7
STEP = 0.16  # seconds between note onsets
RING = 0.55  # how long each note sounds
LENGTH = 1.3  # the clip, with its silent tail
PEAK = 0.6
# Bell-like partials: (frequency ratio, level, decay per second)
PARTIALS = ((1.0, 1.0, 6.0), (2.0, 0.35, 10.0), (3.0, 0.12, 16.0))


def note(freq: float) -> np.ndarray:
    t = np.arange(int(RING * RATE)) / RATE
    wave_ = sum(level * np.exp(-decay * t) * np.sin(2 * np.pi * freq * ratio * t)
                for ratio, level, decay in PARTIALS)
    attack = np.minimum(1.0, t / 0.004)  # 4 ms: no click
    release = np.minimum(1.0, (RING - t) / 0.02)
    return np.asarray(wave_ * attack * release)


def render() -> np.ndarray:
    out = np.zeros(int(LENGTH * RATE))
    for i, f in enumerate(NOTES):
        start = int(i * STEP * RATE)
        n = note(f)
        out[start : start + len(n)] += n
    out *= PEAK / np.max(np.abs(out))
    return (out * 32767).astype("<i2")


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parent.parent / "speakerd" / "data" / "alarm.wav")
    with wave.open(str(target), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(render().tobytes())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
