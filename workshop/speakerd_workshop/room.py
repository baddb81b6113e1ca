"""A room between the rig's speaker and its microphone: the speaker hears itself, as on a real HAT.

Why: without an acoustic path every barge-in test passes in a room that does not exist. On a Pi
with a ReSpeaker HAT the loudspeaker sits centimetres from the microphones and its echo is often
louder than the person. ``EchoPath`` turns what the speaker really played (after the daemon's
volume; read from the FIFO speaker as a sound card would drain it) into what the microphone hears:
mild loudspeaker clipping, a clock drift between the two devices, a room impulse response (direct
sound plus exponentially decaying reverberation), a device path delay the daemon is not told about,
and room noise. ``MicFeeder`` mixes it into every microphone period in real time.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve, firwin, lfilter

MIC_RATE = 16000
REFERENCE_VOLUME = 0.70  # echo_db is defined at the daemon's default volume (70)


@dataclass(frozen=True)
class Room:
    """The acoustic path; ``echo_db`` is the echo's level relative to a person speaking normally.

    A person "speaking normally" is the rig's synthesized speech as ``MicFeeder.say`` queues it; the
    echo is the same synthesized voice played at the default volume through this room, so at
    ``echo_db=10`` the speaker's voice at the microphone is 10 dB louder than the person.
    """

    echo_db: float = 10.0  # -10 .. +15 dB
    delay_ms: float = 40.0  # device path: 10 .. 150 ms, unknown to the daemon
    rt60: float = 0.4  # seconds: 0.2 .. 0.6
    drift_ppm: float = 50.0  # microphone clock relative to the speaker's: -100 .. +100
    clip_drive: float = 1.5  # soft clipping tanh(d*x)/d on the loudspeaker; 0 = linear
    noise_dbfs: float = -60.0  # room noise (pink-ish), RMS in dBFS
    direct_to_reverb_db: float = 6.0  # a speaker centimetres from the microphone: direct sound dominates
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [(-40 <= self.echo_db <= 30, "echo_db"), (0 <= self.delay_ms <= 500, "delay_ms"),
                  (0.05 <= self.rt60 <= 2.0, "rt60"), (abs(self.drift_ppm) <= 1000, "drift_ppm"),
                  (self.clip_drive >= 0, "clip_drive")]
        for ok, name in checks:
            if not ok:
                raise ValueError(f"Room.{name} out of range: {getattr(self, name)}")


@functools.lru_cache(maxsize=16)
def impulse_response(rt60: float, direct_to_reverb_db: float, seed: int, rate: int = MIC_RATE) -> np.ndarray:
    """Direct sound, a few early reflections and exponentially decaying noise; unit energy."""
    rng = np.random.default_rng(seed)
    n = int(rate * min(rt60, 1.0))
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * rate)] = 0.0  # the reverberation starts after the direct sound
    h = np.zeros(n)
    h[0] = 1.0
    for ms, g in ((3.1, 0.45), (5.7, -0.3), (9.2, 0.2)):  # the desk, the case, a wall
        h[int(ms * rate / 1000)] += g
    direct = float(np.sum(h**2))
    h += tail * np.sqrt(direct / float(np.sum(tail**2)) / 10 ** (direct_to_reverb_db / 10))
    return np.asarray(h / np.sqrt(float(np.sum(h**2))))


class EchoPath:
    """Streaming: push what the speaker played (any rate, int16), pull microphone-rate echo.

    Both ends run on real time (the speaker drained by ``SpeakerSink``, the microphone written by
    ``MicFeeder``), so the queue between them holds the device delay; the drift makes the
    microphone take ``1 + ppm`` samples of the speaker's per own sample, as two crystals would.
    """

    def __init__(self, room: Room, speaker_rate: int) -> None:
        self.room = room
        self.speaker_rate = speaker_rate
        self._lock = threading.Lock()
        self._lp_b = firwin(63, 7000, fs=speaker_rate)
        self._lp_z = np.zeros(len(self._lp_b) - 1)
        self._src = np.zeros(0)  # low-passed speaker samples not yet interpolated
        self._pos = 1.0  # fractional read position in _src (needs one sample of history)
        self._step = speaker_rate / MIC_RATE * (1.0 + room.drift_ppm * 1e-6)
        self._h = impulse_response(room.rt60, room.direct_to_reverb_db, room.seed)
        self._tail = np.zeros(len(self._h) - 1)
        self._gain = 10 ** (room.echo_db / 20) / REFERENCE_VOLUME
        self._delay = int(room.delay_ms * MIC_RATE / 1000)
        self._out = np.zeros(self._delay)  # the device path, as silence
        self._rng = np.random.default_rng(room.seed + 1)
        self._noise_state = np.zeros(1)
        self.played_samples = 0
        self._pending: list[bytes] = []
        self.queued: list[int] = []  # echo samples waiting at each pull: the path's delay as it happens

    def push(self, played: bytes) -> None:
        """Bytes the speaker has just emitted (s16le at the speaker rate, silence included).

        Cheap: the sink calls it every few milliseconds; the work happens once per period in ``pull``.
        """
        with self._lock:
            self._pending.append(played)

    def _process(self) -> None:
        raw = b"".join(self._pending)
        self._pending.clear()
        raw = raw[: len(raw) - len(raw) % 2]
        if raw:
            self.played_samples += len(raw) // 2
            x = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
            d = self.room.clip_drive
            if d > 0:
                x = np.tanh(d * x) / d
            x, self._lp_z = lfilter(self._lp_b, 1.0, x, zi=self._lp_z)
            self._src = np.concatenate([self._src, x])
            y = self._resample()
            if len(y):
                full = fftconvolve(y, self._h)
                full[: len(self._tail)] += self._tail
                out, rest = full[: len(y)], full[len(y):]
                self._tail = np.concatenate([rest, np.zeros(len(self._h) - 1 - len(rest))])
                self._out = np.concatenate([self._out, out * self._gain * 32768.0])

    def _resample(self) -> np.ndarray:
        """Cubic interpolation at the drifting step (the source is low-passed below the new Nyquist)."""
        src = self._src
        last = len(src) - 3  # need pos+2
        if last <= self._pos:
            return np.zeros(0)
        positions = np.arange(self._pos, last, self._step)
        i = positions.astype(np.int64)
        f = positions - i
        p0, p1, p2, p3 = src[i - 1], src[i], src[i + 1], src[i + 2]
        y = p1 + 0.5 * f * (p2 - p0 + f * (2 * p0 - 5 * p1 + 4 * p2 - p3 + f * (3 * (p1 - p2) + p3 - p0)))
        nxt = float(positions[-1] + self._step) if len(positions) else self._pos
        drop = int(nxt) - 1
        self._src = src[drop:]
        self._pos = nxt - drop
        return np.asarray(y)

    def pull(self, n: int) -> np.ndarray:
        """The echo plus room noise for the next ``n`` microphone samples (float, int16 scale)."""
        with self._lock:
            self._process()
            # Sound does not wait in a room: if the microphone stalled (nobody reading it yet),
            # what the speaker played meanwhile is gone, and the path keeps its own delay.
            excess = len(self._out) - (self._delay + 2 * n)
            if excess > 0:
                self._out = self._out[excess:]
            self.queued.append(len(self._out))
            take = self._out[:n]
            self._out = self._out[n:]
        echo = np.concatenate([take, np.zeros(n - len(take))]) if len(take) < n else take
        return np.asarray(echo + self._noise(n))

    def _noise(self, n: int) -> np.ndarray:
        if self.room.noise_dbfs <= -120:
            return np.zeros(n)
        white = self._rng.standard_normal(n)
        # One-pole low-pass: more energy low down, as fans and traffic have.
        pink, self._noise_state = lfilter([0.3], [1.0, -0.7], white, zi=self._noise_state)
        rms = float(np.sqrt(np.mean(pink**2))) or 1.0
        return np.asarray(pink / rms * 10 ** (self.room.noise_dbfs / 20) * 32768.0)

    def mix(self, person: bytes) -> bytes:
        """The microphone's period: the person (as said) plus the echo and the room noise."""
        x = np.frombuffer(person, dtype="<i2").astype(np.float64)
        y = x + self.pull(len(x))
        return bytes(np.clip(np.round(y), -32768, 32767).astype("<i2").tobytes())
