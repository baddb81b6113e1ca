"""Speech for replies and test input: espeak-ng when installed, else a tone of similar length.

Synthesis is cached in memory and on disk, because the same scenario lines are spoken again and
again across tests and demo runs.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

OUTPUT_RATE = 24000
INPUT_RATE = 16000


class AudioFileError(ValueError):
    """A reply audio file that is not a readable PCM WAV."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "speakerd" / "tts"


def resample(pcm: bytes, src: int, dst: int) -> bytes:
    if src == dst or not pcm:
        return pcm
    g = np.gcd(src, dst)
    x = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    y = resample_poly(x, dst // g, src // g)
    return bytes(np.clip(np.round(y), -32768, 32767).astype("<i2").tobytes())


def read_wav(path: Path, rate: int = OUTPUT_RATE) -> bytes:
    """Mono 16-bit PCM at ``rate`` from a WAV file (channels are mixed down)."""
    try:
        with wave.open(str(path), "rb") as w:
            width, channels, src = w.getsampwidth(), w.getnchannels(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as e:
        raise AudioFileError(f"{path}: not a readable WAV file ({e})") from e
    if width != 2:
        raise AudioFileError(f"{path}: {8 * width}-bit WAV; only 16-bit PCM is supported")
    x = np.frombuffer(frames, dtype="<i2")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1).astype("<i2")
    return resample(x.tobytes(), src, rate)


def tone(text: str, rate: int = OUTPUT_RATE, freq: float = 440.0) -> bytes:
    """A soft tone, 0.3 s per word, standing in for speech when espeak-ng is missing."""
    seconds = max(0.4, 0.3 * len(text.split()))
    t = np.arange(int(seconds * rate)) / rate
    y = 0.25 * np.sin(2 * np.pi * freq * t) * np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
    return bytes((y * 32767).astype("<i2").tobytes())


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


@functools.lru_cache(maxsize=256)
def synthesize(text: str, rate: int = OUTPUT_RATE, voice: str = "en-us", speed: int = 170) -> bytes:
    """Mono 16-bit PCM of ``text`` spoken at ``rate`` Hz."""
    if not text.strip():
        return b""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return tone(text, rate)
    key = hashlib.sha256(f"{voice}|{speed}|{rate}|{text}".encode()).hexdigest()[:32]
    cached = _cache_dir() / f"{key}.pcm"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    try:
        wav = subprocess.run(
            [exe, "--stdout", "-v", voice, "-s", str(speed), "--", text],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
        with wave.open(io.BytesIO(wav), "rb") as w:
            src = w.getframerate()
            frames = w.readframes(w.getnframes())
    except (OSError, subprocess.SubprocessError, wave.Error, EOFError):
        return tone(text, rate)
    pcm = resample(frames, src, rate)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pcm)
        tmp.replace(cached)
    except OSError:
        pass
    return pcm
