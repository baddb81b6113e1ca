"""Several speakers, one answer: each speaker that hears the wake word claims it, the best answers.

How: on its wake word a speaker publishes a claim (device id, score, level of the wake audio in
dBFS, time) on a topic all speakers share, waits a short window while the pre-roll keeps the audio,
and answers only if no claim heard within the window either side of its own is better. The winner
also publishes that it answers, so a speaker whose wake word comes later than the window (a slow
CPU, a far room) still yields. Claims are grouped by the time they *arrive here*, never by the
senders' clocks, which need not agree.

Why the score is compared in coarse steps: openWakeWord's score at the frame that detects the
wake word says where the phrase fell in the 80 ms frames, not how near the speaker was (measured
on the same phrase at 0, -6, -12 and -18 dBFS: 0.55 to 0.99 at every level, in no order), so
ranking it finely picks a speaker at random. Scores are compared in steps of ``SCORE_STEP`` (0.5:
with the default threshold every detection is one step, a detection under a lowered threshold
ranks below it); within a step the louder wake audio, the nearer speaker, wins; then the lower
device id, so every speaker reaches the same verdict.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger("speakerd.home")
SCORE_STEP = 0.5
HORIZON_SECONDS = 1.0  # how long a peer's claim or answer counts: longer than any wake phrase


def dbfs(samples: bytes | npt.NDArray[np.int16]) -> float:
    """RMS level of 16-bit audio in dB below full scale (-120 for silence)."""
    x = np.frombuffer(samples, np.int16) if isinstance(samples, bytes) else samples
    if x.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(x.astype(np.float64)))))
    return max(-120.0, 20 * math.log10(rms / 32768)) if rms > 0 else -120.0


@dataclass(frozen=True)
class Claim:
    device: str
    score: float
    level: float
    time: float  # the sender's wall clock, for people reading the topic; never compared
    claim: str

    def rank(self, score_step: float = SCORE_STEP) -> tuple[float, float, _Reversed]:
        """Higher is better: score step, then level, then the lower device id."""
        step = math.floor(min(self.score, 1 - 1e-9) / score_step + 1e-9)  # a float32 1.0 is no better
        return (step, round(self.level, 1), _Reversed(self.device))


class _Reversed(str):
    """A string that sorts backwards, so max() picks the lowest device id on a tie."""

    def __lt__(self, other: str) -> bool:
        return str.__gt__(self, other)

    def __gt__(self, other: str) -> bool:
        return str.__lt__(self, other)


def _parse(payload: bytes) -> tuple[str, Claim] | None:
    try:
        data: Any = json.loads(payload)
        kind = data["type"]
        claim = Claim(str(data["device"]), float(data["score"]), float(data["level"]),
                      float(data["time"]), str(data["claim"]))
    except (ValueError, KeyError, TypeError):
        return None
    if kind not in ("claim", "answer") or not (math.isfinite(claim.score) and math.isfinite(claim.level)):
        return None
    return kind, claim


class Arbiter:
    """Decides whether this speaker answers a wake word; the home link carries its messages."""

    def __init__(self, device_id: str, window_ms: int, send: Callable[[bytes], None],
                 connected: Callable[[], bool]) -> None:
        self.device_id = device_id
        self.window = window_ms / 1000
        self._send = send
        self._connected = connected
        self._claims: deque[tuple[float, Claim]] = deque(maxlen=64)  # (arrival monotonic, claim)
        self._answers: deque[tuple[float, Claim]] = deque(maxlen=64)
        self._bad_logged = False

    def receive(self, payload: bytes) -> None:
        """A message from the shared topic (our own echo included, which is ignored)."""
        parsed = _parse(payload)
        if parsed is None:
            if not self._bad_logged:
                log.warning("mqtt: ignoring a malformed arbitration message (%d bytes); further ones silently",
                            len(payload))
                self._bad_logged = True
            return
        kind, claim = parsed
        if claim.device == self.device_id:
            return
        (self._claims if kind == "claim" else self._answers).append((time.monotonic(), claim))

    async def arbitrate(self, score: float, level: float) -> bool:
        """True: answer this wake word. At once True when the broker cannot be reached."""
        if not self._connected():
            return True
        t0 = time.monotonic()
        mine = Claim(self.device_id, float(score), float(level), time.time(), uuid.uuid4().hex)
        self._publish("claim", mine)
        await asyncio.sleep(max(0.0, t0 + self.window - time.monotonic()))
        now = time.monotonic()
        if any(now - at <= HORIZON_SECONDS for at, _ in self._answers):
            log.info("wake word: another speaker answers (it heard it first)")
            return False
        peers = [c for at, c in self._claims if t0 - self.window <= at <= now]
        best = max([mine, *peers], key=lambda c: c.rank())
        if best is not mine:
            log.info("wake word: %s answers (score %.2f, %.1f dBFS; ours %.2f, %.1f dBFS)",
                     best.device, best.score, best.level, mine.score, mine.level)
            return False
        self._publish("answer", mine)
        return True

    def _publish(self, kind: str, c: Claim) -> None:
        self._send(json.dumps({"type": kind, "device": c.device, "score": round(c.score, 4),
                               "level": round(c.level, 2), "time": round(c.time, 3), "claim": c.claim}).encode())
