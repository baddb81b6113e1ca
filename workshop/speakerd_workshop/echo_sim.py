"""The rig's room and the daemon's echo pipeline, offline and faster than real time.

Why: the pipeline's numbers (delay found, ERLE, convergence, what the gate lets through, CPU)
are properties of the signals, not of the processes around them; unit tests and the bench's CPU
column run them here on a simulated clock, while bench/self_interruption.py measures the verdicts
through the real daemon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly

from speakerd.audio.echo import EchoPipeline, EchoSettings
from speakerd_workshop.room import EchoPath, Room

SPEAKER_RATE = 24000
FRAME = 1280  # 80 ms at 16 kHz
BUFFER_SECONDS = 0.06  # the player writes this far ahead of the speaker


@dataclass
class SimResult:
    mic: np.ndarray  # what the microphone heard (int16 scale, float)
    out: np.ndarray  # what the pipeline sent on
    person: np.ndarray  # the person alone, as said
    pipeline: EchoPipeline | None


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def simulate(room: Room, settings: EchoSettings | None, played: np.ndarray, person: np.ndarray,
             *, volume: float = 0.7, lead_seconds: float = 1.0) -> SimResult:
    """``played``: reply audio at 24 kHz (int16) before the volume; ``person``: 16 kHz int16 of the
    same length in time (zeros where nobody speaks). Returns the three streams at 16 kHz."""
    clock = _Clock()
    pipeline = EchoPipeline(settings, clock=clock) if settings is not None else None
    if pipeline is not None:
        pipeline.on_burst = None
    path = EchoPath(room, SPEAKER_RATE)
    spk = np.round(played.astype(np.float64) * volume).astype(np.int16)
    lead = np.zeros(int(lead_seconds * SPEAKER_RATE), dtype=np.int16)
    spk = np.concatenate([lead, spk, np.zeros(SPEAKER_RATE, dtype=np.int16)])
    ref16 = resample_poly(spk.astype(np.float64), 2, 3)
    frames = len(ref16) // FRAME
    person = np.concatenate([np.zeros(int(lead_seconds * 16000)), person.astype(np.float64),
                             np.zeros(max(0, frames * FRAME))])[: frames * FRAME]
    step24 = SPEAKER_RATE * FRAME // 16000
    lead_blocks = len(lead) // step24
    reply_blocks = -(-len(played) // step24)
    mic_out, cleaned = [], []
    for k in range(frames):
        clock.t += FRAME / 16000
        block24 = spk[k * step24 : (k + 1) * step24]
        path.push(block24.tobytes())
        if pipeline is not None:
            ahead = ref16[k * FRAME : (k + 1) * FRAME]
            clock.t -= BUFFER_SECONDS + FRAME / 16000  # written a buffer before it was heard
            if lead_blocks <= k < lead_blocks + reply_blocks:  # the player writes the whole reply, pauses too
                pipeline.far_end(ahead)
            clock.t += BUFFER_SECONDS + FRAME / 16000
        mic = person[k * FRAME : (k + 1) * FRAME] + path.pull(FRAME)
        mic16 = np.clip(np.round(mic), -32768, 32767).astype(np.int16)
        mic_out.append(mic)
        cleaned.append(pipeline.process(mic16) if pipeline is not None else mic16)
    return SimResult(np.concatenate(mic_out), np.concatenate(cleaned).astype(np.float64), person, pipeline)
