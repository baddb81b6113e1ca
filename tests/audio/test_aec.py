"""Speex echo cancellation on a synthetic echo: the speaker's voice goes, the person's stays."""

from __future__ import annotations

import numpy as np
from speakerd_workshop.emulator.tts import synthesize

from speakerd.audio.aec import EchoCanceller, erle_db


def room(far: np.ndarray) -> np.ndarray:
    """30 ms to the microphone, two reflections, about -6 dB."""
    h = np.zeros(1600)
    h[480], h[800], h[1200] = 0.5, 0.2, 0.1
    return np.convolve(far, h)[: len(far)]


def run(aec: EchoCanceller, far: np.ndarray, mic: np.ndarray) -> np.ndarray:
    out = []
    for i in range(0, len(mic) - 1280 + 1, 1280):
        aec.far_end(far[i : i + 1280].astype(np.int16))
        out.append(aec.process(mic[i : i + 1280].astype(np.int16)))
    return np.concatenate(out)


def test_echo_is_removed_after_convergence() -> None:
    far = np.frombuffer(synthesize("the speaker is talking about the weather and the sea for a long while now, "
                                   "with clouds, rain and a little sunshine later in the day", rate=16000), np.int16)
    far = far.astype(np.float64)
    mic = np.clip(room(far) + np.random.default_rng(0).standard_normal(len(far)) * 30, -32768, 32767)
    out = run(EchoCanceller(), far, mic)
    half = len(out) // 2
    assert erle_db(mic[half : len(out)], out[half:]) > 10  # measured about 15 dB here


def test_the_person_talking_over_the_echo_is_kept() -> None:
    far = np.frombuffer(synthesize("a long reply from the speaker that goes on and on about many things "
                                   "while somebody in the room starts to talk over it", rate=16000), np.int16)
    far = far.astype(np.float64)
    near = np.zeros_like(far)
    person = np.frombuffer(synthesize("stop stop", rate=16000), np.int16).astype(np.float64)
    at = len(far) * 2 // 3
    near[at : at + len(person)] = person[: len(far) - at]
    mic = np.clip(room(far) + near, -32768, 32767)
    out = run(EchoCanceller(), far, mic)
    seg = slice(at, min(at + len(person), len(out)))
    kept = np.corrcoef(out[seg], near[seg])[0, 1]
    before = np.corrcoef(mic[seg], near[seg])[0, 1]
    assert kept > before and kept > 0.8
