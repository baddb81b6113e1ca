"""The residual-echo gate: while the speaker plays, the microphone goes out only when it stands out.

Why: no canceller removes all of a small loud room's echo, and a neural VAD at the service hears
speech at any level, so whatever is left of the model's own voice would still barge in (or, with
barge-in off, become the next user turn). The gate predicts the echo left after cancellation from
the aligned reference's envelope (a decaying peak, as the room's reverberation decays) times a
coupling it learns while only the speaker talks, and passes a 10 ms block only when the microphone
is ``margin`` above that prediction in most of the last few blocks: a person talking over the reply.
Otherwise the block becomes zeros, which keeps the stream's timing. Half duplex closes whenever
the speaker plays.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from speakerd.audio.echo.settings import EchoSettings

log = logging.getLogger("speakerd.audio")
BLOCK = 160
REF_FLOOR = (32768 * 10 ** (-60 / 20)) ** 2  # reference power below -60 dBFS is silence
MIC_FLOOR = (32768 * 10 ** (-65 / 20)) ** 2  # microphone power below -65 dBFS is never a person
COUPLING_START = 2.0  # log10 power: +20 dB, until learned (nothing passes before convergence)
COUPLING_RANGE = (-7.0, 3.0)
UP, DOWN, CREEP = 0.10, 0.02, 0.002  # log10 steps per block: 1 dB, 0.2 dB, 0.02 dB
VOTES, OF = 4, 6  # loud blocks of the last few needed to open
NOISE_MARGIN = 1.2  # log10: a person is 12 dB above the room's noise floor
NOISE_RISE = 0.003  # log10 per block: the floor follows a louder room in a few seconds


class EchoGate:
    def __init__(self, settings: EchoSettings, *, with_canceller: bool = False) -> None:
        self.mode = settings.gate
        self.margin = settings.gate_margin_db / 10.0  # log10 power
        self.hold_blocks = settings.gate_hold_ms // 10
        self.release = 6.0 / (settings.tail_ms / 10.0)  # log10 per block: 60 dB over the tail
        self.coupling = 0.0 if with_canceller else COUPLING_START
        self._env = 0.0  # log10 reference power envelope (0 = silence)
        self.noise = math.log10(MIC_FLOOR)  # log10 power of the quietest recent blocks
        self._votes: list[bool] = []
        self._hold = 0
        self.in_burst = False
        self.blocks = self.blocks_active = self.blocks_passed = 0

    @property
    def playing(self) -> bool:
        """A reply (its pauses and reverberation included) is in the room now; earcons do not count."""
        return self.in_burst

    def process(self, out: np.ndarray, ref_power: np.ndarray, *, aligned: bool = True,
                mic: np.ndarray | None = None, in_burst: bool = False) -> np.ndarray:
        """``out``: the cleaned microphone; ``ref_power``: the aligned reference's power per block.

        Not ``aligned`` (the delay is not found yet): the canceller cannot have converged, so the
        coupling is neither learned nor trusted below COUPLING_START.

        With ``mic`` (the canceller's input) the measure is what the canceller left of its input:
        with only the echo in the room that is the canceller's residual (-30 to -50 dB once
        converged), and a person talking over the reply lifts it by about the echo-to-person
        ratio's distance from it, far more than they lift the output over the reference.
        """
        self.in_burst = in_burst
        if self.mode == "off":
            return out
        gated = out.copy()
        for b in range(len(out) // BLOCK):
            self.blocks += 1
            rp = math.log10(float(ref_power[b]) + 1.0)
            self._env = max(rp, self._env - self.release)
            blk = out[b * BLOCK : (b + 1) * BLOCK].astype(np.float64)
            mp = math.log10(float(np.mean(blk * blk)) + 1.0)
            self.noise = mp if mp < self.noise else self.noise + NOISE_RISE
            if not self.playing:
                self._votes.clear()
                self._hold = 0
                continue
            self.blocks_active += 1
            if self.mode == "half_duplex":
                gated[b * BLOCK : (b + 1) * BLOCK] = 0
                continue
            if mic is not None:
                mb = mic[b * BLOCK : (b + 1) * BLOCK].astype(np.float64)
                ratio = mp - math.log10(float(np.mean(mb * mb)) + 1.0)
                # A canceller that adds to its input (misaligned, or diverging) is never a person.
                start = 10.0 if ratio > 0.03 else 0.0
            else:
                ratio = mp - self._env
                start = COUPLING_START
            # Until the delay is measured for this burst the learned coupling is not trusted.
            coupling = self.coupling if aligned and start < 10.0 else max(self.coupling, start)
            loud = (ratio > coupling + self.margin and mp > math.log10(MIC_FLOOR)
                    and mp > self.noise + NOISE_MARGIN)
            if not aligned:
                pass
            elif ratio > self.coupling + self.margin:
                self.coupling += CREEP  # unexplained: a person, or an echo path that grew
            elif ratio > self.coupling:
                self.coupling += UP
            else:
                self.coupling -= DOWN
            self.coupling = min(max(self.coupling, COUPLING_RANGE[0]), COUPLING_RANGE[1])
            self._votes = [*self._votes[-(OF - 1):], loud]
            if sum(self._votes) >= VOTES or (self._hold > 0 and loud):  # open: one loud block keeps it so
                if self._hold == 0:
                    log.debug("echo gate opens: microphone %.0f dB, reference %.0f dB, coupling %.0f dB, noise %.0f dB",
                              10 * mp, 10 * self._env, 10 * self.coupling, 10 * self.noise)
                self._hold = self.hold_blocks
            if self._hold > 0:
                self._hold -= 1
                self.blocks_passed += 1
            else:
                gated[b * BLOCK : (b + 1) * BLOCK] = 0
        return gated
